#!/usr/bin/env bash
# Long runs of herald's property-based fuzz targets (not part of every CI
# run: scripts/test.sh runs the same targets with a small number of cases).
#
#   scripts/fuzz.sh [SECONDS] [CASES]
#
# Runs every proptest whose name starts with `fuzz_` (the signup parser, the
# address rules, the article and feed cleaning path) with CASES cases each
# (default 200000), stopping after SECONDS (default 600) whatever happens.
# A failure prints the minimal failing input proptest found; proptest also
# records it under proptest-regressions/ so the next run tries it first.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
cases=${2:-200000}
echo "fuzzing for at most ${secs}s, ${cases} cases per target" >&2
cargo build --tests >/dev/null
start=$(date +%s)
set +e
PROPTEST_CASES=$cases timeout --signal=INT "$secs" \
    cargo nextest run --no-fail-fast \
    -E 'test(/fuzz_/)' --no-capture
rc=$?
set -e
echo "fuzzing ran $(( $(date +%s) - start ))s, exit $rc" >&2
# 124: the time bound was reached before every target finished its cases;
# nothing failed in that time.
if [ "$rc" -eq 124 ] || [ "$rc" -eq 130 ]; then
    echo "time bound reached; no failure found" >&2
    exit 0
fi
exit "$rc"
