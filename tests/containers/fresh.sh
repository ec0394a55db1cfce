#!/bin/bash
# The README's promise as a test (a CI stage, not part of `make test`): on a fresh Debian 12
# machine, as root, `make test` passes and `make run` serves the README's first example.
# The machine is a debian:bookworm-slim container (debootstrapped offline, tests/containers/
# lib.sh) with only `make` added; the project is a git clone of this checkout's HEAD commit
# (committed files only, uncommitted changes are not tested), copied in. Inside, as root:
#   make test   -> must end with "N passed, 0 failed" (its tools/deps.sh installs the rest)
#   make run    -> in the background, until relud logs "listening on"
#   the README's first ```sh example (curl) -> must print the README's ```json block below it
#   SIGINT to relud (Ctrl-C) -> drains, `make run` exits 0
# Ends with "N passed, N failed"; non-zero exit on any failure.
#
# The container uses the host's network (apt must reach the mirror on any host, also one
# where podman's default subnet is taken), so `make run` listens on the host's 127.0.0.1:8080
# and the tests' nginx/relud on free host loopback ports. When something on the host already
# listens on 8080, `make run` gets RELUD_PORT=<a free port> and the example's URL that port.
#
# Needs root and the Debian mirror; installs podman & co. on the host (lib.sh). All podman
# state lives in a mktemp scratch folder, removed at exit.
# Env: FRESH_SCRATCH=DIR reuse a scratch folder (the base image is then made only once);
#      KEEP_SCRATCH=1 keep it (logs: make-test.log, make-run.log);
#      FRESH_TEST_TIMEOUT seconds for `make test` (default 2400);
#      CT_STALE_BRIDGE=1 run on a host with a stale CNI bridge owning 10.88.0.1/16 (lib.sh).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
T0=$SECONDS
PASS=0 FAIL=0
C=reludfresh$$                  # the container
SCRATCH=${FRESH_SCRATCH:-$(mktemp -d /tmp/relud-fresh.XXXXXX)}
CT_SCRATCH=$SCRATCH
# shellcheck source=tests/containers/lib.sh
. "$ROOT/tests/containers/lib.sh"
SRC=/src/relud                  # the clone, inside the container

