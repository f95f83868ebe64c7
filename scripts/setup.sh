#!/usr/bin/env bash
# Create .venv and install the project. Usage: scripts/setup.sh [serve|dev]
#   serve: the web app, and torch for the job worker it starts beside the API
#          (the API process itself never imports torch)
#   dev:   everything: training (torch), tests (pytest, pycairo, Playwright), the system
#          packages the tests use (Debian's chromium, cairo headers for pycairo, haproxy for
#          the load-balanced replicas, node and npm) and the npm tools the browser tests use
#          (axe-core, from package-lock.json)
# Re-running is cheap: it reinstalls only when pyproject.toml (or package-lock.json) changed.
set -euo pipefail
cd "$(dirname "$0")/.."
profile="${1:-serve}"

pick_python() {
  for py in python3.11 python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      echo "$py"; return
    fi
  done
  echo "doodle2anime needs Python 3.11 (python3.11 on PATH)" >&2
  exit 1
}

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

if [ "$profile" = "dev" ]; then
  apt_install chromium libcairo2-dev pkg-config haproxy
  command -v npm >/dev/null 2>&1 || apt_install nodejs npm
  extras=".[train,dev]"
else
  extras=".[train]"
fi

[ -x .venv/bin/python ] || "$(pick_python)" -m venv .venv
stamp=".venv/.installed-$profile"
want="$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e "$extras"
  echo "$want" > "$stamp"
fi

# The browser tests' accessibility check (axe-core) comes from npm, pinned by package-lock.json.
if [ "$profile" = "dev" ]; then
  npm_want="$(sha256sum package-lock.json | cut -c1-16)"
  npm_stamp="node_modules/.installed"
  if [ ! -f "$npm_stamp" ] || [ "$(cat "$npm_stamp")" != "$npm_want" ]; then
    npm ci --no-audit --no-fund --loglevel=error
    echo "$npm_want" > "$npm_stamp"
  fi
fi
