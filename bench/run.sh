#!/usr/bin/env bash
# End-to-end throughput benchmark: cat vs `claude-sessions scan` vs ccusage.
#
#   bench/run.sh                 # 300 MB corpus, 3 repetitions (median)
#   BENCH_MB=1000 bench/run.sh   # other size
#   BENCH_QUICK=1 bench/run.sh   # 20 MB, 1 repetition (smoke test)
#
# Environment:
#   BENCH_MB        corpus size in MB (10^6 bytes), default 300 (20 with BENCH_QUICK=1)
#   BENCH_REPS      repetitions per measurement, default 3 (1 with BENCH_QUICK=1)
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

# measure LABEL CMD...   runs CMD $REPS times; "@STATE@" in CMD becomes a fresh
# temp dir per repetition. stdout of the last run is kept in $RUN_DIR/LABEL.out
measure() {
  local label=$1; shift
  local r args a t0 t1 rc state
  for ((r = 1; r <= REPS; r++)); do
    state=$(mktemp -d "$RUN_DIR/state.XXXXXX")
    args=()
    for a in "$@"; do args+=("${a//@STATE@/$state}"); done
    t0=$(date +%s%N)
    set +e
    "$TIME" -f '%e %M' -o "$RUN_DIR/time.txt" "${args[@]}" >"$RUN_DIR/$label.out" 2>"$RUN_DIR/$label.err"
    rc=$?
    set -e
    t1=$(date +%s%N)
    local rss
    rss=$(tail -n1 "$RUN_DIR/time.txt" | awk '{print $2}')
    printf '%s\t%d\t%s\t%s\t%d\n' "$label" "$r" "$(python3 -c "print(($t1-$t0)/1e9)")" "${rss:-0}" "$rc" >>"$RESULTS"
    printf '  %-22s rep %d: %6.2fs  rss %s KiB  rc=%d\n' "$label" "$r" "$(python3 -c "print(($t1-$t0)/1e9)")" "${rss:-?}" "$rc"
    if [[ $rc != 0 ]]; then
      echo "  $label failed (rc=$rc); stderr tail:" >&2
      tail -n5 "$RUN_DIR/$label.err" >&2 || true
      break
    fi
  done
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
say "timing, $REPS repetition(s) each, corpus $BYTES_MB MB"
measure cat "${CAT_CMD[@]}" "$CORPUS/projects"
if [[ $HAVE_BIN == 1 ]]; then
  measure scan env CLAUDE_CONFIG_DIR="$CORPUS" "$BIN" scan --format json --state-dir @STATE@
  # same, but the state dir left by a previous scan is reused (incremental path)
  WARM_STATE="$RUN_DIR/warm-state"; mkdir -p "$WARM_STATE"
  env CLAUDE_CONFIG_DIR="$CORPUS" "$BIN" scan --format json --state-dir "$WARM_STATE" >/dev/null 2>&1 || true
  if [[ -n "$(ls -A "$WARM_STATE")" ]]; then
    measure scan_warm_state env CLAUDE_CONFIG_DIR="$CORPUS" "$BIN" scan --format json --state-dir "$WARM_STATE"
  else
    echo "  (scan left nothing in --state-dir: 'reused state-dir' row skipped)"
  fi
fi
if [[ -n "$CCU" ]]; then
  measure ccusage env CLAUDE_CONFIG_DIR="$CORPUS" "$CCU" session --offline --json
  if [[ -n "$CCU_NATIVE" ]]; then
    measure ccusage_native env CLAUDE_CONFIG_DIR="$CORPUS" "$CCU_NATIVE" session --offline --json
  fi
fi
if [[ $HAVE_BIN == 1 ]]; then
  say "scan on the 1/4-size corpus ($SMALL_BYTES_MB MB) for RSS vs corpus size"
  measure cat_small "${CAT_CMD[@]}" "$CORPUS_SMALL/projects"
  measure scan_small env CLAUDE_CONFIG_DIR="$CORPUS_SMALL" "$BIN" scan --format json --state-dir @STATE@
fi

# ---------------------------------------------------------------- report
say "results"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
BENCH_BUSY=$BUSY python3 - "$RESULTS" "$BYTES_MB" "$SMALL_BYTES_MB" "$RUN_DIR" "$REF_TOTAL" "$OUT/results-$STAMP.json" "$MB" "${CCU:-}" <<'EOF'
import json, os, platform, statistics, sys
res_path, mb, small_mb, run_dir, ref_total, out_json, target_mb, ccu = sys.argv[1:9]
mb, small_mb, ref_total = float(mb), float(small_mb), int(ref_total)
rows = {}
for line in open(res_path):
    label, rep, wall, rss, rc = line.rstrip("\n").split("\t")
    rows.setdefault(label, []).append((float(wall), int(rss), int(rc)))

def stat(label):
    runs = rows.get(label)
    if not runs or any(rc != 0 for *_, rc in runs):
        return None
    return {"median_s": statistics.median(w for w, _, _ in runs),
            "runs_s": [round(w, 4) for w, _, _ in runs],
            "peak_rss_mib": max(r for _, r, _ in runs) / 1024}

size = {"cat": mb, "scan": mb, "scan_warm_state": mb, "ccusage": mb, "ccusage_native": mb, "cat_small": small_mb, "scan_small": small_mb}
names = {"cat": "cat (all files)", "scan": "claude-sessions scan", "scan_warm_state": "scan, reused state-dir",
         "ccusage": "ccusage session", "ccusage_native": "ccusage native binary", "cat_small": "cat (1/4 corpus)", "scan_small": "scan (1/4 corpus)"}
stats = {l: stat(l) for l in size}
base_ccu = stats["ccusage"]["median_s"] if stats["ccusage"] else None
print(f"{'tool':<26} {'MB':>8} {'median s':>9} {'MB/s':>8} {'peak RSS MiB':>13} {'t/t_ccusage':>12} {'t/t_cat':>8}")
for l in size:
    s = stats[l]
    if s is None:
        if l in rows:
            print(f"{names[l]:<26} {size[l]:>8.1f}   FAILED (see stderr above)")
        continue
    cat = stats["cat_small" if l.endswith("_small") else "cat"]
    t = s["median_s"]
    r_ccu = f"{t / base_ccu:.3f}" if base_ccu and not l.endswith("_small") else "-"
    r_cat = f"{t / cat['median_s']:.2f}" if cat else "-"
    print(f"{names[l]:<26} {size[l]:>8.1f} {t:>9.3f} {size[l] / t:>8.1f} {s['peak_rss_mib']:>13.1f} {r_ccu:>12} {r_cat:>8}")
print("(t/t_X = median wall time divided by X's; < 1 means faster than X; t_ccusage = npm ccusage CLI)")

if stats["scan"] and stats["scan_small"]:
    a, b = stats["scan_small"]["peak_rss_mib"], stats["scan"]["peak_rss_mib"]
    print(f"\nscan peak RSS: {small_mb:.1f} MB corpus -> {a:.1f} MiB; {mb:.1f} MB corpus -> {b:.1f} MiB "
          f"(x{b / a:.2f} for x{mb / small_mb:.2f} data)")

# ---- totals cross-check
def load(label):
    try:
        with open(os.path.join(run_dir, label + ".out")) as f:
            return json.load(f)
    except Exception as e:
        return e

totals = {"reference (bench/check_corpus.py)": ref_total}
scan = load("scan") if stats["scan"] else None
if isinstance(scan, dict):
    try:
        totals["claude-sessions scan"] = sum(
            int(m.get(k, 0)) for m in scan["models"].values()
            for k in ("input", "output", "cache_creation", "cache_read"))
    except Exception as e:
        print(f"scan JSON has unexpected shape: {e!r}")
elif scan is not None:
    print(f"scan output is not JSON: {scan!r}")
ccj = load("ccusage") if stats["ccusage"] else None
if isinstance(ccj, dict):
    totals["ccusage"] = sum(
        m["inputTokens"] + m["outputTokens"] + m["cacheCreationTokens"] + m["cacheReadTokens"]
        for s in ccj["session"] for m in s["modelBreakdowns"])
print("\ntotal tokens (input+output+cache_creation+cache_read):")
for k, v in totals.items():
    print(f"  {k:<36} {v:>16,}")
if "claude-sessions scan" in totals and "ccusage" in totals:
    same = totals["claude-sessions scan"] == totals["ccusage"]
    print(f"scan vs ccusage: {'OK' if same else 'MISMATCH'}"
          + ("" if same else f" (diff {totals['claude-sessions scan'] - totals['ccusage']:+,})"))
else:
    print("scan vs ccusage: not compared (one side missing)")
for k in ("claude-sessions scan", "ccusage"):
    if k in totals:
        print(f"{k} vs reference: {'OK' if totals[k] == ref_total else 'MISMATCH'}")

env = {"nproc": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(),
       "cpu_busy_pct_before": int(os.environ.get("BENCH_BUSY", "-1")),
       "loadavg_after": open("/proc/loadavg").read().split()[:3]}
try:
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            env["cpu"] = line.split(":", 1)[1].strip(); break
except OSError:
    pass
with open(out_json, "w") as f:
    json.dump({"target_mb": float(target_mb), "corpus_mb": mb, "small_corpus_mb": small_mb,
               "stats": stats, "totals": totals, "env": env, "ccusage": ccu}, f, indent=1)
print(f"\nenv: {env}\nsaved {out_json}")
EOF
