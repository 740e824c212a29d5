# Sourced by scripts/test (after _venv.sh): make sure a chromium is on PATH for the dashboard's browser
# test (tests/test_dashboard_browser.py drives it through the DevTools protocol and fails without one).
#   1. one already on PATH (chromium, chromium-browser or google-chrome, as tests/_cdp.py looks them up);
#   2. as root (or with sudo) and apt-get: Debian's chromium package.
# Otherwise the browser test fails and says how to install one; the other tests run.
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
    && ! command -v google-chrome >/dev/null 2>&1; then
  sudo_cmd=""
  [ "$(id -u)" = 0 ] || sudo_cmd="sudo -n"
  if command -v apt-get >/dev/null 2>&1; then
    echo "scripts/test: no chromium on PATH: installing Debian's chromium package (apt-get)" >&2
    export DEBIAN_FRONTEND=noninteractive
    { $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq chromium; } >/dev/null 2>&1 \
      || echo "scripts/test: could not install chromium; the dashboard's browser test will fail (apt-get install chromium)" >&2
  else
    echo "scripts/test: no chromium and no apt-get; the dashboard's browser test will fail" >&2
  fi
fi
