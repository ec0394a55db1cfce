#!/bin/bash
# Container smoke test, run by .ci/run: builds relud's Dockerfile with podman (offline: the
# debian:bookworm-slim base image is debootstrapped from the apt mirror), runs the image and
# checks it (health, /v1/forward, OIP infer, metrics, non-root, SIGTERM drain), then brings
# docker-compose.yml up (2 replicas behind nginx, compose v2 through podman's Docker-API
# socket), checks that requests reach more than one replica and that the balancer's
# healthcheck fails when it reaches no replica, stops one replica under load and requires
# zero failed requests. Ends with "N passed, N failed"; non-zero exit on any failure.
#
# Needs root and the Debian mirror (apt); installs podman buildah runc debootstrap itself.
# All podman state lives in a mktemp scratch folder, removed at exit (KEEP_SCRATCH=1 keeps it).
# Podman setup and the base image: tests/containers/lib.sh (shared with fresh.sh). Recipes and
# pitfalls: ../shared/notes/containers.md (runc instead of crun, pinned ulimits, docker image
# format for HEALTHCHECK, a loop driving healthchecks since there is no systemd).
# Holds on a host where podman's default subnet 10.88.0.0/16 is already routed: the build
# uses the host's network, and everything run or published uses networks this script (or
# compose) creates, or none.
#
# Env: SMOKE_SCRATCH=DIR reuse a scratch folder (the base image is then built only once);
#      SMOKE_COMPOSE=v2|v1 (default v2, falls back to v1 if the trixie package is unreachable);
#      SMOKE_LOAD_REQUESTS (default 10000) requests of the stop-under-load check;
#      CT_STALE_BRIDGE=1 runs on a host with a stale CNI bridge owning 10.88.0.1/16
#      (created before, removed after; see lib.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
T0=$SECONDS
PASS=0 FAIL=0
P=reludsmoke$$                  # unique names per run: image, container, compose project
IMG=localhost/$P:latest
SCRATCH=${SMOKE_SCRATCH:-$(mktemp -d /tmp/relud-smoke.XXXXXX)}
CT_SCRATCH=$SCRATCH
# shellcheck source=tests/containers/lib.sh
. "$ROOT/tests/containers/lib.sh"
PIDS=()
COMPOSE=()
COMPOSE_UP=0
PY=/usr/bin/python3             # Debian's python (python3-yaml etc. live there)

step() { echo "=== [$((SECONDS - T0))s] $*"; }
ok()   { PASS=$((PASS + 1)); echo "ok   - $*"; }
bad()  { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
# check DESCRIPTION COMMAND...: runs the command, counts it.
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }

cleanup() {
  local rc=$?
  set +e
  step "teardown (exit status so far: $rc)"
  podman rm -f -t 2 "$P-single" >/dev/null 2>&1
  if [ "$COMPOSE_UP" = 1 ]; then
    "${COMPOSE[@]}" -p "$P" logs --no-color >"$SCRATCH/compose.log" 2>&1
    "${COMPOSE[@]}" -p "$P" down -v -t 5 >/dev/null 2>&1
  fi
  podman rm -f -t 0 "$P-lb-nowhere" >/dev/null 2>&1
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  if [ -z "${KEEP_SCRATCH:-}" ] && [ -z "${SMOKE_SCRATCH:-}" ]; then ct_teardown 0; else ct_teardown 1; fi
  if [ "$rc" -ne 0 ] && [ "$FAIL" -eq 0 ]; then bad "smoke script stopped early (exit $rc)"; fi
  echo "smoke: $((SECONDS - T0)) s"
  echo "$PASS passed, $FAIL failed"
  [ "$FAIL" -eq 0 ] && [ "$rc" -eq 0 ] || exit 1
}
trap cleanup EXIT

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# ---------------------------------------------------------------------------------------------
step "preflight"
ct_preflight 3000
[ -x build/relud ] || [ -f server/main.c ] || { echo "no daemon sources (server/main.c)"; exit 2; }
[ -f config/models/simple_nn.json ] || { echo "config/models/simple_nn.json missing"; exit 2; }

ct_stale_bridge_up

step "install tools (Debian packages)"
export DEBIAN_FRONTEND=noninteractive
ct_install python3-yaml libcurl4-openssl-dev libcjson-dev gcc pkg-config

step "podman config: runc, pinned ulimits, all state in $SCRATCH"
ct_podman_config
ct_base_image
ct_stale_bridge_probe

