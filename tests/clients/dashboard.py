"""deploy/grafana/relud-dashboard.json evaluated by a real Prometheus scraping a real relud.

metrics.py checks that the dashboard names only metrics relud exports; this checks the rest:
the JSON model (the datasource variable every panel and query uses, the instance and model
variables, unique panel ids, a grid without overlaps, the panels the dashboard promises),
that every query is valid PromQL (promtool check rules), and that every query, with
Grafana's variables filled in, returns finite numbers from Debian's Prometheus scraping a
relud under a traffic mix that touches every series (successes, 4xx, a batch queue's 503,
batches, a malformed request libmicrohttpd answers itself).
"""
import json
import math
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import requests

from common import ROOT, Daemon, check, finish

DASH = os.path.join(ROOT, "deploy", "grafana", "relud-dashboard.json")
DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
RATE_INTERVAL = "4s"  # Grafana's $__rate_interval for a 1 s scrape: 4 scrapes


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def overlaps(a, b):
    return (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
            and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"])


def structure(dash):
    check("schemaVersion is Grafana 9's or later", dash.get("schemaVersion", 0) >= 36)
    check("a fixed uid, so links and re-imports keep it", bool(dash.get("uid")))
    tv = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
    ds = tv.get("DS_PROMETHEUS", {})
    check("a Prometheus datasource variable DS_PROMETHEUS",
          ds.get("type") == "datasource" and ds.get("query") == "prometheus", str(ds))
    inst = tv.get("instance", {})
    check("an instance variable from relud_build_info",
          inst.get("type") == "query" and "relud_build_info" in inst.get("definition", "")
          and inst.get("datasource") == DS, str(inst)[:200])
    check("a model variable", tv.get("model", {}).get("type") == "query")
    panels = dash["panels"]
    ids = [p["id"] for p in panels]
    check("panel ids are unique", len(ids) == len(set(ids)))
    grid = [p["gridPos"] for p in panels]
    bad = [(panels[i]["title"], panels[j]["title"]) for i in range(len(grid))
           for j in range(i + 1, len(grid)) if overlaps(grid[i], grid[j])]
    check("the grid has no overlapping panels, 24 columns wide",
          not bad and all(g["x"] + g["w"] <= 24 for g in grid), str(bad))
    viz = [p for p in panels if p["type"] != "row"]
    wrong = [p["title"] for p in viz if p.get("datasource") != DS
             or any(t.get("datasource") != DS for t in p.get("targets", []))]
    check("every panel and query uses ${DS_PROMETHEUS}", not wrong, str(wrong))
    noexpr = [p["title"] for p in viz if not p.get("targets")
              or any(not t.get("expr") for t in p["targets"])]
    check("every panel has queries", not noexpr, str(noexpr))
    undef = set()
    for p in viz:
        for t in p["targets"]:
            for v in re.findall(r"\$(\w+)", t["expr"]):
                if v not in tv and not v.startswith("__"):
                    undef.add(v)
    check("queries use only defined variables", not undef, str(undef))
    exprs = " ".join(t["expr"] for p in viz for t in p["targets"])
    for what, pat in [
            ("request rate by route", r"sum by \(route\) \(rate\(relud_requests_total"),
            ("p50/p90/p99 latency by route",
             r"histogram_quantile\(0\.5,.*histogram_quantile\(0\.9,.*histogram_quantile\(0\.99, "
             r"sum by \(le, route\) \(rate\(relud_request_duration_seconds_bucket"),
            ("per-model p99", r"histogram_quantile\(0\.99, sum by \(le, model\) "
                              r"\(rate\(relud_model_request_duration_seconds_bucket"),
            ("errors by class", r"sum by \(class\) \(rate\(relud_errors_total"),
            ("503s", r'relud_requests_total\{[^}]*code="503"'),
            ("batch rejections", r"relud_model_rejected_total"),
            ("batch size distribution", r"relud_model_batch_size_bucket"),
            ("queue time", r"relud_model_queue_seconds_bucket"),
            ("in-flight requests", r"relud_inflight_requests"),
            ("open connections", r"relud_open_connections"),
            ("resident memory", r"process_resident_memory_bytes"),
            ("CPU", r"rate\(process_cpu_seconds_total"),
            ("BLAS kernel", r"relud_build_info")]:
        check(f"a panel for {what}", re.search(pat, exprs, re.S) is not None)
    return viz


def fill(expr, instance):
    return (expr.replace("$__rate_interval", RATE_INTERVAL)
            .replace("$instance", instance).replace("$model", ".*"))


def traffic(d, stop):
    """Every kind of request the dashboard's series count, until stop is set."""
    s = requests.Session()
    row = {"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP32",
                       "data": [float(i) for i in range(10)]}]}
    mn = {"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32",
                      "data": [0.0] * 784}]}
    while not stop.is_set():
        try:
            one_round(d, s, row, mn)
        except (requests.RequestException, OSError) as e:
            print(f"# traffic: {e}")
        stop.wait(0.2)


