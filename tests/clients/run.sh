#!/bin/bash
# The HTTP edge as clients nobody on the project wrote see it (part of make test):
#   clients.py  early refusals through Python requests and urllib, wget, curl with and without
#               Expect: 100-continue, and nginx with the shipped proxy config
#   framing.py  RFC 9112 framing on a raw socket: smuggling patterns, what libmicrohttpd
#               answers itself, pipelining after a refusal
#   memory.py   peak RSS for adversarial bodies at the body cap, against the documented bound
#   drain.py    drain_timeout cuts a long pass: 503 + Connection: close, logged as sent
#   metrics.py  /metrics through promtool check metrics, histograms, process_* series, the
#               Grafana dashboard's queries
#   compression.py  gzip/deflate requests (zip bombs stop at the cap), gzip replies
#   tls.py      HTTPS, TLS versions, start-up certificate errors, SIGHUP reload, mutual TLS
#   client.py   clients/python/relud_client.py: every method, binary vs JSON vs /v1 vs numpy,
#               errors, retries on 503 + Retry-After, the README's Python example
#   dashboard.py  deploy/grafana/relud-dashboard.json: its JSON model, promtool check rules,
#               every query answered by a real Prometheus scraping relud under traffic
#   export.py   tools/relud-export: modules covering every layer exported, served, outputs and
#               gradients vs torch; refusals named by submodule
# Needs Debian's python3-requests, python3-numpy, python3-torch, wget, curl, nginx-light and prometheus (promtool, prometheus). Ends with "N passed, N failed".
set -u
cd "$(dirname "$0")"
export RELUD=${RELUD:-$(cd ../.. && pwd)/build/relud}
passed=0 failed=0
for t in clients.py framing.py memory.py drain.py metrics.py compression.py tls.py client.py dashboard.py export.py; do
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