step "load generator (tests/failover/loadgen.c)"
LOADGEN="$SCRATCH/loadgen"
# shellcheck disable=SC2046
gcc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -o "$LOADGEN" tests/failover/loadgen.c \
  $(pkg-config --cflags --libs libcurl libcjson) -pthread -lm

# Expected numbers come from the model file itself, computed here in float64.
# simple_nn_expect INPUT_JSON -> the expected output row as a JSON list.
expect_close() {  # expect_close RESPONSE_FILE JSON_PATH EXPECTED_JSON
  $PY - "$@" <<'EOF'
import json, sys
resp = json.load(open(sys.argv[1]))
v = resp
for k in sys.argv[2].split("."):
    v = v[int(k)] if k.isdigit() else v[k]
exp = json.loads(sys.argv[3])
def flat(x): return [z for y in x for z in flat(y)] if isinstance(x, list) else [x]
got, want = flat(v), flat(exp)
if len(got) != len(want) or any(abs(g - w) > 1e-5 + 1e-4 * abs(w) for g, w in zip(got, want)):
    print(f"    got {v}, want {exp}"); sys.exit(1)
EOF
}
SNN_IN='[[0.5, -1.25, 2.0, 0.0, 3.5, -0.75, 1.0, -2.0, 0.25, 4.0]]'
SNN_WANT=$($PY - "$SNN_IN" <<'EOF'
import json, sys
m = json.load(open("config/models/simple_nn.json"))
def tensor(t):
    if isinstance(t, dict):
        shape, data = t["shape"], t["data"]
        return [data[i * shape[1]:(i + 1) * shape[1]] for i in range(shape[0])] if len(shape) == 2 else data
    return t
x = json.loads(sys.argv[1])
for l in m["layers"]:
    if l["type"] == "linear":
        W, b = tensor(l["weight"]), tensor(l.get("bias")) if l.get("bias") is not None else None
        x = [[sum(w * v for w, v in zip(row, xi)) + (b[j] if b else 0.0) for j, row in enumerate(W)] for xi in x]
    elif l["type"] == "relu":
        x = [[max(0.0, v) for v in xi] for xi in x]
    else:
        sys.exit(f"simple_nn.json: unexpected layer {l['type']}")
print(json.dumps(x))
EOF
)
echo "simple_nn($SNN_IN) = $SNN_WANT (from config/models/simple_nn.json)"

# The checks every relud endpoint gets, single container or through the balancer. $1 = base URL.
api_checks() {
  local url=$1 where=$2 out=$SCRATCH/resp.json code
  code=$(curl -sS -m 10 -o "$out" -w '%{http_code}' "$url/v2/health/live" || true)
  check "$where: GET /v2/health/live -> 200 {\"live\": true}" \
    $PY -c 'import json,sys; sys.exit(not (sys.argv[1]=="200" and json.load(open(sys.argv[2]))["live"] is True))' "$code" "$out"
  code=$(curl -sS -m 10 -o "$out" -w '%{http_code}' "$url/v2/health/ready" || true)
  check "$where: GET /v2/health/ready -> 200" test "$code" = 200
  code=$(curl -sS -m 10 -o "$out" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d '{"input": [-2, -1, 0, 1, 2], "layers": [{"type": "relu"}]}' "$url/v1/forward" || true)
  check "$where: POST /v1/forward relu [-2..2] -> [0, 0, 0, 1, 2]" \
    bash -c '[ "$1" = 200 ] && "$2" -c "import json,sys; sys.exit(json.load(open(sys.argv[1]))[\"output\"] != [0, 0, 0, 1, 2])" "$3"' _ "$code" "$PY" "$out"
  code=$(curl -sS -m 10 -o "$out" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d "{\"input\": $SNN_IN, \"model\": \"simple_nn\"}" "$url/v1/forward" || true)
  check "$where: POST /v1/forward model simple_nn -> the numbers from simple_nn.json (HTTP $code)" \
    bash -c '[ "$1" = 200 ] && shift && "$@"' _ "$code" expect_close_cmd "$out" output "$SNN_WANT"
  local oip
  oip=$($PY -c 'import json,sys; print(json.dumps({"id": "smoke-1", "inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP32", "data": json.loads(sys.argv[1])[0]}]}))' "$SNN_IN")
  code=$(curl -sS -m 10 -o "$out" -w '%{http_code}' -H 'Content-Type: application/json' \
    -d "$oip" "$url/v2/models/simple_nn/infer" || true)
  check "$where: POST /v2/models/simple_nn/infer (OIP) -> same numbers (HTTP $code)" \
    bash -c '[ "$1" = 200 ] && shift && "$@"' _ "$code" expect_close_cmd "$out" outputs.0.data "$SNN_WANT"
  code=$(curl -sS -m 10 -o "$out" -w '%{http_code}' "$url/metrics" || true)
  check "$where: GET /metrics has relud_requests_total" \
    bash -c '[ "$1" = 200 ] && grep -q "^relud_requests_total" "$2"' _ "$code" "$out"
}
# exported for the bash -c wrappers above
expect_close_cmd() { expect_close "$@"; }
export -f expect_close expect_close_cmd
export PY

