"""Compression both ways, as clients nobody here wrote do it.

Requests: Content-Encoding gzip and deflate (zlib), Content-Length or chunked, JSON and the
binary tensor extension (Inference-Header-Content-Length counts the inflated JSON part), a
multi-member gzip; a zip bomb stops at max_body_bytes with 413 while the daemon's peak
memory stays near the cap, not the bomb's size; corrupt, truncated and trailing data are
400; an unknown coding 415. Replies: gzip for a client that accepts it (Python requests,
curl --compressed, wget --compression=gzip) with Vary: Accept-Encoding, the same JSON once
inflated; not for q=0, small replies, binary tensor data, or with gzip_min_bytes 0.
"""
import gzip
import json
import os
import re
import struct
import subprocess
import tempfile
import zlib

import requests

from common import Daemon, check, finish

ROW = list(range(1, 11))
V1 = {"model": "simple_nn", "input": [ROW]}
WANT = [[1.2734791, 0, 0, 0.072146654, 0]]


def close(a, b):
    return all(abs(x - y) <= 1e-6 + 1e-5 * abs(y) for x, y in zip(sum(a, []), sum(b, [])))


def post(d, path, data, enc=None, headers=None):
    h = {"Content-Type": "application/json"}
    if enc:
        h["Content-Encoding"] = enc
    h.update(headers or {})
    return requests.post(d.url + path, data=data, headers=h, timeout=60)


def hwm(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) * 1024


