#!/bin/bash
# make bench, training part: inference latency while a training job runs. wrk sends the
# SimpleNN request (model simple_nn, batch 1) at 1, 4 and 16 connections (CONNS) to one daemon
# (threads = the cores) in three conditions, alternating rounds, medians of RUNS:
#   none  no job;
#   job   a long training job running (its worker at SCHED_IDLE, as relud runs it);
#   spin  no job, but a busy loop outside relud at SCHED_IDLE (chrt --idle): the control,
#         what the host charges for any idle-priority work on these cores.
# Prints req/s, p50 and p99 (us) per condition and the job's steps/s meanwhile (the job is
# Linear(512, 512) + ReLU + Linear(512, 10) on batches of 256: ~0.4 GFLOP a step). Never a
# pass/fail test. Loopback only; bounded in time (about 4 minutes on 2 cores with the
# defaults: DUR=5 s, RUNS=5).
set -euo pipefail
. "$(dirname "$0")/wrk.sh"
RELUD=${RELUD:-build/relud}
DUR=${DUR:-5}
RUNS=${RUNS:-5}
PORT=${PORT:-18191}
CONNS=${CONNS:-1 4 16}
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
H=127.0.0.1:$PORT
A='Authorization: Bearer bench'

cp config/models/simple_nn.json "$tmp/"
/usr/bin/python3 - "$tmp" <<'PY'
import json, math, sys
d = sys.argv[1]
def mat(o, i, s):
    return [[round(0.04 * math.sin(0.7 * r + 1.3 * c + s), 4) for c in range(i)] for r in range(o)]
json.dump({"layers": [{"type": "linear", "weight": mat(512, 512, 0)}, {"type": "relu"},
                      {"type": "linear", "weight": mat(10, 512, 1)}]}, open(d + "/wide.json", "w"))
json.dump({"input": [[round(math.sin(0.37 * r + 0.11 * c), 3) for c in range(512)] for r in range(256)],
           "target": [r % 10 for r in range(256)], "loss": {"type": "cross_entropy"},
           "optimizer": {"type": "sgd", "lr": 1e-4}, "batch_size": 256, "steps": 100000},
          open(d + "/job.json", "w"))
PY
cat > "$tmp/post.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model": "simple_nn", "input": [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10]]}'
LUA
RELUD_ADMIN_TOKEN=bench "$RELUD" --port "$PORT" --model-dir "$tmp" --access-log=false 2>"$tmp/relud.log" &
pid=$!
for i in $(seq 100); do curl -fs "http://$H/v2/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
threads=$(grep -o 'threads=[0-9]*' "$tmp/relud.log" | head -1)
kernel=$(grep -o 'kernel [A-Za-z0-9]*' "$tmp/relud.log" | head -1)
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')

run_wrk() { wrk_summary "http://$H/v1/forward" "$1" "$tmp/post.lua" "$DUR"; } # conns
job_step() { curl -s "http://$H/v1/train/$1" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["step"])'; }
# Starts the long job and waits until it runs; prints its id.
start_job() {
  local id
  id=$(curl -s -X POST "http://$H/v1/models/wide/train" -H "$A" -d @"$tmp/job.json" |
       /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  until [ "$(job_step "$id")" -ge 1 ]; do sleep 0.05; done
  echo "$id"
}
stop_job() { curl -s -o /dev/null -X DELETE "http://$H/v1/train/$1" -H "$A"; }

curl -fs -o /dev/null -X PUT "http://$H/v1/models/wide" -H "$A" -d @"$tmp/wide.json"
echo "cpu: $cpu ($(nproc) cores); OpenBLAS $kernel; relud $threads blas_threads=1"
echo "inference: SimpleNN (simple_nn, batch 1) /v1/forward, wrk ${DUR}s x $RUNS rounds, medians"
echo "training job: Linear(512,512)+ReLU+Linear(512,10), batch 256, SGD"
printf '%-6s %-6s %10s %9s %9s %12s\n' conns job "req/s" "p50 us" "p99 us" "job steps/s"
for c in $CONNS; do
  for mode in none job spin; do : > "$tmp/$c.$mode"; : > "$tmp/$c.$mode.steps"; done
  for r in $(seq "$RUNS"); do
    for mode in none job spin; do
      id= spin=
      if [ "$mode" = job ]; then
        id=$(start_job)
        s0=$(job_step "$id"); t0=$(date +%s.%N)
      elif [ "$mode" = spin ]; then
        chrt --idle 0 sh -c 'while :; do :; done' &
        spin=$!
      fi
      run_wrk "$c" >> "$tmp/$c.$mode"
      if [ -n "$spin" ]; then
        kill "$spin"; wait "$spin" 2>/dev/null || true
      fi
      if [ -n "$id" ]; then
        s1=$(job_step "$id"); t1=$(date +%s.%N)
        awk -v a="$s0" -v b="$s1" -v x="$t0" -v y="$t1" 'BEGIN { printf "%.1f\n", (b - a) / (y - x) }' >> "$tmp/$c.$mode.steps"
        stop_job "$id"
        until curl -s "http://$H/v1/train/$id" | grep -q '"state":"cancelled"'; do sleep 0.05; done
      fi
    done
  done
  for mode in none job spin; do
    bad=$(awk '{s+=$4} END {print s+0}' "$tmp/$c.$mode")
    [ "$bad" -eq 0 ] || echo "warning: $bad non-2xx replies ($c conns, $mode)"
    rps=$(cut -d' ' -f1 "$tmp/$c.$mode" | median); p50=$(cut -d' ' -f2 "$tmp/$c.$mode" | median)
    p99=$(cut -d' ' -f3 "$tmp/$c.$mode" | median)
    steps=-; [ "$mode" = job ] && steps=$(median < "$tmp/$c.$mode.steps")
    printf '%-6s %-6s %10s %9s %9s %12s\n' "$c" "$mode" "$rps" "$p50" "$p99" "$steps"
  done
done
