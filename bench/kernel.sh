#!/bin/bash
# make bench, kernel part: on a machine where OpenBLAS falls back to its generic kernel,
# what relud's kernel check (blas_core = auto, server/blas.c) buys. The fall-back is forced
# with OPENBLAS_CORETYPE=Prescott: "off" keeps it (the environment set it), "on" marks it as
# OpenBLAS's own pick (RELUD_BLAS_EMULATE_FALLBACK=1, as on a CPU newer than the library),
# so the check moves to the best kernel the CPU runs. Linear 256 x 1024 -> 1024 float32,
# medians; rounds alternate off/on so both see the same machine. Goal: on/off >= 4.
set -euo pipefail
BIN=${BIN:-build/bench/bench_core}
ROUNDS=${ROUNDS:-5}
off=() on=()
for _ in $(seq "$ROUNDS"); do
  off+=("$(OPENBLAS_CORETYPE=Prescott "$BIN" kernel)")
  on+=("$(OPENBLAS_CORETYPE=Prescott RELUD_BLAS_EMULATE_FALLBACK=1 "$BIN" kernel)")
done
med() { printf '%s\n' "$@" | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
koff=$(echo "${off[0]}" | cut -d' ' -f1) kon=$(echo "${on[0]}" | cut -d' ' -f1)
goff=$(med "${off[@]}") gon=$(med "${on[@]}")
echo
echo "BLAS kernel check: Linear 256x1024->1024 float32, 1 thread, medians of $ROUNDS alternating rounds"
echo "  cpu: $(build/relud --version 2>/dev/null | sed -n 's/^cpu: //p')"
printf '  check off (OpenBLAS fell back to %s, kept)   %8.2f GFLOP/s\n' "$koff" "$goff"
printf '  check on  (relud moved to %s)%*s%8.2f GFLOP/s\n' "$kon" $((17 - ${#kon})) "" "$gon"
awk -v a="$gon" -v b="$goff" 'BEGIN { printf "  on/off %.2fx  (goal >= 4)\n", b ? a / b : 0 }'
