# Sourced by bench/run.sh and bench/analyze.sh: the settings they share, from the
# environment. Sets MB (corpus size, BENCH_MB), REPS (BENCH_REPS), SRC (the fixture root:
# FIXTURES, else tests/fixtures/real, else ../shared/fixtures/real) and TIME (GNU time,
# checked). Expects ROOT (the repository).
if [[ "${BENCH_QUICK:-0}" == 1 ]]; then
  MB=${BENCH_MB:-20}
  REPS=${BENCH_REPS:-1}
else
  MB=${BENCH_MB:-1000}
  REPS=${BENCH_REPS:-7}
fi
if [[ -n "${FIXTURES:-}" ]]; then
  SRC=$FIXTURES
elif [[ -d "$ROOT/tests/fixtures/real" ]]; then
  SRC="$ROOT/tests/fixtures/real"
else
  SRC="$ROOT/../shared/fixtures/real"
fi
TIME=/usr/bin/time
if ! [[ -x $TIME ]] || ! $TIME -f '%e %M' true >/dev/null 2>&1; then
  echo "error: GNU time not found at /usr/bin/time (needed for peak RSS)." >&2
  echo "       install it with: sudo apt-get install -y time   (Debian/Ubuntu)" >&2
  exit 1
fi
