#!/bin/bash
# The server's modules depend on each other one way: from the objects' symbol tables (nm),
# which server file uses which other's functions; the graph must have no cycle (the
# request path reads top to bottom: transport -> handler -> pass -> reader/writer ->
# engine). Also: no server file but the transport includes libmicrohttpd (or zlib), none
# but tls.c GnuTLS, and none uses cJSON. Part of make test; ends with "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
B=${BUILD:-build}
pass=0 fail=0
ok()  { pass=$((pass + 1)); echo "ok   - $*"; }
bad() { fail=$((fail + 1)); echo "FAIL - $*"; }
objs=$(ls "$B"/obj/server/*.o 2>/dev/null)
[ -n "$objs" ] || { echo "no objects in $B/obj/server: build first"; echo "0 passed, 1 failed"; exit 1; }
/usr/bin/python3 - "$B" $objs <<'PY' || fail=$((fail + 1))
import subprocess, sys, os, collections
objs = sys.argv[2:]
defs, uses = {}, collections.defaultdict(set)
for o in objs:
    name = os.path.basename(o)[:-2]
    for line in subprocess.run(["nm", o], capture_output=True, text=True).stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "TDRB":
            defs[parts[2]] = name
        elif len(parts) == 2 and parts[0] == "U":
            uses[name].add(parts[1])
graph = {n: sorted({defs[s] for s in u if s in defs and defs[s] != n}) for n, u in uses.items()}
for n in (os.path.basename(o)[:-2] for o in objs):
    graph.setdefault(n, [])
# cycles: DFS
state, stack, cycles = {}, [], []
def dfs(n):
    state[n] = 1
    stack.append(n)
    for m in graph[n]:
        if state.get(m) == 1:
            cycles.append(stack[stack.index(m):] + [m])
        elif not state.get(m):
            dfs(m)
    stack.pop()
    state[n] = 2
for n in sorted(graph):
    if not state.get(n):
        dfs(n)
if cycles:
    for c in cycles:
        print("FAIL - dependency cycle: " + " -> ".join(c))
    sys.exit(1)
print(f"ok   - no dependency cycle among {len(graph)} server modules")
order = []
seen = set()
def topo(n):
    if n in seen:
        return
    seen.add(n)
    for m in graph[n]:
        topo(m)
    order.append(n)
for n in sorted(graph):
    topo(n)
print("       bottom to top: " + " ".join(order))
PY
[ "$fail" -eq 0 ] && pass=$((pass + 1))
mhd=$(grep -l "microhttpd.h" server/*.c server/*.h | grep -v "server/http.c" || true)
[ -z "$mhd" ] && ok "only server/http.c includes libmicrohttpd" || bad "libmicrohttpd included by: $mhd"
gt=$(grep -l "gnutls/" server/*.c server/*.h | grep -v "server/tls.c" || true)
[ -z "$gt" ] && ok "only server/tls.c speaks GnuTLS" || bad "GnuTLS included by: $gt"
zl=$(grep -l "zlib.h" server/*.c server/*.h | grep -v "server/http.c" || true)
[ -z "$zl" ] && ok "only the transport compresses (zlib in server/http.c)" || bad "zlib included by: $zl"
cj=$(grep -l "cjson" server/*.c server/*.h server/*.cc || true)
[ -z "$cj" ] && ok "no server file uses cJSON (one reader, one writer)" || bad "cJSON used by: $cj"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
