"""/metrics as Prometheus's own tools read it.

After traffic of every kind (successes, errors, a batch, a refused batch request, a
non-model route), Prometheus's `promtool check metrics` (Debian's prometheus package) must
pass the exposition with no warning; latency histograms must resolve relud's real
latencies (a first bucket at or below 25 us, a last at or above 30 s); the per-model latency
is a histogram; the standard process_* series are there with plausible values; and every
metric the shipped Grafana dashboard (deploy/grafana/relud-dashboard.json, when present)
queries is one relud exports.
"""
import json
import os
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from common import ROOT, Daemon, check, finish

ROW = [float(i) for i in range(10)]


def scrape(d):
    return requests.get(d.url + "/metrics", timeout=10).text


def les(text, family, label):
    """The le values of one series' buckets, in order."""
    out = []
    for m in re.finditer(r"^" + family + r"_bucket\{" + label + r',le="([^"]+)"\}', text, re.M):
        out.append(float("inf") if m.group(1) == "+Inf" else float(m.group(1)))
    return out


def main():
    promtool = shutil.which("promtool")
    d = Daemon("--admin-token", "tok")
    try:
        s = requests.Session()
        infer = d.url + "/v2/models/simple_nn/infer"
        body = {"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP32", "data": ROW}]}
        for _ in range(5):
            s.post(infer, json=body, timeout=10)
        s.post(infer, data=b"{", timeout=10)  # 400
        s.get(d.url + "/v2/models/nope", timeout=10)  # 404
        s.post(d.url + "/v2/repository/index", timeout=10)  # 401
        mn = {"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32",
                          "data": [0.0] * 784}]}
        with ThreadPoolExecutor(8) as ex:  # mnist_mlp batches
            list(ex.map(lambda _: requests.post(d.url + "/v2/models/mnist_mlp/infer", json=mn,
                                                timeout=30).status_code, range(16)))
        tmo = dict(mn, parameters={"timeout": 1})  # queued past its timeout: rejected
        s.post(d.url + "/v2/models/mnist_mlp/infer", json=tmo, timeout=10)
        text = scrape(d)

        if check("promtool is installed (Debian's prometheus package)", promtool is not None):
            p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                               text=True, timeout=60)
            check("promtool check metrics passes with no warning",
                  p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(),
                  (p.stdout + p.stderr)[:2000])

        route = les(text, "relud_request_duration_seconds", r'route="/v2/models/\{name\}/infer"')
        check("route latency buckets run from <= 25 us to >= 30 s, then +Inf",
              route and route[0] <= 25e-6 and route[-2] >= 30 and route[-1] == float("inf"),
              str(route))
        model = les(text, "relud_model_request_duration_seconds", 'model="simple_nn"')
        check("per-model latency is a histogram with the same buckets", model == route,
              str(model))
        check("# TYPE relud_model_request_duration_seconds histogram",
              "# TYPE relud_model_request_duration_seconds histogram\n" in text)
        m = re.search(r'^relud_model_request_duration_seconds_count\{model="simple_nn"\} (\d+)',
                      text, re.M)
        check("it counted simple_nn's requests (5 and the bad one)", m and int(m.group(1)) == 6,
              m.group(0) if m else "missing")
        check("outcomes per model",
              re.search(r'^relud_model_requests_total\{model="simple_nn",outcome="failure"\} 1$',
                        text, re.M) is not None)
        check("batch sizes and the timeout rejection per model",
              re.search(r'^relud_model_batch_size_count\{model="mnist_mlp"\} [1-9]', text, re.M)
              and re.search(r'^relud_model_rejected_total\{model="mnist_mlp",reason="timeout"\} 1$',
                            text, re.M))

        def series(name):
            m = re.search(r"^" + name + r" ([0-9.e+]+)$", text, re.M)
            return float(m.group(1)) if m else None

        rss, vsz = series("process_resident_memory_bytes"), series("process_virtual_memory_bytes")
        with open(f"/proc/{d.pid()}/status") as f:
            vmrss = int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) * 1024
        check("process_resident_memory_bytes is the daemon's RSS (within 50%)",
              rss is not None and 0.5 * vmrss < rss < 1.5 * vmrss, f"{rss} vs {vmrss}")
        check("process_virtual_memory_bytes >= RSS", vsz is not None and rss and vsz >= rss)
        start = series("process_start_time_seconds")
        check("process_start_time_seconds is within the last minutes",
              start is not None and time.time() - 600 < start <= time.time() + 1, str(start))
        fds, maxfds = series("process_open_fds"), series("process_max_fds")
        nfd = len(os.listdir(f"/proc/{d.pid()}/fd"))
        check("process_open_fds counts the daemon's descriptors",
              fds is not None and abs(fds - nfd) <= 3, f"{fds} vs {nfd}")
        check("process_max_fds is set", maxfds is not None and maxfds >= fds)
        check("process_cpu_seconds_total counts", (series("process_cpu_seconds_total") or -1) >= 0)
        check("relud_build_info names the version and the BLAS kernel",
              re.search(r'^relud_build_info\{version="[^"]+",blas="[^"]+",blas_core="[^"]+"', text,
                        re.M) is not None)

        dash = os.path.join(ROOT, "deploy", "grafana", "relud-dashboard.json")
        if os.path.exists(dash):
            exported = set(re.findall(r"^# TYPE (\S+) (\w+)", text, re.M))
            names = set()
            for name, typ in exported:
                names.add(name)
                if typ == "histogram":
                    names.update({name + "_bucket", name + "_sum", name + "_count"})
            with open(dash) as f:
                exprs = re.findall(r'"expr":\s*"((?:[^"\\]|\\.)*)"', f.read())
            used = set()
            for e in exprs:
                used.update(re.findall(r"\b((?:relud|process)_[a-z_]+)\b", e))
            unknown = sorted(used - names)
            check(f"the Grafana dashboard's {len(exprs)} queries use only exported metrics "
                  f"({len(used)} names)", exprs and not unknown, ", ".join(unknown))
            json.load(open(dash))
    finally:
        d.stop()
    finish()


if __name__ == "__main__":
    main()
