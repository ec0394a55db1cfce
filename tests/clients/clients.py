"""Early refusals as real clients see them.

relud refuses some requests from their headers alone (413 over max_body_bytes, 503 overloaded,
503 over connection_limit, 503 draining, 404/405/415 with a body). Clients nobody on the
project wrote must each receive the documented status and {"error": ...} JSON body, not a
reset connection: Python requests (Content-Length and chunked) and urllib, wget, curl with and
without `Expect: 100-continue`, and curl through nginx with the shipped proxy config
(deploy/nginx/relud-proxy.conf). Every client here sends its whole body before it reads the
reply, except curl with Expect.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import requests

from common import ROOT, Daemon, check, error_json, finish, parse_response, recv_all

MiB = 1 << 20
TMP = tempfile.mkdtemp(prefix="relud-clients-")
BIG = os.path.join(TMP, "big.json")
with open(BIG, "wb") as f:  # 2 MiB of a JSON body (its content never matters here)
    f.write(b'{"input":[' + b"1," * (MiB - 16) + b'1],"layers":[]}')
BIG_BYTES = open(BIG, "rb").read()


# ---- the clients: each returns (status, content-type, error message) or raises ----------
def c_requests(method, url, chunked=False):
    data = (BIG_BYTES[i:i + 65536] for i in range(0, len(BIG_BYTES), 65536)) if chunked else BIG_BYTES
    r = requests.request(method, url, data=data, timeout=30)
    return r.status_code, r.headers.get("Content-Type"), error_json(r.content)


def c_urllib(method, url):
    req = urllib.request.Request(url, data=BIG_BYTES, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers.get("Content-Type"), error_json(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), error_json(e.read())


def c_wget(method, url):
    p = subprocess.run(["wget", "-q", "-S", "-O", "-", "--content-on-error", "--tries=1",
                        "--timeout=30", f"--method={method}", f"--body-file={BIG}", url],
                       capture_output=True, timeout=60)
    status = ctype = None
    for line in p.stderr.decode(errors="replace").splitlines():
        line = line.strip()
        if line.startswith("HTTP/"):
            status = int(line.split()[1])
        elif line.lower().startswith("content-type:"):
            ctype = line.split(":", 1)[1].strip()
    if status is None:
        raise RuntimeError(f"wget rc {p.returncode}: {p.stderr.decode(errors='replace')[-200:]}")
    return status, ctype, error_json(p.stdout)


def c_curl(method, url, expect=True, chunked=False):
    args = ["curl", "-s", "-i", "-X", method, "--data-binary", f"@{BIG}", "-m", "30"]
    if not expect:
        args += ["-H", "Expect:"]
    if chunked:
        args += ["-H", "Transfer-Encoding: chunked"]
    p = subprocess.run(args + [url], capture_output=True, timeout=60)
    raw = p.stdout
    # curl -i prints "HTTP/1.1 100 Continue" blocks before the final one
    while raw.startswith(b"HTTP/1.1 100"):
        raw = raw.split(b"\r\n\r\n", 1)[1]
    status, hdrs, body = parse_response(raw)
    if status is None:
        raise RuntimeError(f"curl rc {p.returncode}: {p.stderr[-200:]!r}")
    return status, hdrs.get("content-type"), error_json(body)


CLIENTS = {
    "requests": lambda m, u: c_requests(m, u),
    "requests chunked": lambda m, u: c_requests(m, u, chunked=True),
    "urllib": c_urllib,
    "wget": c_wget,
    "curl (Expect: 100-continue)": lambda m, u: c_curl(m, u),
    "curl without Expect": lambda m, u: c_curl(m, u, expect=False),
    "curl chunked": lambda m, u: c_curl(m, u, expect=False, chunked=True),
}


def run_case(case, method, url, want_status, want_msg, clients):
    for name in clients:
        try:
            status, ctype, msg = CLIENTS[name](method, url)
        except Exception as e:  # a reset or broken pipe is exactly the bug
            check(f"{case}: {name} gets {want_status}", False, f"{type(e).__name__}: {e}")
            continue
        check(f"{case}: {name} gets {want_status} with the JSON error",
              status == want_status and ctype == "application/json" and msg is not None
              and want_msg in msg, f"got {status} {ctype} {msg!r}")


# ---- nginx in front, with the shipped proxy config ------------------------------------------
class Nginx:
    def __init__(self, upstream_port):
        self.dir = tempfile.mkdtemp(prefix="relud-nginx-")
        os.chmod(self.dir, 0o755)  # nginx workers (user nobody) write their temp files below
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        conf = os.path.join(self.dir, "nginx.conf")
        d = self.dir
        with open(conf, "w") as f:
            f.write(f"""daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
    uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    access_log off;
    client_max_body_size 64m;
    upstream relud {{ server 127.0.0.1:{upstream_port}; keepalive 8; }}
    server {{
        listen 127.0.0.1:{self.port};
        location / {{ proxy_pass http://relud; include {ROOT}/deploy/nginx/relud-proxy.conf; }}
    }}
}}
""")
        self.proc = subprocess.Popen(["nginx", "-p", d, "-c", conf], stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def hold_upload(port, declared, sent):
    """A client that declared `declared` bytes, sent `sent` of them, and waits."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"POST /v1/forward HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % declared
              + b" " * sent)
    return s


