#!/usr/bin/env bash
# End-to-end throughput benchmark: cat vs `claude-sessions scan` vs ccusage.
#
#   bench/run.sh                 # 1,000 MB and 250 MB corpora, 7 repetitions (medians)
#   BENCH_MB=300 bench/run.sh    # other sizes (the small corpus is a quarter)
#   BENCH_QUICK=1 bench/run.sh   # 20 MB, 1 repetition (smoke test)
#
# Environment:
#   BENCH_MB        corpus size in MB (10^6 bytes), default 1000 (20 with BENCH_QUICK=1);
#                   the small corpus is a quarter of it
#   BENCH_REPS      repetitions, default 7 (1 with BENCH_QUICK=1); each runs every tool once
#   BENCH_QUICK     1 = tiny corpus, 1 repetition
#   BENCH_SKIP_BUILD 1 = do not run `cargo build --release`
#   CS_BIN          binary to benchmark (default target/release/claude-sessions)
#   CCUSAGE_BIN     ccusage executable (default .tools/node_modules/.bin/ccusage;
#                   install: npm install --prefix .tools ccusage@20.0.24)
#   FIXTURES        fixture root (default tests/fixtures/real, else ../shared/fixtures/real)
#
# Page cache: we cannot drop it (no root assumption), so every tool is measured
# warm: the corpus is read once with `cat` before any timing.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
OUT="$HERE/out"
mkdir -p "$OUT"

# shellcheck source=bench/env.sh
source "$HERE/env.sh"
SMALL_MB=$(python3 -c "import sys; print(f'{float(sys.argv[1])/4:g}')" "$MB")
BIN=${CS_BIN:-$ROOT/target/release/claude-sessions}

say() { printf '\n== %s\n' "$*"; }

# ---------------------------------------------------------------- build
HAVE_BIN=0
if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
  say "cargo build --release"
  if (cd "$ROOT" && cargo build --release); then :; else
    echo "warning: cargo build --release failed; scan rows will be skipped" >&2
  fi
fi
if [[ -x "$BIN" ]]; then HAVE_BIN=1; else echo "note: $BIN missing; scan rows skipped" >&2; fi

# ---------------------------------------------------------------- ccusage
CCU=${CCUSAGE_BIN:-}
if [[ -z "$CCU" && -x "$ROOT/.tools/node_modules/.bin/ccusage" ]]; then
  CCU="$ROOT/.tools/node_modules/.bin/ccusage"
fi
if [[ -n "$CCU" && ! -x "$CCU" ]]; then
  echo "note: CCUSAGE_BIN=$CCU is not executable; ccusage rows skipped" >&2
  CCU=""
fi
# the npm `ccusage` is a node wrapper that spawns a native binary; time that
# binary too (row "ccusage native") when it sits in the usual place
CCU_NATIVE=""
if [[ -n "$CCU" ]]; then
  for c in "$(dirname "$(dirname "$CCU")")"/@ccusage/ccusage-*/bin/ccusage \
           "$(dirname "$(readlink -f "$CCU")")"/../../@ccusage/ccusage-*/bin/ccusage; do
    if [[ -x "$c" && -f "$c" ]]; then CCU_NATIVE=$c; break; fi
  done
fi
if [[ -z "$CCU" ]]; then
  echo "note: ccusage not found; ccusage rows skipped." >&2
  echo "      install: npm install --prefix $ROOT/.tools ccusage@20.0.24  (or set CCUSAGE_BIN)" >&2
fi

# ---------------------------------------------------------------- corpus
# ensure_corpus DIR MB: (re)generate DIR unless its manifest says same size,
# same generator and same source; verify scaling once after generating.
ensure_corpus() {
  local dir=$1 mb=$2
  if python3 - "$dir" "$mb" "$SRC" "$HERE/make_corpus.py" <<'EOF'
import json, re, sys, pathlib
d, mb, src, gen = sys.argv[1:5]
try:
    m = json.loads((pathlib.Path(d) / "corpus.json").read_text())
    v = json.loads((pathlib.Path(d) / "check.json").read_text())
except Exception:
    sys.exit(1)
ver = int(re.search(r"GENERATOR_VERSION = (\d+)", open(gen).read()).group(1))
ok = (m.get("target_mb") == float(mb) and m.get("generator_version") == ver
      and pathlib.Path(m.get("src", "")).resolve() == pathlib.Path(src).resolve()
      and not m.get("include") and v.get("verify_ok"))
sys.exit(0 if ok else 1)
EOF
  then
    echo "reusing corpus $dir ($(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(m["copies"], "copies,", m["bytes"], "bytes")' "$dir/corpus.json"))"
  else
    python3 "$HERE/make_corpus.py" --src "$SRC" --out "$dir" --target-mb "$mb" --force --quiet
    rm -f "$dir/check.json"
    if python3 "$HERE/check_corpus.py" "$dir" --json >"$dir/check.json.tmp"; then
      mv "$dir/check.json.tmp" "$dir/check.json"
    else
      cat "$dir/check.json.tmp" >&2 || true
      echo "error: corpus verification failed for $dir" >&2
      exit 1
    fi
  fi
}

CORPUS="$OUT/corpus"
CORPUS_SMALL="$OUT/corpus-small"
say "corpus: ${MB} MB in $CORPUS (and ${SMALL_MB} MB in $CORPUS_SMALL) from $SRC"
ensure_corpus "$CORPUS" "$MB"
ensure_corpus "$CORPUS_SMALL" "$SMALL_MB"

