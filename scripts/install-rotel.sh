#!/usr/bin/env bash
# Installs rotel, a real OpenTelemetry collector (the `rotel-agent` binary, shipped
# inside a PyPI wheel), pinned, into its own venv .tools/rotel-venv (kept apart from
# .tools/venv, whose pins serve deploy/check-tools.sh). tests/it/collector.rs runs it.
# Does nothing when that version is already there.
#
# The binary is not in the venv's bin/: it sits in the python package folder,
#   $(.tools/rotel-venv/bin/python -c 'import rotel,os;print(os.path.dirname(rotel.__file__))')/rotel-agent
#
# Usage: scripts/install-rotel.sh [--quiet]   (--quiet: pip prints less; nothing at all
# is printed when rotel is already installed)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROTEL_VERSION=0.0.1a15
VENV=.tools/rotel-venv
quiet=""
if [ "${1:-}" = "--quiet" ]; then quiet="-q"; fi

mkdir -p .tools
# Tests run in parallel and may all call this at once: one installer at a time.
if command -v flock >/dev/null 2>&1; then
  exec 9>.tools/install-rotel.lock
  flock 9
fi

# The pinned version is installed and its binary is there and executable.
installed() {
  [ -x "$VENV/bin/python" ] || return 1
  local info dir
  # (not `pip show | grep -q`: with pipefail, grep quitting early fails the pipeline)
  info=$("$VENV/bin/python" -m pip show rotel 2>/dev/null) || return 1
  grep -qx "Version: $ROTEL_VERSION" <<<"$info" || return 1
  dir=$("$VENV/bin/python" -c 'import rotel,os;print(os.path.dirname(rotel.__file__))' 2>/dev/null) || return 1
  [ -x "$dir/rotel-agent" ]
}

if installed; then
  exit 0
fi

echo "==> installing rotel $ROTEL_VERSION into $VENV (PyPI)" >&2
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install $quiet --disable-pip-version-check "rotel==$ROTEL_VERSION"

installed || { echo "rotel $ROTEL_VERSION installed but rotel-agent was not found in the package" >&2; exit 1; }
dir=$("$VENV/bin/python" -c 'import rotel,os;print(os.path.dirname(rotel.__file__))')
# (the binary in 0.0.1a15 calls itself "0.0.1-alpha10": its --version is not the pin)
"$dir/rotel-agent" --version >&2 || true
