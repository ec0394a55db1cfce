"""Shared helpers for the client suites: start the real daemon, raw sockets, ok/FAIL counting.

Run with Debian's /usr/bin/python3 (python3-requests lives there). Every suite prints one line
per check ("ok   - ..." / "FAIL - ...") and ends with "N passed, N failed".
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RELUD = os.environ.get("RELUD") or os.path.join(ROOT, "build", "relud")

passed = 0
failed = 0


def check(desc, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok   - {desc}")
    else:
        failed += 1
        print(f"FAIL - {desc}" + (f": {detail}" if detail else ""))
    sys.stdout.flush()
    return cond


def finish():
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


class Daemon:
    """build/relud on a free loopback port with extra flags; stopped by stop()."""

    def __init__(self, *flags, env=None):
        self.log = tempfile.NamedTemporaryFile(prefix="relud-clients-", suffix=".log", delete=False)
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen(
            [RELUD, "--host", "127.0.0.1", "--port", "0", "--model-dir",
             os.path.join(ROOT, "config", "models"), *flags],
            stdout=subprocess.DEVNULL, stderr=self.log, env=e, cwd=ROOT)
        self.port = None
        deadline = time.time() + 30
        while time.time() < deadline:  # until it logs its port (or exits)
            if self.proc.poll() is not None:
                raise RuntimeError("relud exited during start:\n" + self.text())
            m = re.search(r"listening on http://[^ ]*:(\d+) ", self.text())
            if m and re.search(r"info ready\b", self.text()):
                self.port = int(m.group(1))
                break
            time.sleep(0.02)
        if not self.port:
            raise RuntimeError("relud did not start:\n" + self.text())
        self.url = f"http://127.0.0.1:{self.port}"

    def text(self):
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()

    def pid(self):
        return self.proc.pid

    def metric(self, name):
        """The value of an unlabelled series in /metrics."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = recv_all(s)
        s.close()
        m = re.search(rb"\n" + name.encode() + rb" (\d+)", data)
        return int(m.group(1)) if m else None

    def wait_metric(self, name, pred, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = self.metric(name)
            if v is not None and pred(v):
                return v
            time.sleep(0.01)
        return None

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        os.unlink(self.log.name)
        return self.proc.returncode


def recv_all(s, limit=1 << 26):
    """Reads until the peer closes (or one whole response with Content-Length arrived)."""
    out = b""
    while len(out) < limit:
        try:
            d = s.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not d:
            break
        out += d
        if b"\r\n\r\n" in out:
            head, body = out.split(b"\r\n\r\n", 1)
            m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            if m and len(body) >= int(m.group(1)):
                break
    return out


def parse_response(raw):
    """(status, headers dict lower-case, body bytes) of the first response in raw."""
    if b"\r\n\r\n" not in raw:
        return None, {}, b""
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.partition(b":")
        hdrs[k.strip().lower().decode()] = v.strip().decode(errors="replace")
    n = int(hdrs.get("content-length", len(body)))
    return status, hdrs, body[:n]


def error_json(body):
    """The "error" message of a JSON error body, or None."""
    try:
        o = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return o.get("error") if isinstance(o, dict) and isinstance(o.get("error"), str) else None