ALL = list(CLIENTS)


def main():
    # 413 by Content-Length, 404 and 405 with a body, 415: one daemon, every client, and nginx
    d = Daemon("--max-body-bytes", "1MiB")
    ng = Nginx(d.port)
    try:
        for base, via in ((d.url, ""), (ng.url, " via nginx")):
            clients = ALL if not via else ["curl (Expect: 100-continue)", "curl without Expect",
                                           "requests chunked"]
            run_case("413 over max_body_bytes" + via, "POST", base + "/v1/forward", 413,
                     "exceeds max_body_bytes", clients)
            run_case("404 with a body" + via, "POST", base + "/v1/nothere", 404,
                     "no such endpoint", clients)
            run_case("405 with a body" + via, "PUT", base + "/v1/forward", 405,
                     "not allowed on /v1/forward", clients)
        # the daemon still serves after all of that
        r = requests.post(d.url + "/v1/forward", timeout=10,
                          json={"input": [-1, 2], "layers": [{"type": "relu"}]})
        check("the daemon still serves after the refusals", r.status_code == 200
              and r.json() == {"output": [0, 2]}, r.text)
    finally:
        ng.stop()
        d.stop()

    # 503 overloaded: one held upload reserves 900 KiB of the 1 MiB max_buffered_bytes
    d = Daemon("--max-body-bytes", "3MiB", "--max-buffered-bytes", "3MiB")
    try:
        holders = [hold_upload(d.port, 1536 * 1024, 1000)]
        ok = d.wait_metric("relud_buffered_body_bytes", lambda v: v >= 1536 * 1024)
        check("a held upload reserves its Content-Length", ok is not None)
        run_case("503 overloaded", "POST", d.url + "/v1/forward", 503,
                 "exceed max_buffered_bytes", ALL)
        for h in holders:
            h.close()
    finally:
        d.stop()

    # 503 over connection_limit: two idle connections hold both slots
    d = Daemon("--connection-limit", "2")
    try:
        holders = [socket.create_connection(("127.0.0.1", d.port)) for _ in range(2)]
        ok = d.wait_metric("relud_open_connections", lambda v: v >= 3)  # + this scrape
        check("two held connections are counted", ok is not None)
        run_case("503 over connection_limit", "POST", d.url + "/v1/forward", 503,
                 "more connections open than connection_limit (2)", ALL)
        for h in holders:
            h.close()
    finally:
        d.stop()

    # 503 draining: a request on a connection opened before SIGTERM (requests' Session keeps
    # it; nginx keeps its upstream connection). A held request keeps the drain going.
    d = Daemon("--drain-timeout", "20")
    ng = Nginx(d.port)
    try:
        sess = requests.Session()
        check("a keep-alive connection before the drain", sess.get(d.url + "/v2").status_code == 200)
        r = requests.post(ng.url + "/v1/forward", timeout=10,
                          json={"input": [1], "layers": [{"type": "relu"}]})
        check("nginx holds an upstream connection before the drain", r.status_code == 200)
        holder = hold_upload(d.port, 1000, 10)
        d.wait_metric("relud_inflight_requests", lambda v: v >= 2)
        d.proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 10
        while "draining:" not in d.text() and time.time() < deadline:
            time.sleep(0.01)
        try:
            r = sess.post(d.url + "/v1/forward", data=BIG_BYTES, timeout=30)
            check("503 draining: requests (kept connection) gets 503 with the JSON error",
                  r.status_code == 503 and "draining" in (error_json(r.content) or "")
                  and r.headers.get("Connection") == "close", f"{r.status_code} {r.text[:200]}")
        except Exception as e:
            check("503 draining: requests (kept connection) gets 503", False, repr(e))
        try:
            st, ctype, msg = c_curl("POST", ng.url + "/v1/forward", expect=False)
            check("503 draining via nginx: curl gets 503 with the JSON error",
                  st == 503 and msg is not None and "draining" in msg, f"{st} {msg!r}")
        except Exception as e:
            check("503 draining via nginx", False, repr(e))
        holder.close()
    finally:
        ng.stop()
        d.stop()
    shutil.rmtree(TMP, ignore_errors=True)
    finish()


if __name__ == "__main__":
    main()
