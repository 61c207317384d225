#!/usr/bin/env bash
# Idle cost of `claude-sessions serve` on a large, quiet config root.
#
#   bench/idle.sh
#   IDLE_FILES=50000 IDLE_SECONDS=60 bench/idle.sh
#
# Builds (once, reused) a tree of ${IDLE_FILES:-10000} small transcript files:
# copies of a small real fixture (spotter/transcripts/short.jsonl, ~10 KB,
# 5 assistant lines) with fresh ids (bench/make_corpus.py rewriting),
# ${IDLE_PER_PROJECT:-100} files per project folder. Starts serve on a free
# 127.0.0.1 port with that tree as CLAUDE_CONFIG_DIR and a fresh --state-dir,
# waits for /readyz == 200 (timeout ${IDLE_READY_TIMEOUT:-120} s), lets it settle
# ${IDLE_SETTLE:-2} s, then samples /proc/PID over ${IDLE_SECONDS:-30} s:
# CPU time (utime+stime), VmRSS, open fds, inotify watches, threads,
# context switches. Kills the server at the end.
#
# Environment: IDLE_FILES, IDLE_PER_PROJECT, IDLE_SECONDS, IDLE_SETTLE,
#   IDLE_READY_TIMEOUT, IDLE_TEMPLATE (glob relative to the fixture root),
#   CS_BIN (default target/release/claude-sessions), FIXTURES.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
FILES=${IDLE_FILES:-10000}
PER_PROJECT=${IDLE_PER_PROJECT:-100}
SECONDS_IDLE=${IDLE_SECONDS:-30}
SETTLE=${IDLE_SETTLE:-2}
READY_TIMEOUT=${IDLE_READY_TIMEOUT:-120}
TEMPLATE=${IDLE_TEMPLATE:-spotter/transcripts/short.jsonl}
BIN=${CS_BIN:-$ROOT/target/release/claude-sessions}
CORPUS="$HERE/out/idle-corpus"

if [[ -n "${FIXTURES:-}" ]]; then SRC=$FIXTURES
elif [[ -d "$ROOT/tests/fixtures/real" ]]; then SRC="$ROOT/tests/fixtures/real"
else SRC="$ROOT/../shared/fixtures/real"; fi

[[ -x "$BIN" ]] || { echo "error: $BIN not found (cargo build --release)" >&2; exit 2; }

# ---- corpus (reused when copies / per-project / template / source match)
if ! python3 - "$CORPUS/corpus.json" "$FILES" "$PER_PROJECT" "$TEMPLATE" "$SRC" <<'EOF'
import json, sys, pathlib
p, files, per, tmpl, src = sys.argv[1:6]
try:
    m = json.load(open(p))
except Exception:
    sys.exit(1)
sys.exit(0 if (m["copies"] == int(files) and m["copies_per_project"] == int(per)
               and m["include"] == [tmpl]
               and pathlib.Path(m["src"]).resolve() == pathlib.Path(src).resolve()) else 1)
EOF
then
  echo "generating $FILES files ($PER_PROJECT per project) from $TEMPLATE ..."
  python3 "$HERE/make_corpus.py" --src "$SRC" --out "$CORPUS" --copies "$FILES" \
    --copies-per-project "$PER_PROJECT" --include "$TEMPLATE" --force --quiet
fi
NFILES=$(find "$CORPUS/projects" -type f -name '*.jsonl' | wc -l)
NDIRS=$(find "$CORPUS/projects" -mindepth 1 -type d | wc -l)
echo "idle corpus: $CORPUS ($NFILES files, $NDIRS dirs, $(du -sm "$CORPUS/projects" | cut -f1) MiB)"

# ---- helpers
http_code() {  # URL -> HTTP status (000 on connection failure)
  if command -v curl >/dev/null 2>&1; then
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1" || true
  else
    python3 - "$1" <<'EOF' || echo 000
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=2).status)
except urllib.error.HTTPError as e:
    print(e.code)
except Exception:
    print("000")