step() { echo "=== [$((SECONDS - T0))s] $*"; }
ok()   { PASS=$((PASS + 1)); echo "ok   - $*"; }
bad()  { FAIL=$((FAIL + 1)); echo "FAIL - $*"; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
# inside CMD...: runs a command inside the container, in the clone.
inside() { podman exec -w "$SRC" "$C" "$@"; }

cleanup() {
  local rc=$?
  set +e
  step "teardown (exit status so far: $rc)"
  [ "$CT_CONFIGURED" = 1 ] && podman rm -f -t 0 "$C" >/dev/null 2>&1
  if [ -z "${KEEP_SCRATCH:-}" ] && [ -z "${FRESH_SCRATCH:-}" ]; then ct_teardown 0; else ct_teardown 1; fi
  if [ "$rc" -ne 0 ] && [ "$FAIL" -eq 0 ]; then bad "fresh script stopped early (exit $rc)"; fi
  echo "fresh: $((SECONDS - T0)) s"
  echo "$PASS passed, $FAIL failed"
  [ "$FAIL" -eq 0 ] && [ "$rc" -eq 0 ] || exit 1
}
trap cleanup EXIT

port_free() { [ -z "$(ss -Hltn "sport = :$1" 2>/dev/null)" ]; }

# ---------------------------------------------------------------------------------------------
step "preflight"
ct_preflight 2500
HEAD=$(git -C "$ROOT" rev-parse HEAD)
echo "HEAD $(git -C "$ROOT" log -1 --format='%h %s' "$HEAD")"
dirty=$(git -C "$ROOT" status --porcelain --untracked-files=no | wc -l)
[ "$dirty" = 0 ] || echo "note: $dirty modified tracked files in the checkout are not part of this test (HEAD only)"
ct_stale_bridge_up

step "install tools (Debian packages)"
export DEBIAN_FRONTEND=noninteractive
ct_install git
ct_podman_config
ct_base_image
ct_stale_bridge_probe

step "git clone of HEAD ($HEAD)"
git init -q "$SCRATCH/relud"
git -C "$SCRATCH/relud" fetch -q --no-tags "$ROOT" "$HEAD"
git -C "$SCRATCH/relud" checkout -q --detach "$HEAD"
check "clone is at HEAD $HEAD, $(git -C "$SCRATCH/relud" ls-files | wc -l) files" \
  test "$(git -C "$SCRATCH/relud" rev-parse HEAD)" = "$HEAD"

# The README's first example: the first ```sh block's curl line and the ```json block after it.
readme_example() {
  awk '/^```sh$/ && !cmd {insh = 1; next}
       insh && /^curl / {cmd = $0; insh = 0; next}
       cmd && /^```json$/ {injs = 1; next}
       injs {print cmd; print $0; exit}' "$SCRATCH/relud/README.md"
}
EX_CMD=$(readme_example | sed -n 1p)
EX_WANT=$(readme_example | sed -n 2p)
echo "README's first example: $EX_CMD"
echo "                expects: $EX_WANT"
check "README.md has a first example 'curl -s localhost:8080/...' with its expected reply" \
  bash -c 'case $1 in "curl -s localhost:8080/"*) [ -n "$2" ] ;; *) exit 1 ;; esac' _ "$EX_CMD" "$EX_WANT"

# ---------------------------------------------------------------------------------------------
step "container: debian:bookworm-slim on the host's network"
# PID 1 is a bash loop, so orphans are reaped as an init would (sleep as PID 1 never does).
podman run -d --name "$C" --network=host --pull=never localhost/debian:bookworm-slim \
  bash -c 'trap "exit 0" TERM; while :; do sleep 3600 & wait $!; done' >/dev/null
check "fresh: no make, compiler, git or curl in the container" \
  bash -c '[ -z "$(podman exec "$1" sh -c "command -v make cc gcc git curl || true")" ]' _ "$C"
ti=$SECONDS
if podman exec -e DEBIAN_FRONTEND=noninteractive "$C" sh -c \
     'apt-get update -qq && apt-get install -y -qq --no-install-recommends make' >"$SCRATCH/apt-make.log" 2>&1; then
  ok "apt-get install make ($((SECONDS - ti)) s)"
else
  tail -20 "$SCRATCH/apt-make.log"; bad "apt-get install make"; exit 1
fi
podman exec "$C" mkdir -p "$(dirname "$SRC")"
podman cp "$SCRATCH/relud" "$C:$(dirname "$SRC")/"
check "the clone is in the container at $SRC" podman exec "$C" test -f "$SRC/Makefile"

# ---------------------------------------------------------------------------------------------
step "make test (as root, inside; installs its own packages)"
tt=$SECONDS
timeout "${FRESH_TEST_TIMEOUT:-2400}" podman exec -w "$SRC" "$C" make test >"$SCRATCH/make-test.log" 2>&1 \
  && mrc=0 || mrc=$?
grep '^relud: installing Debian packages' "$SCRATCH/make-test.log" | sed 's/^/    /' || true
last=$(grep -v '^[[:space:]]*$' "$SCRATCH/make-test.log" | tail -n 1 || true)
echo "    closing line: '$last' (exit $mrc, $((SECONDS - tt)) s)"
if [ "$mrc" = 0 ] && [[ $last =~ ^[1-9][0-9]*\ passed,\ 0\ failed ]]; then
  ok "make test: $last ($((SECONDS - tt)) s)"
else
  grep -E '^(FAIL|\[  FAILED  \]|\[  ERROR   \])' "$SCRATCH/make-test.log" | head -40 | sed 's/^/    /'
  tail -30 "$SCRATCH/make-test.log" | sed 's/^/    | /'
  bad "make test: expected 'N passed, 0 failed' and exit 0, got '$last' (exit $mrc)"
fi

# ---------------------------------------------------------------------------------------------
step "make run (in the background) + the README's first example"
PORT=8080
if ! port_free 8080; then
  for p in $(seq 18080 18180); do port_free "$p" && { PORT=$p; break; }; done
  echo "note: 127.0.0.1:8080 is in use on this host (shared network): make run gets RELUD_PORT=$PORT"
fi
envs=()
[ "$PORT" = 8080 ] || envs=(-e "RELUD_PORT=$PORT")
tr_=$SECONDS
podman exec -d -w "$SRC" "${envs[@]}" "$C" \
  bash -c 'make run >/tmp/make-run.log 2>&1; echo $? >/tmp/make-run.rc' >/dev/null
listening=0
while [ $((SECONDS - tr_)) -lt 300 ]; do   # make run finds build/relud built: seconds
  if inside grep -q 'listening on http://' /tmp/make-run.log 2>/dev/null; then listening=1; break; fi
  inside test -e /tmp/make-run.rc && break      # make run ended without listening
  sleep 0.2
done
if [ "$listening" = 1 ]; then
  ok "make run: relud listening ($((SECONDS - tr_)) s): $(inside grep -m1 -o 'listening on http://[^ ]*' /tmp/make-run.log)"
else
  inside tail -20 /tmp/make-run.log 2>/dev/null | sed 's/^/    | /'
  bad "make run: relud never logged 'listening on'"; exit 1
fi
cmd=${EX_CMD/localhost:8080/localhost:$PORT}
got=$(inside bash -c "$cmd" 2>&1 || true)
echo "    \$ $cmd"
echo "    $got"
check "README's first example answers '$EX_WANT' (inside the container)" test "$got" = "$EX_WANT"

# Ctrl-C: SIGINT to relud (make's child via exec), which drains and exits 0, so make does too.
pid=$(inside curl -s -D - -o /dev/null "localhost:$PORT/v2/health/live" | tr -d '\r' \
  | awk -F': ' 'tolower($1) == "x-relud-instance" {n = split($2, a, ":"); print a[n]}')
if [ -n "$pid" ]; then
  ts=$SECONDS
  inside bash -c "kill -INT $pid"
  while [ $((SECONDS - ts)) -lt 60 ] && ! inside test -e /tmp/make-run.rc; do sleep 0.2; done
  rc=$(inside cat /tmp/make-run.rc 2>/dev/null || echo none)
  check "Ctrl-C (SIGINT to relud pid $pid): make run exits 0 ($rc, $((SECONDS - ts)) s)" test "$rc" = 0
else
  bad "no X-Relud-Instance header: cannot find relud's pid"
fi
inside cat /tmp/make-run.log >"$SCRATCH/make-run.log" 2>/dev/null || true