# ---------------------------------------------------------------------------------------------
step "podman build (Dockerfile, cold unless SMOKE_SCRATCH is reused), on the host's network"
tb=$SECONDS
# --network=host: the RUN steps' apt-get must reach the mirror on any host (podman's default
# network 10.88.0.0/16 may be routed elsewhere there; compose builds through the API socket
# use the host's network already).
if podman build --network=host --pull=never --format docker -t "$IMG" . >"$SCRATCH/build.log" 2>&1; then
  ok "podman build of Dockerfile ($((SECONDS - tb)) s)"
else
  tail -40 "$SCRATCH/build.log"; bad "podman build of Dockerfile"; exit 1
fi
size=$(podman image inspect "$IMG" --format '{{.Size}}')
echo "runtime image: $IMG, $((size / 1000000)) MB ($size bytes), build $((SECONDS - tb)) s"
check "runtime image has no compiler (multi-stage)" \
  bash -c '[ "$(podman run --rm --pull=never --network=none --entrypoint /bin/sh "$1" -c \
    "if command -v gcc || command -v cc || test -e /usr/include/cjson; then echo has-compiler; else echo none; fi")" = none ]' _ "$IMG"
check "image runs as non-root uid 10001" \
  bash -c '[ "$(podman run --rm --pull=never --network=none --entrypoint /usr/bin/id "$1" -u)" = 10001 ]' _ "$IMG"
check "image declares EXPOSE 8080, STOPSIGNAL SIGTERM and a HEALTHCHECK on /v2/health/ready" \
  bash -c 'j=$(podman image inspect "$1" --format "{{json .Config.ExposedPorts}} {{.Config.StopSignal}} {{json .Config.Healthcheck}}"); echo "    $j"; case $j in *8080/tcp*SIGTERM*/v2/health/ready*) ;; *) exit 1;; esac' _ "$IMG"

step "podman run the image (read-only root filesystem), published on 127.0.0.1"
PORT=$(free_port)
# Own network: its subnet is picked free (the default network's fixed 10.88.0.0/16 can clash
# with a bridge another container tool left behind).
podman network create "$P-net" >/dev/null
# --read-only: as in the Kubernetes Deployment (readOnlyRootFilesystem).
podman run -d --name "$P-single" --pull=never --network "$P-net" -p "127.0.0.1:$PORT:8080" \
  --read-only -e RELUD_DRAIN_TIMEOUT=10 "$IMG" >/dev/null
if curl -fsS -o /dev/null --retry 30 --retry-delay 1 --retry-connrefused -m 5 "http://127.0.0.1:$PORT/v2/health/live"; then
  ok "container answers on 127.0.0.1:$PORT"
else
  podman logs "$P-single" 2>&1 | tail -20; bad "container answers on 127.0.0.1:$PORT"; exit 1
fi
check "HEALTHCHECK passes (podman healthcheck run) and status is healthy" \
  bash -c 'for i in $(seq 20); do podman healthcheck run "$1" >/dev/null 2>&1 && break; sleep 0.5; done
           [ "$(podman inspect "$1" --format "{{.State.Health.Status}}")" = healthy ]' _ "$P-single"
check "relud logs 'relud listening on http://0.0.0.0:8080'" \
  bash -c 'podman logs "$1" 2>&1 | grep -q "listening on http://0.0.0.0:8080"' _ "$P-single"
api_checks "http://127.0.0.1:$PORT" "container"
ts=$SECONDS
podman stop -t 30 "$P-single" >/dev/null
code=$(podman inspect "$P-single" --format '{{.State.ExitCode}}')
check "podman stop (SIGTERM) drains and exits 0 within drain_timeout (exit $code, $((SECONDS - ts)) s)" \
  bash -c '[ "$1" = 0 ] && [ "$2" -le 11 ]' _ "$code" "$((SECONDS - ts))"
