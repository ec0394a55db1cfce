#!/bin/bash
# make bench, HTTP part: requests/s and latency p50/p99 for a SimpleNN request with wrk
# at 1 and 16 connections, against relud and against a minimal libmicrohttpd server
# answering a fixed body (the ceiling), in the same run. Prints medians of RUNS runs and
# the median of the rounds' ratios relud / ceiling. Loopback only; bounded in time.
set -euo pipefail
. "$(dirname "$0")/wrk.sh"
RELUD=${RELUD:-build/relud}
MIN=${MIN:-build/bench/minimal_server}
DUR=${DUR:-4}
RUNS=${RUNS:-5}
THREADS=${THREADS:-2}
P1=${P1:-18181}
P2=${P2:-18182}
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$tmp"; }
trap cleanup EXIT

cat > "$tmp/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model": "simple_nn", "input": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}'
LUA
"$RELUD" --port "$P1" --threads "$THREADS" --model-dir config/models --access-log=false 2>"$tmp/relud.log" &
pids+=($!)
"$MIN" "$P2" "$THREADS" &
pids+=($!)
for i in $(seq 50); do
  curl -fs "http://127.0.0.1:$P1/v2/health/ready" >/dev/null 2>&1 && break; sleep 0.1
done
body=$(curl -fs "http://127.0.0.1:$P1/v1/forward" -d '{"model": "simple_nn", "input": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}')
echo "relud answers: $body"

# wrk's summary -> "req/s p50_us p99_us"
run_wrk() { wrk_summary "http://127.0.0.1:$1/v1/forward" "$2" "$tmp/post.lua" "$DUR"; } # port conns

echo
echo "HTTP: SimpleNN request (model simple_nn, batch 1), wrk ${DUR}s x $RUNS runs, threads=$THREADS, medians"
printf '%-6s %12s %10s %10s   %12s %10s %10s   %s\n' conns "relud req/s" "p50 us" "p99 us" "ceiling r/s" "p50 us" "p99 us" "ratio"
for c in 1 16; do
  : > "$tmp/r"; : > "$tmp/m"
  for r in $(seq "$RUNS"); do
    run_wrk "$P1" "$c" >> "$tmp/r"
    run_wrk "$P2" "$c" >> "$tmp/m"
  done
  bad=$(awk '{s+=$4} END {print s+0}' "$tmp/r")
  [ "$bad" -eq 0 ] || echo "warning: relud answered $bad non-2xx replies"
  rr=$(cut -d' ' -f1 "$tmp/r" | median); rp50=$(cut -d' ' -f2 "$tmp/r" | median); rp99=$(cut -d' ' -f3 "$tmp/r" | median)
  mr=$(cut -d' ' -f1 "$tmp/m" | median); mp50=$(cut -d' ' -f2 "$tmp/m" | median); mp99=$(cut -d' ' -f3 "$tmp/m" | median)
  # the ratio of each round (relud and the ceiling back to back), then their median: a
  # burst of noise on the shared machine moves one round, not both medians apart
  ratio=$(paste -d' ' "$tmp/r" "$tmp/m" | awk '{ printf "%.4f\n", $5 ? $1 / $5 : 0 }' | median)
  goal=$([ "$c" -ge 16 ] && echo 0.8 || echo 0.5)
  printf '%-6s %12s %10s %10s   %12s %10s %10s   %.2f x ceiling (goal >= %s)\n' "$c" "$rr" "$rp50" "$rp99" "$mr" "$mp50" "$mp99" "$ratio" "$goal"
done
