#!/usr/bin/env bash
# The console's session view with thousands of events: a small and a large session
# measured in the same run (ratios large/small), in headless Chromium.
#
#   bench/console.sh
#   BENCH_LARGE=5000 BENCH_REPS=5 bench/console.sh
#   CS_BIN=/path/to/other/claude-sessions BENCH_SKIP_BUILD=1 bench/console.sh
#
# Starts `serve` on 127.0.0.1 (free port) with a temporary config root and state dir,
# writes two sessions with bench/console_session.py (current timestamps, an error every
# 50 calls, a prompt every 100, one sub-agent), waits until the daemon counts their
# calls, and runs bench/console.mjs (playwright-core from tests/browser/node_modules,
# Chromium at $CHROMIUM or /usr/bin/chromium). Prints a table and a JSON line, which is
# also saved as bench/out/console-<UTC time>.json. Kills the server at the end.
#
# Environment:
#   BENCH_SMALL       calls of the baseline session, default 100
#   BENCH_LARGE       calls of the large session, default 2500 (10,000 events; the
#                     history keeps the latest 5,000)
#   BENCH_LIVE        calls appended live per run, default 500
#   BENCH_REPS        runs per session (median), default 3
#   BENCH_KEYS        presses of k and of j per run, default 20
#   BENCH_PROFILE     1 = print the top functions (self time) of the large session's open
#   BENCH_SKIP_BUILD  1 = do not run `cargo build --release`
#   BENCH_SERVE_ARGS  more `serve` flags (e.g. --include-content)
#   CS_BIN            binary to benchmark (default target/release/claude-sessions)
#   CHROMIUM          Chromium executable (default /usr/bin/chromium)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
OUT="$HERE/out"
mkdir -p "$OUT"
SMALL=${BENCH_SMALL:-100}
LARGE=${BENCH_LARGE:-2500}
LIVE=${BENCH_LIVE:-500}
REPS=${BENCH_REPS:-3}
KEYS=${BENCH_KEYS:-20}
BIN=${CS_BIN:-$ROOT/target/release/claude-sessions}

if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  echo "== cargo build --release"
  (cd "$ROOT" && cargo build --release)
fi
[[ -x "$BIN" ]] || { echo "error: $BIN not found (cargo build --release)" >&2; exit 2; }
if [[ ! -f "$ROOT/tests/browser/node_modules/playwright-core/package.json" ]]; then
  echo "error: playwright-core missing: (cd tests/browser && npm ci), or scripts/test.sh" >&2
  exit 2
fi
[[ -x "${CHROMIUM:-/usr/bin/chromium}" ]] || { echo "error: no Chromium at ${CHROMIUM:-/usr/bin/chromium}" >&2; exit 2; }

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cs-console-bench.XXXXXX")
mkdir -p "$TMP/config/projects" "$TMP/state"
PID=""
cleanup() {
  if [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; then
    kill "$PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

CLAUDE_CONFIG_DIR="$TMP/config" "$BIN" serve --web.listen-address "127.0.0.1:$PORT" --state-dir "$TMP/state" \
  ${BENCH_SERVE_ARGS:-} >"$TMP/serve.log" 2>&1 &
PID=$!
URL="http://127.0.0.1:$PORT"
for i in $(seq 600); do
  kill -0 "$PID" 2>/dev/null || { echo "error: serve exited; log:" >&2; tail -n 30 "$TMP/serve.log" >&2; exit 1; }
  code=$(python3 -c "import sys,urllib.request
try: print(urllib.request.urlopen(sys.argv[1], timeout=2).status)
except Exception: print(0)" "$URL/readyz")
  [[ "$code" == 200 ]] && break
  (( i == 600 )) && { echo "error: /readyz not 200 after 60 s" >&2; exit 1; }
  sleep 0.1
done

# Lines are stamped now: the daemon follows only lines stamped after its start.
S_ID=$(python3 -c 'import uuid; print(uuid.uuid4())')
L_ID=$(python3 -c 'import uuid; print(uuid.uuid4())')
S_CALLS=$(python3 "$HERE/console_session.py" --projects "$TMP/config/projects" --session "$S_ID" --calls "$SMALL" --agent |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["calls"])')
L_CALLS=$(python3 "$HERE/console_session.py" --projects "$TMP/config/projects" --session "$L_ID" --calls "$LARGE" --agent |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["calls"])')
echo "serve $("$BIN" --version 2>/dev/null || echo "$BIN") on $URL; sessions: small $S_ID ($S_CALLS calls), large $L_ID ($L_CALLS calls)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs"

RESULT="$OUT/console-$(date -u +%Y%m%dT%H%M%SZ).json"
set +e
node "$HERE/console.mjs" --url "$URL" --projects "$TMP/config/projects" --gen "$HERE/console_session.py" \
  --session "small=$S_ID:$S_CALLS" --session "large=$L_ID:$L_CALLS" \
  --reps "$REPS" --live "$LIVE" --keys "$KEYS" $([[ "${BENCH_PROFILE:-0}" == 1 ]] && echo --profile) | tee "$TMP/out.txt"
rc=${PIPESTATUS[0]}
set -e
tail -n 1 "$TMP/out.txt" > "$RESULT"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg); JSON saved as $RESULT"
exit "$rc"