podman rm -f "$P-single" >/dev/null 2>&1

# ---------------------------------------------------------------------------------------------
step "compose runner"
mode=${SMOKE_COMPOSE:-v2}
if [ "$mode" = v2 ]; then
  # docker compose v2 is not in bookworm; the trixie package's static binary is, unpacked
  # into the scratch folder with an isolated apt configuration (the system's apt is untouched).
  A="$SCRATCH/apt-trixie"
  mkdir -p "$A/lists/partial" "$A/cache/archives/partial"
  echo "deb $MIRROR trixie main" >"$A/sources.list"; touch "$A/status"
  AO=(-o Dir::Etc::SourceList="$A/sources.list" -o Dir::Etc::SourceParts=/nonexistent
      -o Dir::State::Lists="$A/lists" -o Dir::Cache="$A/cache" -o Dir::State::Status="$A/status")
  if [ -x "$A/x/usr/libexec/docker/cli-plugins/docker-compose" ] || {
       apt-get "${AO[@]}" update -qq >/dev/null 2>&1 &&
       (cd "$A" && apt-get "${AO[@]}" download docker-compose >/dev/null 2>&1) &&
       dpkg -x "$A"/docker-compose_*.deb "$A/x"; }; then
    COMPOSE=("$A/x/usr/libexec/docker/cli-plugins/docker-compose")   # runs standalone too
  else
    echo "compose v2 unavailable from $MIRROR trixie; falling back to docker-compose v1"
    mode=v1
  fi
fi
if [ "$mode" = v1 ]; then
  dpkg-query -W -f='${Status}' docker-compose 2>/dev/null | grep -q "ok installed" \
    || apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
  COMPOSE=(docker-compose)
fi
"${COMPOSE[@]}" version

podman system service --time=0 "unix://$SCRATCH/podman.sock" >"$SCRATCH/service.log" 2>&1 &
PIDS+=($!)
export DOCKER_HOST="unix://$SCRATCH/podman.sock" DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
for _ in $(seq 50); do [ -S "$SCRATCH/podman.sock" ] && break; sleep 0.2; done
# No systemd, so podman never runs healthchecks on their interval: drive them.
( while :; do for id in $(podman ps -q --filter status=running 2>/dev/null); do
    podman healthcheck run "$id" >/dev/null 2>&1 || true; done; sleep 1; done ) &
PIDS+=($!)

step "compose up --build --wait (docker-compose.yml: relud x2 behind nginx)"
LB_PORT=$(free_port)
export RELUD_LB_PORT=$LB_PORT
COMPOSE_UP=1
tu=$SECONDS
if [ "$mode" = v2 ]; then
  up=("${COMPOSE[@]}" -p "$P" up -d --build --wait)
else
  up=("${COMPOSE[@]}" -p "$P" up -d --build)
fi
if timeout 600 "${up[@]}" >"$SCRATCH/up.log" 2>&1; then
  ok "compose up, health-gated ($((SECONDS - tu)) s)"
else
  tail -40 "$SCRATCH/up.log"; bad "compose up"; exit 1
fi
curl -fs -o /dev/null --retry 30 --retry-delay 1 --retry-connrefused -m 5 "http://127.0.0.1:$LB_PORT/v2/health/ready" || echo "balancer not ready after 30 s"
podman ps --format '{{.Names}} {{.Status}}' | grep "$P" || true
n=$(podman ps --filter "label=com.docker.compose.project=$P" --filter "label=com.docker.compose.service=relud" -q | wc -l)
check "compose runs 2 relud replicas (found $n)" test "$n" -ge 2

api_checks "http://127.0.0.1:$LB_PORT" "via nginx"
inst=$(for _ in $(seq 20); do
  curl -sS -m 5 -D - -o /dev/null -H 'Content-Type: application/json' \
    -d '{"input": [1, -1], "layers": [{"type": "relu"}]}' "http://127.0.0.1:$LB_PORT/v1/forward" \
    | tr -d '\r' | awk -F': ' 'tolower($1)=="x-relud-instance" {print $2}'
done | sort | uniq -c)
echo "$inst" | sed 's/^/    /'
check "requests through nginx reach more than one replica (X-Relud-Instance)" \
  test "$(echo "$inst" | grep -c .)" -ge 2

