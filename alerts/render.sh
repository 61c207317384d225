#!/bin/sh
# Writes a copy of claude-sessions.rules.yml whose runbook links are absolute URLs.
#
#   alerts/render.sh RUNBOOK_BASE=https://github.com/you/claude-sessions/blob/main OUT_FILE
#   RUNBOOK_BASE=… alerts/render.sh OUT_FILE        (the same, from the environment)
#   alerts/render.sh RUNBOOK_BASE=… > OUT_FILE      (no OUT_FILE: standard output)
#
# The rules file as shipped links each alert to its runbook section relative to the
# repository's root: `runbook_url: alerts/README.md#<alert in lowercase>`. RUNBOOK_BASE
# is where that root can be browsed (a forge's "blob/<branch>" URL, an internal docs
# site, file:///path/to/clone); every such link becomes
# `<RUNBOOK_BASE>/alerts/README.md#<alert>`. Nothing else changes. See alerts/README.md,
# "Runbook links". POSIX sh and awk only.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=""
for arg in "$@"; do
  case $arg in
    RUNBOOK_BASE=*) RUNBOOK_BASE=${arg#RUNBOOK_BASE=} ;;
    -h | --help)
      sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      if [ -n "$out" ]; then
        printf 'render.sh: one output file only (got %s and %s)\n' "$out" "$arg" >&2
        exit 2
      fi
      out=$arg
      ;;
  esac
done
if [ -z "${RUNBOOK_BASE:-}" ]; then
  echo "usage: alerts/render.sh RUNBOOK_BASE=<URL of the repository's root> [OUT_FILE]" >&2
  exit 2
fi
# Trailing slashes off: the link adds its own.
base=$RUNBOOK_BASE
while [ "${base%/}" != "$base" ]; do base=${base%/}; done
export RUNBOOK_LINK_BASE="$base"

render() {
  # ENVIRON, not -v: awk would read backslashes in the URL as escapes.
  awk '
    BEGIN { prefix = "runbook_url: alerts/README.md#"; base = ENVIRON["RUNBOOK_LINK_BASE"] }
    {
      i = index($0, prefix)
      if (i > 0) {
        $0 = substr($0, 1, i - 1) "runbook_url: " base "/alerts/README.md#" substr($0, i + length(prefix))
        n++
      }
      print
    }
    END {
      if (n == 0) { print "render.sh: no runbook_url: alerts/README.md#… line found" > "/dev/stderr"; exit 1 }
    }' "$here/claude-sessions.rules.yml"
}

if [ -z "$out" ]; then
  render
else
  render >"$out.tmp"
  mv "$out.tmp" "$out"
  printf 'render.sh: %s, runbook links under %s/alerts/README.md\n' "$out" "$base" >&2
fi