corpus_mb() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["bytes"]/1e6)' "$1/corpus.json"; }
BYTES_MB=$(corpus_mb "$CORPUS")
SMALL_BYTES_MB=$(corpus_mb "$CORPUS_SMALL")
REF_TOTAL=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["total_tokens"])' "$CORPUS/check.json")

say "warming page cache (cat once)"
find "$CORPUS/projects" "$CORPUS_SMALL/projects" -type f -print0 | xargs -0 cat >/dev/null

# ---------------------------------------------------------------- measure
RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cs-bench.XXXXXX")
trap 'rm -rf "$RUN_DIR"' EXIT
RESULTS="$RUN_DIR/results.tsv"   # label  rep  wall_s  rss_kib  rc
: >"$RESULTS"

# measure_once LABEL REP CMD...   runs CMD once; "@STATE@" in CMD becomes a fresh
# temp dir. stdout of the last run is kept in $RUN_DIR/LABEL.out
measure_once() {
  local label=$1 r=$2; shift 2
  local args a t0 t1 rc state rss
  state=$(mktemp -d "$RUN_DIR/state.XXXXXX")
  args=()
  for a in "$@"; do args+=("${a//@STATE@/$state}"); done
  t0=$(date +%s%N)
  set +e
  "$TIME" -f '%e %M' -o "$RUN_DIR/time.txt" "${args[@]}" >"$RUN_DIR/$label.out" 2>"$RUN_DIR/$label.err"
  rc=$?
  set -e
  t1=$(date +%s%N)
  rm -rf "$state"
  rss=$(tail -n1 "$RUN_DIR/time.txt" | awk '{print $2}')
  printf '%s\t%d\t%s\t%s\t%d\n' "$label" "$r" "$(python3 -c "print(($t1-$t0)/1e9)")" "${rss:-0}" "$rc" >>"$RESULTS"
  printf '  %-24s rep %d: %6.3fs  rss %s KiB  rc=%d\n' "$label" "$r" "$(python3 -c "print(($t1-$t0)/1e9)")" "${rss:-?}" "$rc"
  if [[ $rc != 0 ]]; then
    echo "  $label failed (rc=$rc); stderr tail:" >&2
    tail -n5 "$RUN_DIR/$label.err" >&2 || true
  fi
}

CAT_CMD=(sh -c 'find "$1" -type f -name "*.jsonl" -print0 | xargs -0 cat >/dev/null' sh)

# other activity on the machine makes the numbers noisy: sample CPU busy % for 1 s
BUSY=$(python3 -c '
import time
def snap():
    v = list(map(int, open("/proc/stat").readline().split()[1:]))
    return sum(v), v[3] + v[4]
t0, i0 = snap(); time.sleep(1); t1, i1 = snap()
print(round(100 * (1 - (i1 - i0) / max(1, t1 - t0))))')
if (( BUSY > 20 )); then
  echo "warning: CPUs ${BUSY}% busy just before timing (other processes); results will be noisy" >&2
fi

# One repetition runs every tool once on both corpora, in turn, so a busy spell
# on the shared machine falls on all of them rather than on one.
say "timing: $REPS repetition(s), each running every tool once on $BYTES_MB MB and on $SMALL_BYTES_MB MB"
for ((r = 1; r <= REPS; r++)); do
  for size in big small; do
    if [[ $size == big ]]; then dir=$CORPUS; sfx=""; else dir=$CORPUS_SMALL; sfx="_small"; fi
    measure_once "cat$sfx" "$r" "${CAT_CMD[@]}" "$dir/projects"
    if [[ $HAVE_BIN == 1 ]]; then
      measure_once "scan$sfx" "$r" env CLAUDE_CONFIG_DIR="$dir" "$BIN" scan --format json --state-dir @STATE@
    fi
    if [[ -n "$CCU" ]]; then
      measure_once "ccusage_session$sfx" "$r" env CLAUDE_CONFIG_DIR="$dir" "$CCU" session --offline --json
      measure_once "ccusage_daily$sfx" "$r" env CLAUDE_CONFIG_DIR="$dir" "$CCU" daily --offline --json
    fi
  done
done
if [[ $HAVE_BIN == 1 ]]; then
  # the incremental path: a state dir left by a previous scan is reused
  WARM_STATE="$RUN_DIR/warm-state"; mkdir -p "$WARM_STATE"
  env CLAUDE_CONFIG_DIR="$CORPUS" "$BIN" scan --format json --state-dir "$WARM_STATE" >/dev/null 2>&1 || true
  if [[ -n "$(ls -A "$WARM_STATE")" ]]; then
    for ((r = 1; r <= REPS; r++)); do
      measure_once scan_warm_state "$r" env CLAUDE_CONFIG_DIR="$CORPUS" "$BIN" scan --format json --state-dir "$WARM_STATE"
    done
  fi
fi

# ---------------------------------------------------------------- report
say "results"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
BENCH_BUSY=$BUSY python3 "$HERE/report.py" "$RESULTS" "$BYTES_MB" "$SMALL_BYTES_MB" "$RUN_DIR" "$REF_TOTAL" \
  "$OUT/results-$STAMP.json" "$MB" "${CCU:-}" "$REPS"
