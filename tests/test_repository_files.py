"""Issue 8, items 9 and 10: files a fresh clone relies on."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent


def test_the_license_file_matches_pyproject():
    license_id = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    assert license_id == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text


def test_ci_runs_exactly_the_test_command_without_an_apt_step_of_its_own():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "./scripts/test" in ci
    assert "apt-get" not in ci and "redis-server" not in ci.replace("provides a redis-server", "")


def test_the_test_command_provides_redis_server_when_path_has_none(tmp_path):
    """scripts/_redis.sh with a PATH that has no redis-server (only the tools it uses) and the PyPI route:
    a redis-server from the venv ends up on PATH and runs."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("bash", "id", "cut", "dirname", "env", "cat"):
        found = subprocess.run(["bash", "-c", f"command -v {name}"], capture_output=True, text=True).stdout.strip()
        if found:
            (tools / name).symlink_to(found)
    venv = Path(sys.executable).parent.parent
    script = (f'VENV="{venv}"; source "{ROOT}/scripts/_redis.sh"; command -v redis-server; '
              'redis-server --version')
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=300,
                          env={"PATH": str(tools), "HOME": os.environ.get("HOME", "/root"),
                               "OTEL_AI_COST_REDIS_SOURCE": "pypi"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == str(venv / "bin" / "redis-server")
    assert lines[1].startswith("Redis server v=")
    assert "using " + str(venv / "bin" / "redis-server") in done.stderr

