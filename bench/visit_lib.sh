# What every GPU visit script shares (sourced from the repository root: `. bench/visit_lib.sh`, after V is set):
# `sweep` from the source tree, a millisecond clock, and `timed NAME CMD...`, which runs CMD and appends
# "NAME seconds rc=N" to $V/phases.txt (and prints it), returning CMD's exit code.
sweep() { python3 -m sweep "$@"; }
ms() { date +%s%3N; }
timed() {
  local name=$1; shift; local t0; t0=$(ms); "$@"; local rc=$?
  echo "$name $(( ($(ms) - t0) / 1000 )) s rc=$rc" | tee -a "$V/phases.txt"; return $rc
}
