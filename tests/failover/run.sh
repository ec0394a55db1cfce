#!/bin/bash
# Failover test, no container engine: three relud processes on loopback behind Debian's nginx
# (deploy/nginx/relud-proxy.conf: retry the next upstream on error/timeout/502/503, POSTs
# included), a few thousand SimpleNN requests from concurrent clients with every reply's
# numbers checked (tests/failover/loadgen.c), one replica killed with SIGKILL and another
# stopped with SIGTERM mid-load. Passes with zero failed requests, the SIGTERM'd replica
# exiting 0 within drain_timeout, and all three replicas having served traffic.
# Ends with "N passed, N failed"; non-zero exit on any failure.
#
# Needs: build/relud (or $RELUD), nginx (nginx-light), gcc, libcurl4-openssl-dev,
# libcjson-dev, curl, python3. Env: FAILOVER_REQUESTS (3000), FAILOVER_CONCURRENCY (8),
# FAILOVER_DRAIN_TIMEOUT (10), KEEP_SCRATCH=1 keeps the temp folder (logs).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
RELUD=${RELUD:-$ROOT/build/relud}
N=${FAILOVER_REQUESTS:-3000}
C=${FAILOVER_CONCURRENCY:-8}
DRAIN=${FAILOVER_DRAIN_TIMEOUT:-10}
MODEL=config/models/simple_nn.json
W=$(mktemp -d /tmp/relud-failover.XXXXXX)
chmod 755 "$W"     # nginx workers (user nobody) use temp folders below it
PASS=0 FAIL=0
RPIDS=() PORTS=() NGINX_PID=
T0=$SECONDS

ok()    { PASS=$((PASS + 1)); echo "ok   - $*"; }
bad()   { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }

cleanup() {
  local rc=$?
  set +e
  [ -n "$NGINX_PID" ] && kill -QUIT "$NGINX_PID" 2>/dev/null && wait "$NGINX_PID" 2>/dev/null
  for p in "${RPIDS[@]}"; do kill -KILL "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  if [ -n "${KEEP_SCRATCH:-}" ] || [ "$FAIL" -gt 0 ] || [ "$rc" -ne 0 ]; then
    echo "logs kept in $W"
  else
    rm -rf "$W"
  fi
  if [ "$rc" -ne 0 ] && [ "$FAIL" -eq 0 ]; then bad "failover script stopped early (exit $rc)"; fi
  echo "failover: $((SECONDS - T0)) s"
  echo "$PASS passed, $FAIL failed"
  [ "$FAIL" -eq 0 ] && [ "$rc" -eq 0 ] || exit 1
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# A child that exited stays a zombie until we wait for it: "running" means alive and not Z.
running() { [ -e "/proc/$1" ] && ! awk '{exit !($3 == "Z")}' "/proc/$1/stat" 2>/dev/null; }

[ -x "$RELUD" ] || { echo "no $RELUD: run 'make' first"; exit 2; }
command -v nginx >/dev/null || { echo "nginx missing: apt-get install nginx-light"; exit 2; }

# ---- load generator ----------------------------------------------------------------------
# shellcheck disable=SC2046
gcc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -o "$W/loadgen" tests/failover/loadgen.c \
  $(pkg-config --cflags --libs libcurl libcjson) -pthread -lm

# ---- three replicas on free loopback ports -----------------------------------------------
for i in 1 2 3; do
  : >"$W/relud$i.log"   # exists before the port is looked for in it (the reader must not race the shell)
  "$RELUD" --host 127.0.0.1 --port 0 --model-dir config/models --drain-timeout "$DRAIN" \
    --threads 2 --log-format text 2>"$W/relud$i.log" &
  RPIDS+=($!)
done
for i in 0 1 2; do
  port=
  # until the replica logs its port, or exits (a bound of 60 s only against a hang)
  for _ in $(seq 600); do
    port=$(sed -n 's|.*listening on http://[^ ]*:\([0-9][0-9]*\) .*|\1|p' "$W/relud$((i + 1)).log" | head -1)
    [ -n "$port" ] && break
    running "${RPIDS[$i]}" || break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "replica $((i + 1)) did not start:"; tail -20 "$W/relud$((i + 1)).log"; exit 1; }
  PORTS+=("$port")
  curl -fsS -o /dev/null --retry 50 --retry-delay 0 --retry-max-time 10 --retry-connrefused \
    "http://127.0.0.1:$port/v2/health/ready" || { echo "replica $((i + 1)) never ready"; exit 1; }
done
echo "replicas: pid ${RPIDS[*]} on ports ${PORTS[*]}"