def main():
    d = Daemon("--max-body-bytes", "4MiB")
    try:
        body = json.dumps(V1).encode()
        for enc, data in [("gzip", gzip.compress(body)), ("deflate", zlib.compress(body)),
                          ("x-gzip", gzip.compress(body)),
                          ("gzip", gzip.compress(body[:20]) + gzip.compress(body[20:]))]:
            r = post(d, "/v1/forward", data, enc)
            check(f"Content-Encoding: {enc} ({len(data)} bytes) is inflated",
                  r.status_code == 200 and close(r.json()["output"], WANT), r.text[:200])
        gz = gzip.compress(body)
        chunks = (gz[i:i + 7] for i in range(0, len(gz), 7))
        r = post(d, "/v1/forward", chunks, "gzip")
        check("chunked and gzip", r.status_code == 200, r.text[:200])

        head = json.dumps({"inputs": [{"name": "input", "shape": [1, 10], "datatype": "FP32",
                                       "parameters": {"binary_data_size": 40}}]}).encode()
        raw = head + struct.pack("<10f", *ROW)
        r = post(d, "/v2/models/simple_nn/infer", gzip.compress(raw), "gzip",
                 {"Inference-Header-Content-Length": str(len(head)),
                  "Content-Type": "application/octet-stream"})
        check("binary tensor data, gzipped, with the inflated JSON length",
              r.status_code == 200 and close([r.json()["outputs"][0]["data"]], WANT), r.text[:200])

        # a zip bomb: 3 GB of zeros in ~3 MB, against a 4 MiB cap
        bomb = gzip.compress(b"\0" * (64 << 20), 9) * 48
        before = hwm(d.pid())
        r = post(d, "/v1/forward", bomb, "gzip")
        grew = hwm(d.pid()) - before
        check("a zip bomb (3 GiB inflated) is 413 at max_body_bytes",
              r.status_code == 413 and "inflates" in r.json().get("error", ""), r.text[:200])
        check(f"and the daemon's peak memory grew by {grew >> 20} MiB (body cap 4 MiB + the "
              f"compressed body)", grew < 64 << 20, str(grew))

        for desc, data, part in [
            ("corrupt", b"not gzip at all", "not a valid gzip stream"),
            ("truncated", gzip.compress(body)[:-12], "ends before its compressed stream"),
            ("trailing garbage", gzip.compress(body) + b"junk", "not a valid gzip stream"),
        ]:
            r = post(d, "/v1/forward", data, "gzip")
            check(f"{desc} gzip is 400 naming it", r.status_code == 400 and
                  part in r.json().get("error", ""), r.text[:200])
        r = post(d, "/v1/forward", zlib.compress(body) + b"x", "deflate")
        check("deflate with data after its end is 400", r.status_code == 400, r.text[:200])
        r = post(d, "/v1/forward", body, "br")
        check("Content-Encoding: br is 415", r.status_code == 415 and
              "not supported" in r.json().get("error", ""), r.text[:200])

        # replies
        big = {"input": [[float(i % 97) / 7 for i in range(1024)] for _ in range(32)],
               "layers": [{"type": "relu"}]}
        plain = requests.post(d.url + "/v1/forward", json=big,
                              headers={"Accept-Encoding": "identity"}, timeout=60)
        s = requests.Session()
        r = s.post(d.url + "/v1/forward", json=big, timeout=60, stream=True)
        wire = r.raw.read(decode_content=False)
        check("a large reply is gzipped for Python requests, with Vary: Accept-Encoding",
              r.headers.get("Content-Encoding") == "gzip" and
              "Accept-Encoding" in r.headers.get("Vary", "") and len(wire) < len(plain.content),
              f"{r.headers} {len(wire)} vs {len(plain.content)}")
        check("it inflates to the same reply", gzip.decompress(wire) == plain.content)
        check("identity: not compressed, Vary all the same",
              plain.headers.get("Content-Encoding") is None and
              "Accept-Encoding" in plain.headers.get("Vary", ""))
        r = requests.post(d.url + "/v1/forward", json=big, timeout=60,
                          headers={"Accept-Encoding": "gzip;q=0, identity"})
        check("gzip;q=0 is not gzip", r.headers.get("Content-Encoding") is None)
        r = requests.post(d.url + "/v1/forward", json=V1, timeout=60)
        check("a small reply (under gzip_min_bytes) is not compressed",
              r.headers.get("Content-Encoding") is None)
        r = requests.post(d.url + "/v2/models/simple_nn/infer", timeout=60,
                          data=json.dumps({"parameters": {"binary_data_output": True},
                                           "inputs": [{"name": "input", "shape": [64, 10],
                                                       "datatype": "FP32",
                                                       "data": ROW * 64}]}))
        check("binary tensor data is not compressed",
              r.status_code == 200 and r.headers.get("Content-Encoding") is None)

        tmp = tempfile.mkdtemp(prefix="relud-gz-")
        req = os.path.join(tmp, "req.json")
        with open(req, "w") as f:
            json.dump(big, f)
        p = subprocess.run(["curl", "-s", "--compressed", "-D", os.path.join(tmp, "h"),
                            "-o", os.path.join(tmp, "o"), d.url + "/v1/forward", "--data-binary",
                            "@" + req], capture_output=True, timeout=60)
        hdrs = open(os.path.join(tmp, "h")).read().lower()
        check("curl --compressed gets gzip and inflates it",
              p.returncode == 0 and "content-encoding: gzip" in hdrs and
              open(os.path.join(tmp, "o"), "rb").read() == plain.content)
        p = subprocess.run(["wget", "-q", "--compression=gzip", "-O", os.path.join(tmp, "w"),
                            "--header=Content-Type: application/json", "--post-file=" + req,
                            d.url + "/v1/forward"], capture_output=True, timeout=60)
        check("wget --compression=gzip gets the same reply",
              p.returncode == 0 and open(os.path.join(tmp, "w"), "rb").read() == plain.content,
              p.stderr.decode()[:200])
    finally:
        d.stop()
    off = Daemon("--gzip-min-bytes", "0")
    try:
        r = requests.post(off.url + "/v1/forward", json=big, timeout=60)
        check("gzip_min_bytes 0: never compressed, no Vary",
              r.headers.get("Content-Encoding") is None and "Vary" not in r.headers)
    finally:
        off.stop()
    finish()


if __name__ == "__main__":
    main()