EOF
  fi
}
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }  # utime+stime
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
status_field() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
ctx_switches() {  # PID FIELD -> sum over all threads
  cat /proc/"$1"/task/*/status 2>/dev/null | awk -v k="$2:" '$1 == k {n += $2} END {print n + 0}'
}
thread_ticks() {  # PID -> "tid comm utime+stime" per thread
  local t
  for t in /proc/"$1"/task/*; do
    [[ -r $t/stat ]] || continue
    printf '%s %s %s\n' "${t##*/}" "$(tr ' ' '_' <"$t/comm")" "$(sed 's/^.*) //' "$t/stat" | awk '{print $12 + $13}')"
  done
}
nfds() { ls "/proc/$1/fd" 2>/dev/null | wc -l; }
inotify_watches() {  # number of inotify watches held by PID
  local n=0 f
  for f in /proc/"$1"/fdinfo/*; do
    n=$((n + $(grep -c '^inotify wd:' "$f" 2>/dev/null || true)))
  done
  echo $n
}
now_ns() { date +%s%N; }

# ---- start server
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
STATE=$(mktemp -d "${TMPDIR:-/tmp}/cs-idle-state.XXXXXX")
LOG=$(mktemp "${TMPDIR:-/tmp}/cs-idle-log.XXXXXX")
PID=""
cleanup() {
  if [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; then
    kill "$PID" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$PID" 2>/dev/null || true
  fi
  rm -rf "$STATE"
  rm -f "$LOG"
}
trap cleanup EXIT

T_START=$(now_ns)
CLAUDE_CONFIG_DIR="$CORPUS" "$BIN" serve --web.listen-address "127.0.0.1:$PORT" --state-dir "$STATE" ${IDLE_SERVE_ARGS:-} >"$LOG" 2>&1 &
PID=$!
echo "serve pid $PID on 127.0.0.1:$PORT, state-dir $STATE"

code=000
while :; do
  if ! kill -0 "$PID" 2>/dev/null; then
    echo "error: serve exited early; log:" >&2; tail -n 30 "$LOG" >&2; exit 1
  fi
  code=$(http_code "http://127.0.0.1:$PORT/readyz")
  [[ "$code" == 200 ]] && break
  if (( ($(now_ns) - T_START) / 1000000000 >= READY_TIMEOUT )); then
    echo "error: /readyz not 200 after ${READY_TIMEOUT}s (last $code); log:" >&2; tail -n 30 "$LOG" >&2; exit 1
  fi
  sleep 0.05
done
T_READY=$(now_ns)
READY_TICKS=$(cpu_ticks "$PID")
READY_RSS=$(rss_kib "$PID")
printf 'ready after %.2f s (CPU %.2f s, RSS %.1f MiB)\n' \
  "$(python3 -c "print(($T_READY-$T_START)/1e9)")" \
  "$(python3 -c "print($READY_TICKS/$CLK_TCK)")" "$(python3 -c "print($READY_RSS/1024)")"

sleep "$SETTLE"

# ---- sample idleness
T0=$(now_ns); C0=$(cpu_ticks "$PID")
V0=$(ctx_switches "$PID" voluntary_ctxt_switches); N0=$(ctx_switches "$PID" nonvoluntary_ctxt_switches)
TT0=$(thread_ticks "$PID")
RSS_MIN=999999999; RSS_MAX=0; RSS_LAST=0
for ((s = 1; s <= SECONDS_IDLE; s++)); do
  sleep 1
  kill -0 "$PID" 2>/dev/null || { echo "error: serve died during sampling" >&2; tail -n 30 "$LOG" >&2; exit 1; }
  r=$(rss_kib "$PID"); RSS_LAST=$r
  (( r < RSS_MIN )) && RSS_MIN=$r
  (( r > RSS_MAX )) && RSS_MAX=$r
done
T1=$(now_ns); C1=$(cpu_ticks "$PID")
V1=$(ctx_switches "$PID" voluntary_ctxt_switches); N1=$(ctx_switches "$PID" nonvoluntary_ctxt_switches)
TT1=$(thread_ticks "$PID")
FDS=$(nfds "$PID")
WATCHES=$(inotify_watches "$PID")
THREADS=$(status_field "$PID" Threads)
HEALTH=$(http_code "http://127.0.0.1:$PORT/healthz")

python3 - <<EOF
wall = ($T1 - $T0) / 1e9
cpu = ($C1 - $C0) / $CLK_TCK
print(f"idle window {wall:.1f} s over $NFILES files in $NDIRS dirs:")
print(f"  CPU            {100 * cpu / wall:.3f} %  ({cpu:.2f} s CPU, tick = {1 / $CLK_TCK * 1000:.0f} ms)")
print(f"  RSS            last {$RSS_LAST / 1024:.1f} MiB, min {$RSS_MIN / 1024:.1f}, max {$RSS_MAX / 1024:.1f} (at ready {$READY_RSS / 1024:.1f})")
print(f"  open fds       $FDS  (files: $NFILES)")
print(f"  inotify watches $WATCHES  (dirs: $NDIRS)")
print(f"  threads        $THREADS")
print(f"  ctx switches   {($V1 - $V0) / wall:.1f}/s voluntary, {($N1 - $N0) / wall:.1f}/s involuntary (all threads)")
t0 = {l.split()[0]: int(l.split()[2]) for l in """$TT0""".splitlines() if l.strip()}
busy = []
for l in """$TT1""".splitlines():
    if not l.strip():
        continue
    tid, comm, ticks = l.split()
    d = int(ticks) - t0.get(tid, 0)
    if d:
        busy.append(f"{comm}({tid}) {d / $CLK_TCK:.2f}s")
print("  CPU by thread  " + (", ".join(busy) if busy else "none measurable"))
print(f"  /healthz       $HEALTH")
EOF
