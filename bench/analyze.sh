#!/usr/bin/env bash
# `analyze` against `scan` on the same corpus: the issue's bar is analyze under 2× scan.
#
#   bench/analyze.sh                  # 1,000 MB corpus, 7 interleaved pairs (median)
#   BENCH_MB=300 bench/analyze.sh     # 300 MB
#   BENCH_QUICK=1 bench/analyze.sh    # 20 MB, 1 pair (smoke test)
#
# Environment (as bench/run.sh):
#   BENCH_MB         corpus size in MB (10^6 bytes), default 1000 (20 with BENCH_QUICK=1)
#   BENCH_REPS       pairs (scan, analyze) timed one after the other, default 7 (1 quick)
#   BENCH_THREADS    analyze --threads, default 2 (scan reads on its own threads)
#   BENCH_SKIP_BUILD 1 = do not run `cargo build --release`
#   CS_BIN           binary to benchmark (default target/release/claude-sessions)
#   FIXTURES         fixture root (default tests/fixtures/real, else ../shared/fixtures/real)
#
# The corpus is bench/out/corpus (shared with run.sh; rebuilt when its size differs),
# read once with `cat` before timing (warm page cache). Scan and analyze alternate, so a
# burst of other work on the machine hits both. Prints each run, the medians, the ratio
# analyze/scan and the peak RSS (GNU time), and saves bench/out/analyze-<time>.json.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
OUT="$HERE/out"
mkdir -p "$OUT"

# shellcheck source=bench/env.sh
source "$HERE/env.sh"
THREADS=${BENCH_THREADS:-2}
BIN=${CS_BIN:-$ROOT/target/release/claude-sessions}

if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  echo "== cargo build --release"
  (cd "$ROOT" && cargo build --release)
fi
[[ -x "$BIN" ]] || { echo "error: $BIN missing" >&2; exit 1; }

CORPUS="$OUT/corpus"
if ! python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); sys.exit(0 if m["target_mb"]==float(sys.argv[2]) and not m.get("include") else 1)' \
    "$CORPUS/corpus.json" "$MB" 2>/dev/null; then
  echo "== building a $MB MB corpus in $CORPUS"
  python3 "$HERE/make_corpus.py" --src "$SRC" --out "$CORPUS" --target-mb "$MB" --force --quiet
  rm -f "$CORPUS/check.json"
fi
CORPUS_MB=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes"]/1e6)' "$CORPUS/corpus.json")
echo "== corpus: $CORPUS_MB MB; warming the page cache (cat once)"
find "$CORPUS/projects" -type f -print0 | xargs -0 cat >/dev/null

RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cs-bench-analyze.XXXXXX")
trap 'rm -rf "$RUN_DIR"' EXIT
RESULTS="$RUN_DIR/results.tsv"
: >"$RESULTS"

# one LABEL CMD...: time CMD once, append "label wall rss rc" to $RESULTS.
one() {
  local label=$1; shift
  local t0 t1 rc wall rss
  t0=$(date +%s%N)
  set +e
  "$TIME" -f '%e %M' -o "$RUN_DIR/time.txt" "$@" >/dev/null 2>"$RUN_DIR/$label.err"
  rc=$?
  set -e
  t1=$(date +%s%N)
  wall=$(python3 -c "print(($t1-$t0)/1e9)")
  rss=$(tail -n1 "$RUN_DIR/time.txt" | awk '{print $2}')
  printf '%s\t%s\t%s\t%d\n' "$label" "$wall" "${rss:-0}" "$rc" >>"$RESULTS"
  printf '  %-8s %7.2fs  peak RSS %6.1f MiB  rc=%d\n' "$label" "$wall" "$(python3 -c "print(${rss:-0}/1024)")" "$rc"
  if [[ $rc != 0 ]]; then tail -n5 "$RUN_DIR/$label.err" >&2; exit 1; fi
}

echo "== timing $REPS pair(s): scan, then analyze --threads $THREADS"
for ((r = 1; r <= REPS; r++)); do
  one scan env CLAUDE_CONFIG_DIR="$CORPUS" "$BIN" scan --format json --state-dir "$(mktemp -d "$RUN_DIR/s.XXXXXX")"
  one analyze env CLAUDE_CONFIG_DIR="$CORPUS" "$BIN" analyze --threads "$THREADS" --out "$RUN_DIR/analysis"
done
tail -n1 "$RUN_DIR/analyze.err"

python3 - "$RESULTS" "$CORPUS_MB" "$OUT/analyze-$(date -u +%Y%m%dT%H%M%SZ).json" "$THREADS" <<'EOF'
import json, os, statistics, sys
path, mb, out, threads = sys.argv[1], float(sys.argv[2]), sys.argv[3], int(sys.argv[4])
runs = {}
for line in open(path):
    label, wall, rss, rc = line.split("\t")
    runs.setdefault(label, []).append((float(wall), int(rss)))
stats = {k: {"median_s": statistics.median(w for w, _ in v), "runs_s": [round(w, 3) for w, _ in v],
             "peak_rss_mib": max(r for _, r in v) / 1024} for k, v in runs.items()}
print(f"\n{'':<8} {'median s':>9} {'MB/s':>8} {'peak RSS MiB':>13}")
for k, s in stats.items():
    print(f"{k:<8} {s['median_s']:>9.2f} {mb / s['median_s']:>8.1f} {s['peak_rss_mib']:>13.1f}")
ratio = stats["analyze"]["median_s"] / stats["scan"]["median_s"]
print(f"\nanalyze / scan = {ratio:.2f} (the bar: < 2) on {mb:.0f} MB, {os.cpu_count()} CPUs, "
      f"load {open('/proc/loadavg').read().split()[0]}")
json.dump({"corpus_mb": mb, "threads": threads, "stats": stats, "ratio": ratio,
           "nproc": os.cpu_count(), "loadavg_after": open("/proc/loadavg").read().split()[:3]}, open(out, "w"), indent=1)
print(f"saved {out}")
EOF
