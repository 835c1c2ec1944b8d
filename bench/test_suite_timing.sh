#!/usr/bin/env bash
# The wall time of `make test`'s pytest as a fresh CI machine sees it (issue 12): a cold Inductor cache (a fresh
# TORCHINDUCTOR_CACHE_DIR) and no native build (native/build is moved aside for the run and put back after).
#   bash bench/test_suite_timing.sh [WORKERS] [extra pytest args]    -> bench/results/test-suite-<WORKERS>w.txt
set -euo pipefail
cd "$(dirname "$0")/.."
workers=${1:-3}; shift || true  # make test's PYTEST_WORKERS
out=bench/results/test-suite-${workers}w.txt
cache=$(mktemp -d /tmp/inductor-cold.XXXX)
aside=""
if [ -d native/build ]; then aside=$(mktemp -d /tmp/native-aside.XXXX); mv native/build "$aside/"; fi
restore() { rm -rf "$cache"; if [ -n "$aside" ]; then rm -rf native/build; mv "$aside/build" native/build; rmdir "$aside"; fi; }
trap restore EXIT
{
  echo "# $(date -u +%FT%TZ) $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (+ uncommitted)') workers=$workers nproc=$(nproc) OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset, workers default PASSIVE} load=$(cut -d' ' -f1-3 /proc/loadavg)"
  TORCHINDUCTOR_CACHE_DIR=$cache /usr/bin/time -f "wall %e s, user %U s, sys %S s" \
    .venv/bin/python -m pytest -q -ra -p no:cacheprovider -n "$workers" --durations=25 "$@" 2>&1
  echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$out" | tail -n 60
