#!/bin/bash
# Runs every test given (cmocka binaries, or *.sh scripts that end with their own
# "N passed, N failed" line), then prints one closing line "N passed, N failed".
# A test that crashes or exits non-zero without reporting a failure counts as one.
passed=0 failed=0 skipped=0
for t in "$@"; do
  case $t in
    *.sh) out=$(bash "$t" 2>&1); rc=$? ;;
    *) out=$(CMOCKA_MESSAGE_OUTPUT=stdout "$t" 2>&1); rc=$? ;;
  esac
  printf '%s\n' "$out"
  p=$(printf '%s\n' "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
  f=$(printf '%s\n' "$out" | sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
  s=$(printf '%s\n' "$out" | sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' | awk '{s+=$1} END {print s+0}')
  line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
  if [ "$p" -eq 0 ] && [ "$f" -eq 0 ] && [ -n "$line" ]; then
    p=$(echo "$line" | sed -E 's/^([0-9]+) passed.*/\1/')
    f=$(echo "$line" | sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/')
  fi
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "$t: exited with status $rc" >&2; f=1
  fi
  passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
done
echo
if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