step "balancer healthcheck: healthy only while it reaches a relud replica"
LB=$(podman ps --filter "label=com.docker.compose.project=$P" --filter "label=com.docker.compose.service=lb" -q | head -1)
LB_IMG=$(podman inspect "$LB" --format '{{.Image}}')
# lb_health CONTAINER -> the HTTP status of /lb-health asked inside it (000: nginx not up yet)
lb_health() { podman exec "$1" curl -s -o /dev/null -m 5 -w '%{http_code}' http://127.0.0.1:8080/lb-health || true; }
code=$(lb_health "$LB")
check "lb: /lb-health through the replicas -> $code, healthcheck passes" \
  bash -c '[ "$1" = 200 ] && podman healthcheck run "$2" >/dev/null 2>&1' _ "$code" "$LB"
# The same balancer image where the relud service name resolves to nothing: before, nginx
# answered its healthcheck itself and `compose up --wait` passed with every request a 502.
podman run -d --name "$P-lb-nowhere" --pull=never --network "$P-net" \
  -e RELUD_UPSTREAM=relud-nowhere:8080 "$LB_IMG" >/dev/null
code=000
for _ in $(seq 100); do   # until nginx answers at all (any status), at most ~20 s
  code=$(lb_health "$P-lb-nowhere"); [ "$code" != 000 ] && break
  podman container exists "$P-lb-nowhere" || break
  sleep 0.2
done
check "lb whose upstream does not resolve: /lb-health -> $code (5xx), image HEALTHCHECK fails" \
  bash -c 'case $1 in 5??) ;; *) exit 1 ;; esac; ! podman healthcheck run "$2" >/dev/null 2>&1' _ "$code" "$P-lb-nowhere"
podman rm -f -t 0 "$P-lb-nowhere" >/dev/null 2>&1

step "stop one replica under load (podman stop = SIGTERM, drain)"
victim=$(podman ps --filter "label=com.docker.compose.project=$P" --filter "label=com.docker.compose.service=relud" -q 2>/dev/null | head -1 || true)
echo "victim: $victim"
NL=${SMOKE_LOAD_REQUESTS:-10000}
"$LOADGEN" --url "http://127.0.0.1:$LB_PORT" --requests "$NL" --concurrency 4 \
  --model-file config/models/simple_nn.json --oip \
  --at 0.2 "podman stop -t 30 $victim >/dev/null 2>&1" >"$SCRATCH/load.log" 2>&1 && lrc=0 || lrc=$?
sed 's/^/    /' "$SCRATCH/load.log"
check "zero failed requests, every reply's numbers correct, while a replica was stopped under load" test "$lrc" = 0
# The stop must have completed while the load was still running, or nothing was tested.
done_at=$(sed -n 's/^loadgen: event 1 .* when \([0-9]*\)\/[0-9]* were done$/\1/p' "$SCRATCH/load.log")
check "the replica was gone before the load ended (stopped when ${done_at:-?}/$NL were done)" \
  test "${done_at:-$NL}" -lt "$NL"
code=$(podman inspect "$victim" --format '{{.State.ExitCode}}' 2>/dev/null || echo '?')
check "the stopped replica drained and exited 0 (exit $code)" test "$code" = 0
check "requests still answered by the remaining replica" \
  curl -fsS -o /dev/null -m 5 "http://127.0.0.1:$LB_PORT/v2/health/ready"

step "stop every replica: the balancer must turn unhealthy"
for id in $(podman ps --filter "label=com.docker.compose.project=$P" --filter "label=com.docker.compose.service=relud" -q); do
  podman stop -t 30 "$id" >/dev/null 2>&1
done
n=$(podman ps --filter "label=com.docker.compose.project=$P" --filter "label=com.docker.compose.service=relud" -q | wc -l)
code=$(lb_health "$LB")
check "no replica running ($n): lb /lb-health -> $code (5xx), its healthcheck fails" \
  bash -c '[ "$1" = 0 ] && case $2 in 5??) ;; *) exit 1 ;; esac && ! podman healthcheck run "$3" >/dev/null 2>&1' _ "$n" "$code" "$LB"

step "compose down"
"${COMPOSE[@]}" -p "$P" logs --no-color >"$SCRATCH/compose.log" 2>&1 || true
if "${COMPOSE[@]}" -p "$P" down -v -t 10 >/dev/null 2>&1; then ok "compose down"; else bad "compose down"; fi
COMPOSE_UP=0
du -sh "$SCRATCH" 2>/dev/null | sed 's/^/scratch disk: /'
