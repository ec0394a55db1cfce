"""drain_timeout is a hard limit, and the client of a cut pass gets a reply.

A deep model (150 Linear 256 -> 256 layers, zero weights) gets a batch that keeps one pass
busy for several seconds; relud, with --drain-timeout 1, receives SIGTERM while it runs. The
pass must be cut between two layers and answered 503 with Connection: close and a JSON error
naming the layer, the access log must record the 503 the client got, and relud must exit 0.
The request is sized so that the pass would outlast the drain many times over on any CPU;
the time relud took to exit is printed, not judged.
"""
import json
import os
import shutil
import signal
import socket
import struct
import tempfile
import threading
import time

from common import Daemon, check, error_json, finish, parse_response, recv_all

D, L, B = 256, 150, 16384


def write_model(folder):
    names = [f"{i}.weight" for i in range(L)]
    header, off = {}, 0
    for n in names:
        size = D * D * 4
        header[n] = {"dtype": "F32", "shape": [D, D], "data_offsets": [off, off + size]}
        off += size
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(folder, "deep.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        f.write(bytes(off))  # zeros
    with open(os.path.join(folder, "deep.json"), "w") as f:
        json.dump({"name": "deep", "dtype": "float32", "weights": "deep.safetensors",
                   "layers": [{"type": "linear", "bias": None}] * L}, f)


def main():
    folder = tempfile.mkdtemp(prefix="relud-drain-")
    write_model(folder)
    d = Daemon("--model-dir", folder, "--drain-timeout", "1", "--threads", "2",
               "--max-body-bytes", "64MiB", env={"OPENBLAS_CORETYPE": "Prescott"})
    head = json.dumps({"inputs": [{"name": "input", "shape": [B, D], "datatype": "FP32",
                                   "parameters": {"binary_data_size": B * D * 4}}]}).encode()
    body = head + bytes(B * D * 4)
    result = {}

    def client():
        s = socket.create_connection(("127.0.0.1", d.port), timeout=60)
        s.sendall(b"POST /v2/models/deep/infer HTTP/1.1\r\nHost: x\r\n"
                  b"Inference-Header-Content-Length: %d\r\nContent-Length: %d\r\n\r\n"
                  % (len(head), len(body)) + body)
        result["raw"] = recv_all(s)
        s.close()

    t = threading.Thread(target=client)
    t.start()
    check("the long pass is in flight",
          d.wait_metric("relud_inflight_requests", lambda v: v >= 2, timeout=30) is not None)
    time.sleep(0.05)  # well inside the pass, which takes seconds
    t0 = time.time()
    d.proc.send_signal(signal.SIGTERM)
    rc = d.proc.wait(60)
    took = time.time() - t0
    t.join(60)
    status, hdrs, rbody = parse_response(result.get("raw", b""))
    msg = error_json(rbody) or ""
    check("the cut pass is answered 503 with Connection: close (not a dropped connection)",
          status == 503 and hdrs.get("connection") == "close", f"{status} {hdrs}")
    check("its JSON error says the replica is draining and names the layer it stopped at",
          "draining" in msg and "pass was cancelled" in msg and "layers[" in msg, msg)
    log = d.text()
    check("the access log records the 503 the client got",
          "route=/v2/models/{name}/infer status=503" in log, log[-600:])
    check("relud exits 0", rc == 0, f"exit {rc}")
    print(f"note: relud exited {took:.2f} s after SIGTERM (drain_timeout 1 s; the pass alone "
          f"would take several seconds)")
    d.stop()
    shutil.rmtree(folder, ignore_errors=True)
    finish()


if __name__ == "__main__":
    main()
