#!/bin/bash
# The HTTP edge as clients nobody on the project wrote see it (part of make test):
#   clients.py  early refusals through Python requests and urllib, wget, curl with and without
#               Expect: 100-continue, and nginx with the shipped proxy config
#   framing.py  RFC 9112 framing on a raw socket: smuggling patterns, what libmicrohttpd
#               answers itself, pipelining after a refusal
#   memory.py   peak RSS for adversarial bodies at the body cap, against the documented bound
#   drain.py    drain_timeout cuts a long pass: 503 + Connection: close, logged as sent
# Needs Debian's python3-requests, wget, curl and nginx-light. Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")"
export RELUD=${RELUD:-$(cd ../.. && pwd)/build/relud}
passed=0 failed=0
for t in clients.py framing.py memory.py drain.py; do
  echo "--- tests/clients/$t"
  out=$(/usr/bin/python3 "$t" 2>&1); rc=$?
  printf '%s\n' "$out"
  line=$(printf '%s\n' "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed' | tail -n 1)
  p=$(echo "$line" | sed -nE 's/^([0-9]+) passed.*/\1/p')
  f=$(echo "$line" | sed -nE 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/p')
  [ -n "$line" ] || { echo "$t: no result line (exit $rc)"; f=1; }
  [ "$rc" -ne 0 ] && [ "${f:-0}" -eq 0 ] && f=1
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
