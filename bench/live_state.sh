#!/usr/bin/env bash
# What following one live session costs the state folder: bytes written and CPU,
# with a large history already read.
#
#   bench/live_state.sh                      # this build only
#   BASE_BIN=/path/to/old/claude-sessions bench/live_state.sh   # and a baseline, same run
#
# Builds (once, reused) a ${LIVE_HISTORY_MB:-1000} MB corpus from the real fixtures with
# fresh ids (bench/make_corpus.py), starts `serve` on it with a fresh --state-dir and the
# default checkpoint interval, waits until the history is read, then appends
# ${LIVE_LINES:-391} lines of a real session (spotter's main transcript, ids rewritten so
# nothing is a duplicate, timestamps now) over ${LIVE_SECONDS:-45} s, as Claude Code
# would. Measured from just before the first line to ${LIVE_SETTLE:-2} s after the last:
# bytes the process wrote (wchar of /proc/PID/io: the state folder is all it writes;
# nothing scrapes it meanwhile) and CPU time (utime+stime). Each binary runs against
# the same corpus and the same lines; the ratios are printed at the end.
#
# Environment: CS_BIN (default target/release/claude-sessions), BASE_BIN, LIVE_HISTORY_MB,
#   LIVE_LINES, LIVE_SECONDS, LIVE_SETTLE, FIXTURES.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
BIN=${CS_BIN:-$ROOT/target/release/claude-sessions}
MB=${LIVE_HISTORY_MB:-1000}
LINES=${LIVE_LINES:-391}
SPAN=${LIVE_SECONDS:-45}
SETTLE=${LIVE_SETTLE:-2}
if [[ -n "${FIXTURES:-}" ]]; then SRC=$FIXTURES
elif [[ -d "$ROOT/tests/fixtures/real" ]]; then SRC="$ROOT/tests/fixtures/real"
else SRC="$ROOT/../shared/fixtures/real"; fi
SESSION="$SRC/spotter/transcripts/4d5611e5-241a-462a-8d15-5122611a9569.jsonl"
CORPUS="$HERE/out/live-corpus-$MB"

[[ -x "$BIN" ]] || { echo "error: $BIN not found (cargo build --release)" >&2; exit 2; }
if [[ ! -f "$CORPUS/corpus.json" ]]; then
  echo "==> building a $MB MB history in $CORPUS"
  python3 "$HERE/make_corpus.py" --src "$SRC" --out "$CORPUS" --target-mb "$MB" --force --quiet
fi
# make_corpus writes <out>/projects/...; the config root is the corpus folder.
CONFIG_ROOT=$CORPUS
[[ -d "$CONFIG_ROOT/projects" ]] || { echo "error: no projects/ in $CORPUS" >&2; exit 2; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run NAME BIN: prints "NAME wchar_bytes cpu_seconds state_bytes"
run() {
  local name=$1 bin=$2 state port pid
  state=$(mktemp -d)
  port=$(free_port)
  local live="$CONFIG_ROOT/projects/-bench-live-$name"
  rm -rf "$live"; mkdir -p "$live"
  CLAUDE_CONFIG_DIR=$CONFIG_ROOT "$bin" serve --web.listen-address "127.0.0.1:$port" \
    --state-dir "$state" --process-check-interval 0s >"$state.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 600); do
    curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.2
  done
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { echo "error: $name not ready" >&2; kill $pid; exit 1; }
  sleep 2
  python3 - "$pid" "$SESSION" "$live" "$LINES" "$SPAN" "$SETTLE" "$name" <<'EOF'
import json, os, random, re, sys, time, datetime
pid, session, live, n, span, settle, name = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]), sys.argv[7]
def io():
    d = dict(l.split(": ") for l in open(f"/proc/{pid}/io").read().splitlines())
    st = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(d["wchar"]), (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")
rnd = random.Random(f"live-{name}")
ids = {}
def fresh(m):
    s = m.group(0)
    if s not in ids:
        ids[s] = "".join(rnd.choice("0123456789abcdef") if c in "0123456789abcdef" else c for c in s) if "-" in s \
            else s[:8] + "".join(rnd.choice("ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz123456789") for _ in s[8:])
    return ids[s]
pat = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|(?:msg|req|toolu)_[A-Za-z0-9]{8,}")
lines = open(session).read().splitlines()[:n]
sid = None
w0, c0 = io()
start = time.time()
out = os.path.join(live, "session.jsonl")
for i, l in enumerate(lines):
    l = pat.sub(fresh, l)
    try:
        v = json.loads(l)
        if "timestamp" in v:
            v["timestamp"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        l = json.dumps(v, separators=(",", ":"))
    except ValueError:
        pass
    with open(out, "a") as f:
        f.write(l + "\n")
    time.sleep(max(0.0, start + span * (i + 1) / len(lines) - time.time()))
time.sleep(settle)
w1, c1 = io()
print(f"{name} {w1 - w0} {c1 - c0:.3f}")
EOF
  kill -TERM $pid; wait $pid || true
  rm -rf "$state" "$state.log" "$live"
}

echo "==> one live session ($LINES lines over $SPAN s) over a $MB MB history"
results=$(mktemp)
[[ -n "${BASE_BIN:-}" ]] && run base "$BASE_BIN" | tee -a "$results"
run this "$BIN" | tee -a "$results"
python3 - "$results" "$LINES" <<'EOF'
import sys
rows = {l.split()[0]: (int(l.split()[1]), float(l.split()[2])) for l in open(sys.argv[1]) if l.strip()}
n = int(sys.argv[2])
for name, (w, c) in rows.items():
    print(f"{name:5} wrote {w / 2**20:8.2f} MiB ({w / n:9.0f} B per line)   CPU {c:6.3f} s")
if "base" in rows:
    (bw, bc), (tw, tc) = rows["base"], rows["this"]
    print(f"bytes written: {bw / max(tw, 1):.0f}x fewer; CPU: {tc / bc:.2f} of the baseline")
EOF
rm -f "$results"