def one_round(d, s, row, mn):
    """One of each: a success, a 400, a 404, a batch, the queue's 503, a protocol error."""
    s.post(d.url + "/v2/models/simple_nn/infer", json=row, timeout=10)
    s.post(d.url + "/v2/models/simple_nn/infer", data=b"{", timeout=10)  # 400
    s.get(d.url + "/v2/models/nope", timeout=10)  # 404
    def batched():
        try:
            requests.post(d.url + "/v2/models/mnist_mlp/infer", json=mn, timeout=10)
        except requests.RequestException:
            pass
    threads = [threading.Thread(target=batched) for _ in range(4)]
    for t in threads:  # several at once: they batch and queue
        t.start()
    for t in threads:
        t.join()
    s.post(d.url + "/v2/models/mnist_mlp/infer",  # the queue's 503 (timeout)
           json=dict(mn, parameters={"timeout": 1}), timeout=10)
    raw = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    raw.sendall(b"POST /v1/forward HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")
    try:
        raw.recv(4096)  # libmicrohttpd's own 400
    except OSError:
        pass
    raw.close()


def main():
    with open(DASH) as f:
        dash = json.load(f)
    viz = structure(dash)
    queries = [(p["title"], t["refId"], t["expr"]) for p in viz for t in p["targets"]]
    promtool, prom = shutil.which("promtool"), shutil.which("prometheus")
    if not check("promtool and prometheus are installed (Debian's prometheus package)",
                 promtool and prom):
        finish()
    tmp = tempfile.mkdtemp(prefix="relud-dashboard-")
    d = p = load = None
    stop = threading.Event()
    try:
        rules = os.path.join(tmp, "rules.json")  # YAML is a superset of JSON
        with open(rules, "w") as f:
            json.dump({"groups": [{"name": "dashboard", "rules": [
                {"record": f"dashboard:q{i}", "expr": fill(e, "127.0.0.1:1")}
                for i, (_, _, e) in enumerate(queries)]}]}, f)
        r = subprocess.run([promtool, "check", "rules", rules], capture_output=True, text=True,
                           timeout=60)
        check(f"promtool check rules: all {len(queries)} queries are valid PromQL",
              r.returncode == 0, (r.stdout + r.stderr)[-2000:])

        d = Daemon()
        instance = f"127.0.0.1:{d.port}"
        cfg = os.path.join(tmp, "prometheus.yml")
        with open(cfg, "w") as f:
            json.dump({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                       "scrape_configs": [{"job_name": "relud", "static_configs": [
                           {"targets": [instance]}]}]}, f)
        port = free_port()
        plog = open(os.path.join(tmp, "prometheus.log"), "w")
        p = subprocess.Popen([prom, f"--config.file={cfg}", f"--storage.tsdb.path={tmp}/tsdb",
                              f"--web.listen-address=127.0.0.1:{port}"],
                             stdout=plog, stderr=subprocess.STDOUT)
        api = f"http://127.0.0.1:{port}/api/v1/query"
        load = threading.Thread(target=traffic, args=(d, stop), daemon=True)
        load.start()

        # Poll until every query answers finite numbers (each rate needs a few scrapes of
        # traffic), or the deadline: the queries still empty are the failures.
        pending = {(t, ref): fill(e, instance) for t, ref, e in queries}
        errors, failed = {}, {}
        deadline = time.time() + 60
        while pending and time.time() < deadline and p.poll() is None:
            for key, q in list(pending.items()):
                try:
                    resp = requests.get(api, params={"query": q}, timeout=5).json()
                except (requests.RequestException, ValueError) as e:
                    errors[key] = str(e)
                    continue
                if resp.get("status") != "success":  # a bad query: no use asking again
                    errors[key] = resp.get("error", str(resp))
                    failed[key] = pending.pop(key)
                    continue
                vals = [float(v["value"][1]) for v in resp["data"]["result"]]
                if any(math.isfinite(v) for v in vals):
                    del pending[key]
                    errors.pop(key, None)
                else:
                    errors[key] = f"no finite value yet: {resp['data']['result'][:3]}"
            if pending:
                time.sleep(0.5)
        check("Prometheus ran through the checks", p.poll() is None)
        for title, ref, e in queries:
            key = (title, ref)
            check(f"{title} [{ref}] returns data", key not in pending and key not in failed,
                  f"{errors.get(key, 'pending')}: {fill(e, instance)}")
    finally:
        stop.set()
        if load is not None:
            load.join(30)
        if p is not None:
            p.terminate()
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if d is not None:
            d.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    finish()


if __name__ == "__main__":
    main()
