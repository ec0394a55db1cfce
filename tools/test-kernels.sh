#!/bin/bash
# Runs test suites once per OpenBLAS kernel: test-kernels.sh KERNEL... -- SUITE...
# Each kernel is forced with OPENBLAS_CORETYPE (relud keeps a kernel the environment sets);
# a kernel this CPU cannot run is skipped and said so. Ends with one summed
# "N passed, N failed" line, so a test that passes on one kernel only fails here.
set -u
RELUD=${RELUD:-build/relud}
kernels=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do kernels+=("$1"); shift; done
shift
passed=0 failed=0
for k in "${kernels[@]}"; do
  if ! "$RELUD" --blas-core "$k" --version >/dev/null 2>&1; then
    echo "=== kernel $k: skipped ($("$RELUD" --blas-core "$k" --version 2>&1 | head -1))"
    continue
  fi
  echo "=== kernel $k ($("$RELUD" --version 2>/dev/null | sed -n 's/^cpu: //p'))"
  out=$(OPENBLAS_CORETYPE=$k tools/run-tests.sh "$@" 2>&1)
  line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
  printf '%s\n' "$out" | grep -E '^\[  (FAILED|PASSED)  \]|exited with status|^(ok|FAIL) ' | sed "s/^/[$k] /"
  echo "[$k] ${line:-no result line}"
  p=$(echo "$line" | sed -nE 's/^([0-9]+) passed.*/\1/p')
  f=$(echo "$line" | sed -nE 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/p')
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-1}))
done
echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