# ---- nginx as a foreground child with its own prefix and config -------------------------
LB=$(free_port)
mkdir -p "$W/nginx"
cat >"$W/nginx.conf" <<EOF
daemon off;
worker_processes 2;
pid $W/nginx/nginx.pid;
error_log $W/nginx-error.log warn;
events { worker_connections 4096; }
http {
    client_body_temp_path $W/nginx/body;
    proxy_temp_path       $W/nginx/proxy;
    fastcgi_temp_path     $W/nginx/fastcgi;
    uwsgi_temp_path       $W/nginx/uwsgi;
    scgi_temp_path        $W/nginx/scgi;
    log_format relud '\$upstream_addr|\$upstream_status|\$status|\$request_time|\$http_x_request_id';
    access_log $W/nginx-access.log relud;
    client_max_body_size 64m;
    upstream relud {
        server 127.0.0.1:${PORTS[0]} max_fails=1 fail_timeout=2s;
        server 127.0.0.1:${PORTS[1]} max_fails=1 fail_timeout=2s;
        server 127.0.0.1:${PORTS[2]} max_fails=1 fail_timeout=2s;
        keepalive 32;
    }
    server {
        listen 127.0.0.1:$LB;
        location / {
            proxy_pass http://relud;
            include $ROOT/deploy/nginx/relud-proxy.conf;
        }
    }
}
EOF
nginx -t -q -p "$W/nginx" -c "$W/nginx.conf" -e "$W/nginx-error.log"
nginx -p "$W/nginx" -c "$W/nginx.conf" -e "$W/nginx-error.log" &
NGINX_PID=$!
curl -fsS -o /dev/null --retry 50 --retry-delay 0 --retry-max-time 10 --retry-connrefused \
  "http://127.0.0.1:$LB/v2/health/ready" || { echo "nginx not answering"; cat "$W/nginx-error.log"; exit 1; }
echo "nginx: pid $NGINX_PID on 127.0.0.1:$LB"

# OIP infer is part of the load once the daemon serves it (RELUD_TEST_OIP_OPTIONAL=1 lets a
# daemon without it pass, for development only).
oip=(--oip)
code=$(curl -sS -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
  -d '{"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP32", "data": [0,0,0,0,0,0,0,0,0,0]}]}' \
  "http://127.0.0.1:${PORTS[2]}/v2/models/simple_nn/infer" || true)
if [ "$code" != 200 ] && [ -n "${RELUD_TEST_OIP_OPTIONAL:-}" ]; then
  echo "note: OIP infer answered $code; load without it (RELUD_TEST_OIP_OPTIONAL)"
  oip=()
fi

# ---- the load, with SIGKILL of replica 1 at 30 % and SIGTERM of replica 2 at 60 % ---------
K=${RPIDS[0]} T=${RPIDS[1]}
wait_exit="while [ -e /proc/$T ] && ! awk '{exit !(\$3 == \"Z\")}' /proc/$T/stat 2>/dev/null; do sleep 0.02; done"
set +e
"$W/loadgen" --url "http://127.0.0.1:$LB" --requests "$N" --concurrency "$C" --model-file "$MODEL" \
  "${oip[@]}" --at 0.3 "kill -KILL $K" --at 0.6 "kill -TERM $T; $wait_exit" | tee "$W/load.log"
lrc=${PIPESTATUS[0]}
set -e
check "$N requests through nginx, zero failed, every reply's numbers correct" test "$lrc" = 0

wait "$K" 2>/dev/null && krc=0 || krc=$?
check "replica 1 (pid $K) was killed by SIGKILL mid-load (status $krc)" test "$krc" = 137
wait "$T" 2>/dev/null && trc=0 || trc=$?
drain_ms=$(sed -n 's/^loadgen: event 2 .* after \([0-9]*\) ms, when.*/\1/p' "$W/load.log")
check "replica 2 (pid $T) drained on SIGTERM and exited 0 (status $trc) within drain_timeout ${DRAIN}s (${drain_ms:-?} ms)" \
  bash -c '[ "$1" = 0 ] && [ -n "$2" ] && [ "$2" -le $(( $3 * 1000 + 1000 )) ]' _ "$trc" "$drain_ms" "$DRAIN"
check "replica 3 still ready after the load" \
  curl -fsS -o /dev/null -m 5 "http://127.0.0.1:${PORTS[2]}/v2/health/ready"

ninst=$(grep -E '^loadgen:   ' "$W/load.log" | grep -vc 'no X-Relud-Instance' || true)
check "all 3 replicas answered (distinct X-Relud-Instance headers: $ninst)" test "$ninst" -ge 3

# nginx's view: who answered (the last address of $upstream_addr) and how many were retried.
python3 - "$W/nginx-access.log" "${PORTS[@]}" >"$W/nginx-summary.txt" <<'PYEOF'
import sys, collections
log, ports = sys.argv[1], sys.argv[2:]
answered, retried, statuses, n = collections.Counter(), 0, collections.Counter(), 0
for line in open(log):
    addr, ustat, status, rt, rid = line.rstrip("\n").split("|")
    if not rid.startswith("lg-"):
        continue
    n += 1
    hops = [a.strip() for a in addr.replace(" : ", ", ").split(",")]
    answered[hops[-1]] += 1
    retried += len(hops) > 1
    statuses[status] += 1
print(f"nginx: {n} load requests logged, {retried} retried on another replica, final status {dict(statuses)}")
for i, p in enumerate(ports, 1):
    print(f"nginx:   replica {i} (127.0.0.1:{p}) answered {answered.get('127.0.0.1:' + p, 0)}")
print(f"RETRIED={retried}")
PYEOF
grep -v '^RETRIED=' "$W/nginx-summary.txt"
retried=$(sed -n 's/^RETRIED=//p' "$W/nginx-summary.txt")
check "nginx retried requests from the lost replicas on another one ($retried retried)" test "${retried:-0}" -ge 1
echo "nginx error log: $(grep -c 'upstream' "$W/nginx-error.log" || true) upstream errors (connection refused/reset while replicas went away)"
