"""clients/python/relud_client.py against the real daemon.

Every method of the client on a live relud: server and model metadata, health, config,
statistics, the repository and model control; infer with binary tensors and with JSON, in
every integer and float wire datatype, agreeing with each other, with /v1/forward and with
numpy's own forward and backward of the bundled models' weights; the gradients extension;
relud's error messages carried by ReludError; Authorization headers; retries on a 503 with
Retry-After (attempts counted, the waits recorded) and on refused connections; the timeout;
and the README's "Python client" example, run as printed.
"""
import http.server
import io
import json
import os
import re
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import redirect_stdout

import numpy as np

from common import ROOT, RELUD, Daemon, check, finish

sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
from relud_client import DATATYPES, Client, InferResult, ReludError, datatype_of  # noqa: E402

TOKEN = "tok"


def close(a, b, rtol=1e-5, atol=1e-6):
    """torch.allclose's rule (a BLAS call sums in its own order)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=rtol, atol=atol))


def raises(fn, status=None, message=None, contains=None):
    """The ReludError fn raises (checked against status and message), else None."""
    try:
        fn()
    except ReludError as e:
        if status is not None and e.status != status:
            return None
        if message is not None and e.message != message:
            return None
        if contains is not None and contains not in e.message:
            return None
        return e
    return None


def err_of(fn):
    try:
        fn()
    except ReludError as e:
        return f"{e.status}: {e.message}"
    return "no error"


def counting(client):
    """The statuses of every reply the client's session receives (retries included)."""
    statuses = []
    client.session.hooks["response"].append(lambda r, *a, **k: statuses.append(r.status_code))
    return statuses


# -- numpy references from the model files --------------------------------------------------

def simple_nn():
    with open(os.path.join(ROOT, "config", "models", "simple_nn.json")) as f:
        layers = json.load(f)["layers"]
    return (np.array(layers[0]["weight"], np.float32), np.array(layers[0]["bias"], np.float32))


def safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    out = {}
    for k, v in head.items():
        if k == "__metadata__":
            continue
        assert v["dtype"] == "F32"
        b, e = v["data_offsets"]
        out[k] = np.frombuffer(raw[8 + n + b:8 + n + e], "<f4").reshape(v["shape"])
    return out


def mnist_ref(x):
    w = safetensors(os.path.join(ROOT, "config", "models", "mnist_mlp.safetensors"))
    h = x.astype(np.float64)
    for i in (0, 2, 4):
        h = h @ w[f"{i}.weight"].T.astype(np.float64) + w[f"{i}.bias"]
        if i != 4:
            h = np.maximum(h, 0)
    return h


# -- sections ---------------------------------------------------------------------------------

def test_server(c):
    check("is_server_live", c.is_server_live() is True)
    check("is_server_ready", c.is_server_ready() is True)
    meta = c.get_server_metadata()
    check("get_server_metadata: relud with the binary and gradients extensions",
          meta.get("name") == "relud" and "binary_tensor_data" in meta.get("extensions", [])
          and "gradients" in meta["extensions"], str(meta))
    text = c.get_metrics()
    check("get_metrics: Prometheus text with relud_build_info", "\nrelud_build_info{" in text)


def test_models(c):
    names = [m["name"] for m in c.list_models()]
    check("list_models", "simple_nn" in names and "mnist_mlp" in names, str(names))
    meta = c.get_model_metadata("simple_nn")
    check("get_model_metadata", meta["inputs"] == [{"name": "input", "datatype": "FP32",
                                                    "shape": [-1, 10]}], str(meta))
    check("get_model_metadata with model_version 1",
          c.get_model_metadata("simple_nn", "1") == meta)
    check("get_model_metadata of version 2: 404 with relud's message",
          raises(lambda: c.get_model_metadata("simple_nn", "2"), 404,
                 'model simple_nn has no version "2" (versions: ["1"])'),
          err_of(lambda: c.get_model_metadata("simple_nn", "2")))
    cfg = c.get_model_config("mnist_mlp")
    check("get_model_config: max_batch_size and dynamic_batching",
          cfg.get("max_batch_size") == 64 and
          cfg.get("dynamic_batching", {}).get("preferred_batch_size") == [64]
          and cfg["input"][0]["dims"] == [784], str(cfg))
    check("get_model_config with model_version 1",
          c.get_model_config("simple_nn", "1")["max_batch_size"] == 0)
    check("is_model_ready: simple_nn", c.is_model_ready("simple_nn") is True)
    check("is_model_ready: an unknown model is False", c.is_model_ready("resnet50") is False)
    check("is_model_ready of version 1 / 2", c.is_model_ready("simple_nn", "1") is True
          and c.is_model_ready("simple_nn", "2") is False)
    c.infer("simple_nn", np.ones((1, 10), np.float32))
    st = c.get_inference_statistics("simple_nn")
    one = st["model_stats"][0]
    check("get_inference_statistics(model)", one["name"] == "simple_nn"
          and one["inference_stats"]["success"]["count"] >= 1, str(st)[:300])
    check("get_inference_statistics(model, version)",
          c.get_inference_statistics("simple_nn", "1")["model_stats"][0]["name"] == "simple_nn")
    every = [m["name"] for m in c.get_inference_statistics()["model_stats"]]
    check("get_inference_statistics() lists every model",
          "simple_nn" in every and "mnist_mlp" in every, str(every))
    check("get_inference_statistics of an unknown model: 404",
          raises(lambda: c.get_inference_statistics("resnet50"), 404, 'unknown model "resnet50"'))


def test_infer_simple(c):
    w, b = simple_nn()
    rng = np.random.default_rng(14)
    x = rng.standard_normal((7, 10)).astype(np.float32)
    ref = np.maximum(x.astype(np.float64) @ w.T + b, 0)
    rb = c.infer("simple_nn", {"input": x})
    rj = c.infer("simple_nn", {"input": x}, binary=False)
    ob, oj = rb.as_numpy("output"), rj.as_numpy("output")
    check("infer (binary) returns float32 [7, 5]", isinstance(rb, InferResult)
          and ob.dtype == np.float32 and ob.shape == (7, 5), repr(rb))
    check("infer (binary) agrees with numpy's Linear + ReLU", close(ob, ref), f"{ob} vs {ref}")
    check("infer (JSON) returns the same numbers exactly", oj.dtype == np.float32
          and np.array_equal(ob, oj))
    check("binary reply: outputs carry binary_data_size, not data",
          rb.get_output("output")["parameters"] == {"binary_data_size": 7 * 5 * 4}
          and "data" not in rb.get_output("output"))
    check("JSON reply: data", "data" in rj.get_output("output"))
    ob[0, 0] = 1  # arrays are the caller's
    check("binary outputs are writable arrays", ob[0, 0] == 1)
    fm = c.forward(x, model="simple_nn")
    check("forward(model) agrees with infer", close(fm["output"], oj) and
          fm["output"].shape == (7, 5), str(fm["output"]))
    fl = c.forward(x, [{"type": "linear", "weight": w, "bias": b}, {"type": "relu"}])
    check("forward(layers with numpy weights) agrees, as float32", close(fl["output"], oj)
          and fl["output"].dtype == np.float32)
    fd = c.forward(x, [{"type": "Linear", "weight": w, "bias": b}, {"type": "ReLU"}],
                   dtype="float64")
    ref64 = np.maximum(x.astype(np.float64) @ w.T.astype(np.float64) + b, 0)
    check("forward(dtype=float64) gives float64 arrays matching numpy",
          fd["output"].dtype == np.float64 and close(fd["output"], ref64, 1e-12, 1e-12))
    nested = c.forward([[-2.0, -1.0, 0.0, 1.0, 2.0]], [{"type": "relu"}])
    check("forward with nested lists", np.array_equal(nested["output"], [[0, 0, 0, 1, 2]]))
    r = c.infer("simple_nn", x, outputs=["output"], request_id="req-14", model_version="1")
    check("infer: a bare array is the input; outputs, request_id, model_version",
          r.id == "req-14" and r.model_name == "simple_nn" and r.model_version == "1"
          and list(r.outputs) == ["output"] and close(r["output"], ref))
    r = c.infer("simple_nn", x, outputs="output", binary=True, binary_output=False)
    check("binary inputs with JSON outputs", "data" in r.get_output("output")
          and close(r["output"], ref))
    r = c.infer("simple_nn", x, binary=False, binary_output=True)
    check("JSON inputs with binary outputs",
          "binary_data_size" in r.get_output("output")["parameters"] and close(r["output"], ref))


def test_dtypes(c):
    w, b = simple_nn()
    vals = np.array([[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]])
    ref = c.infer("simple_nn", vals.astype(np.float32))["output"]
    check("FP32 reference agrees with numpy",
          close(ref, np.maximum(vals.astype(np.float64) @ w.T + b, 0)))
    for wire, dt in DATATYPES.items():
        if wire in ("FP16", "BOOL"):
            continue
        a = vals.astype(dt)
        ok = datatype_of(a) == wire
        for binary in (True, False):
            out = c.infer("simple_nn", a, binary=binary)["output"]
            ok = ok and out.dtype == np.float32 and close(out, ref)
        check(f"{wire} inputs ({dt}), binary and JSON, agree with FP32", ok)
    be = vals.astype(">i4")  # a big-endian array goes out little-endian
    check("a big-endian int32 array is sent as INT32 little-endian",
          close(c.infer("simple_nn", be)["output"], ref))
    check("a non-contiguous slice is sent in row-major order",
          close(c.infer("simple_nn", np.asfortranarray(vals.astype(np.float32)))["output"], ref))
    check("FP16: relud's 400 message",
          raises(lambda: c.infer("simple_nn", vals.astype(np.float16)), 400,
                 "inputs[0] (input).datatype: FP16 is not supported by relud (use FP32, FP64 or "
                 "an integer type)"),
          err_of(lambda: c.infer("simple_nn", vals.astype(np.float16))))
    try:
        datatype_of(np.array(["a"]))
        check("a string array is refused before sending", False)
    except ValueError as e:
        check("a string array is refused before sending", "has no Open Inference" in str(e))


def test_float64_model(c):
    w = np.array([[0.1, -0.2, 0.3], [1e-9, 2.0, -1.0]])
    put = c.put_model("affine64", {"dtype": "float64", "layers": [
        {"type": "linear", "weight": w, "bias": [0.5, -0.25]}, {"type": "tanh"}]})
    check("put_model (a float64 model from numpy weights)",
          put == {"name": "affine64", "state": "READY"}, str(put))
    x = np.array([[1.0, 2.0, 3.0], [-1.5, 0.25, 1e-3]])
    ref = np.tanh(x @ w.T + np.array([0.5, -0.25]))
    rb, rj = c.infer("affine64", x), c.infer("affine64", x, binary=False)
    check("FP64 outputs come back as float64, binary and JSON identical",
          rb["output"].dtype == np.float64 and np.array_equal(rb["output"], rj["output"])
          and rb.get_output("output")["datatype"] == "FP64")
    check("FP64 outputs match numpy to float64 precision", close(rb["output"], ref, 1e-12, 1e-15))
    fm = c.forward(x, model="affine64")
    check("forward(model) without dtype keeps float64 digits",
          fm["output"].dtype == np.float64 and close(fm["output"], ref, 1e-12, 1e-15))
    check("forward(model, dtype=float32) on a float64 model: relud's message",
          raises(lambda: c.forward(x, model="affine64", dtype="float32"), 400),
          err_of(lambda: c.forward(x, model="affine64", dtype="float32")))
    check("delete_model", c.delete_model("affine64") == {"name": "affine64", "state": "DELETED"})


def test_mnist(c):
    rng = np.random.default_rng(784)
    x = rng.random((5, 784), dtype=np.float32)
    ref = mnist_ref(x)
    rb = c.infer("mnist_mlp", x)
    rj = c.infer("mnist_mlp", x, binary=False)
    check("mnist_mlp (batching) binary infer agrees with numpy's MLP from the safetensors",
          close(rb["output"], ref, 1e-4, 1e-5), f"max diff {np.abs(rb['output'] - ref).max()}")
    check("mnist_mlp binary and JSON agree", close(rb["output"], rj["output"]))
    check("mnist_mlp /v1/forward agrees", close(c.forward(x, model="mnist_mlp")["output"],
                                                rb["output"]))
    rows = rng.random((16, 784), dtype=np.float32)
    with ThreadPoolExecutor(8) as ex:  # one Client per thread; the rows meet in batches
        got = list(ex.map(lambda i: Client(c.url).infer("mnist_mlp", rows[i:i + 1])["output"],
                          range(16)))
    check("16 concurrent one-row binary requests (batched) each get their own row",
          close(np.concatenate(got), mnist_ref(rows), 1e-4, 1e-5))
    e = raises(lambda: c.infer("mnist_mlp", np.zeros((65, 784), np.float32)), 400)
    check("over max_batch_size: relud's 400 message", e and "max_batch_size (64)" in e.message,
          e and e.message)


def test_gradients(c):
    w, b = simple_nn()
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 10)).astype(np.float32)
    z = x.astype(np.float64) @ w.T + b
    mask = (z > 0).astype(np.float64)  # relu'(0) = 0, as torch
    g = c.gradients("simple_nn", x)
    check("gradients(): sum().backward() names outputs after the state_dict",
          sorted(g.gradients) == ["0.bias", "0.weight", "input"], str(list(g.outputs)))
    check("gradients(): d/dweight = mask^T x, d/dbias = sum(mask), d/dinput = mask w",
          close(g.gradients["0.weight"], mask.T @ x) and close(g.gradients["0.bias"],
                                                                mask.sum(0))
          and close(g.gradients["input"], mask @ w) and close(g["output"], np.maximum(z, 0)))
    gj = c.gradients("simple_nn", x, binary=False)
    check("gradients() binary and JSON identical",
          all(np.array_equal(g.outputs[k], gj.outputs[k]) for k in g.outputs))
    f = c.forward(x, model="simple_nn", gradients=True)
    check("gradients() agrees with /v1/forward gradients=true",
          close(f["gradients"]["input"], g.gradients["input"])
          and close(f["gradients"]["layers"][0]["weight"], g.gradients["0.weight"])
          and close(f["gradients"]["layers"][0]["bias"], g.gradients["0.bias"])
          and f["gradients"]["layers"][1] == {})
    go = rng.standard_normal((3, 5)).astype(np.float32)
    gg = c.gradients("simple_nn", x, grad_output=go, outputs=["grad:input"])
    check("gradients(grad_output) = (go * mask) w", list(gg.outputs) == ["grad:input"]
          and close(gg.gradients["input"], (go * mask) @ w))
    t = np.array([0, 3, 1])
    gl = c.gradients("simple_nn", x, loss="cross_entropy", target=t, clip_grad_norm=0.5,
                     stats=True)
    fl = c.forward(x, model="simple_nn", loss="cross_entropy", target=t, clip_grad_norm=0.5,
                   stats=True)
    zz = np.maximum(z, 0)
    lse = np.log(np.exp(zz - zz.max(1, keepdims=True)).sum(1)) + zz.max(1)
    ce = float(np.mean(lse - zz[np.arange(3), t]))
    check("cross_entropy loss matches numpy and /v1/forward",
          close(gl.loss, ce) and close(fl["loss"], gl.loss), f"{gl.loss} {fl['loss']} {ce}")
    check("clip_grad_norm: total_norm and clipped gradients agree with /v1/forward",
          close(gl.total_norm, fl["gradients"]["total_norm"])
          and close(gl.gradients["0.weight"], fl["gradients"]["layers"][0]["weight"])
          and np.linalg.norm(np.concatenate([gl.gradients["0.weight"].ravel(),
                                             gl.gradients["0.bias"]])) <= 0.5 + 1e-6)
    check("stats agree with /v1/forward",
          gl.stats and len(gl.stats) == 2 and gl.stats[1]["dead_units"] ==
          fl["stats"]["layers"][1]["dead_units"], str(gl.stats))
    tgt = rng.standard_normal((3, 5)).astype(np.float32)
    gm = c.gradients("simple_nn", x, loss="huber", target=tgt, delta=0.5, reduction="sum",
                     binary=False)
    fm = c.forward(x, model="simple_nn", loss={"type": "huber", "target": tgt, "delta": 0.5,
                                               "reduction": "sum"})
    check("huber (delta, reduction) agrees with /v1/forward's loss dict",
          close(gm.loss, fm["loss"]) and close(gm.gradients["input"], fm["gradients"]["input"]))
    check("gradients: loss without target is refused before sending",
          _value_error(lambda: c.gradients("simple_nn", x, loss="mse")))
    check("gradients: an unknown loss carries relud's message",
          raises(lambda: c.gradients("simple_nn", x, loss="hinge", target=tgt), 400),
          err_of(lambda: c.gradients("simple_nn", x, loss="hinge", target=tgt)))


def _value_error(fn):
    try:
        fn()
    except ValueError:
        return True
    return False


def test_repository(c, url):
    idx = c.get_model_repository_index()
    states = {m["name"]: m["state"] for m in idx}
    check("get_model_repository_index", states.get("mnist_mlp") == "READY"
          and states.get("simple_nn") == "READY", str(idx))
    model = {"description": "2x then ReLU",
             "layers": [{"type": "linear", "weight": np.array([[2.0]])}, {"type": "relu"}]}
    check("put_model creates", c.put_model("double_relu", model) ==
          {"name": "double_relu", "state": "READY"})
    check("put_model replaces", c.put_model("double_relu", model)["state"] == "READY")
    out = c.forward(np.array([[1.0], [-1.0], [0.25]]), model="double_relu")["output"]
    check("the new model serves", np.array_equal(out, [[2], [0], [0.5]]), str(out))
    check("put_model with a mismatched name: relud's message",
          raises(lambda: c.put_model("double_relu", {"name": "other", "layers": [{"type": "relu"}]}),
                 400, "name: \"other\" does not match the URL's model name \"double_relu\""))
    check("unload_model", c.unload_model("double_relu") ==
          {"name": "double_relu", "state": "UNAVAILABLE"})
    check("is_model_ready after unload is False", c.is_model_ready("double_relu") is False)
    statuses = counting(c)
    e = raises(lambda: c.infer("double_relu", np.ones((1, 1))), 503,
               'model "double_relu" is unloaded')
    check("infer on an unloaded model: 503 with relud's message, no Retry-After, not retried",
          e and e.retry_after is None and statuses == [503], str(statuses))
    c.session.hooks["response"].clear()
    ready = c.get_model_repository_index(ready=True)
    check("get_model_repository_index(ready=True) leaves it out",
          "double_relu" not in {m["name"] for m in ready} and
          "double_relu" in {m["name"] for m in c.get_model_repository_index()})
    check("load_model", c.load_model("double_relu") == {"name": "double_relu", "state": "READY"})
    check("is_model_ready after load", c.is_model_ready("double_relu") is True)
    check("delete_model", c.delete_model("double_relu") ==
          {"name": "double_relu", "state": "DELETED"})
    check("delete_model again: 404 with relud's message",
          raises(lambda: c.delete_model("double_relu"), 404, 'unknown model "double_relu"'))
    check("load_model of a missing file: an error with relud's message",
          raises(lambda: c.load_model("double_relu"), contains="no file") is not None,
          err_of(lambda: c.load_model("double_relu")))


def test_errors(c, url):
    e = raises(lambda: c.forward([1.0, 2.0], [{"type": "leaky_relu", "negative_slop": 0.2}]), 400,
               'layers[0]: unknown field "negative_slop" for leaky_relu (known: type, '
               'negative_slope)')
    check("forward: 400 with relud's exact message", e, err_of(
        lambda: c.forward([1.0, 2.0], [{"type": "leaky_relu", "negative_slop": 0.2}])))
    check("the error names the status and carries the request id",
          e and str(e).startswith("[400] layers[0]") and e.request_id
          and e.response is not None and isinstance(e, Exception))
    check("infer on an unknown model: 404",
          raises(lambda: c.infer("resnet50", np.ones((1, 1))), 404, 'unknown model "resnet50"'))
    check("infer with a wrong input name: 400 naming it",
          raises(lambda: c.infer("simple_nn", {"inputx": np.ones((1, 10))}), 400,
                 contains='unexpected input "inputx"'))
    check("infer with the wrong width: 400",
          raises(lambda: c.infer("simple_nn", np.ones((1, 3), np.float32)), 400,
                 contains="weight is [5, 10] but the input has 3 features"),
          err_of(lambda: c.infer("simple_nn", np.ones((1, 3), np.float32))))
    check("422: a non-finite result names the layer",
          raises(lambda: c.forward([100.0], [{"type": "linear", "weight": [[1e38]]}]), 422,
                 "layers[0] (linear): output has a non-finite value (inf or nan)"))
    check("forward needs layers or model", _value_error(lambda: c.forward([1.0])))
    bare = Client(url)
    check("admin call without a token: 401 with relud's message",
          raises(lambda: bare.load_model("simple_nn"), 401,
                 'Authorization: "Bearer <admin_token>" required'))
    bad = Client(url, admin_token="guess")
    check("admin call with a wrong token: 401",
          raises(lambda: bad.unload_model("simple_nn"), 401, "Authorization: wrong bearer token"))
    check("is_model_ready does not raise for an unknown model",
          bare.is_model_ready("nope") is False)


def test_auth(url):
    k = Client(url, api_key=TOKEN)
    check("api_key goes out as Authorization: Bearer (admin routes accept it)",
          k.load_model("simple_nn")["state"] == "READY")
    wrong = Client(url, api_key="wrong")
    check("a wrong api_key: 401", raises(lambda: wrong.load_model("simple_nn"), 401))
    both = Client(url, api_key="wrong", admin_token=TOKEN)
    check("admin_token takes the admin routes' header, api_key the others",
          both.load_model("simple_nn")["state"] == "READY"
          and both.get_server_metadata()["name"] == "relud")

    # Every request carries the header: a recording server answering {} to everything.
    seen = []

    class H(http.server.BaseHTTPRequestHandler):
        def _any(self):
            n = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(n)
            seen.append((self.command, self.path, self.headers.get("Authorization")))
            body = b'{"models": [], "model_stats": [], "output": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        do_GET = do_POST = do_PUT = do_DELETE = _any

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        rc = Client(f"127.0.0.1:{srv.server_address[1]}", api_key="K", admin_token="A")
        x = np.ones((1, 10), np.float32)
        calls = [rc.is_server_live, rc.is_server_ready, rc.get_server_metadata, rc.get_metrics,
                 lambda: rc.is_model_ready("m"), lambda: rc.get_model_metadata("m"),
                 lambda: rc.get_model_config("m"), lambda: rc.get_inference_statistics("m"),
                 rc.get_inference_statistics, rc.list_models,
                 lambda: rc.infer("m", x), lambda: rc.infer("m", x, binary=False),
                 lambda: rc.gradients("m", x), lambda: rc.forward(x, model="m"),
                 rc.get_model_repository_index]
        for f in calls:
            f()
        admin = [lambda: rc.load_model("m"),
                 lambda: rc.unload_model("m"), lambda: rc.put_model("m", {"layers": []}),
                 lambda: rc.delete_model("m")]
        n_user = len(seen)
        for f in admin:
            f()
        check(f"api_key on every non-admin request ({n_user})",
              n_user == 15 and all(a == "Bearer K" for _, _, a in seen[:n_user]), str(seen))
        check("admin_token on every model-control request",
              len(seen) == n_user + 4 and all(a == "Bearer A" for _, _, a in seen[n_user:]),
              str(seen[n_user:]))
    finally:
        srv.shutdown()
        srv.server_close()


def test_api_keys():
    """The daemon's api_keys_file: the client's api_key on inference, admin_token on control."""
    import subprocess
    helptext = subprocess.run([RELUD, "--help"], capture_output=True, text=True).stdout
    if "--api-keys-file" not in helptext:
        print("# skip: this relud has no --api-keys-file option yet")
        return
    keys = tempfile.NamedTemporaryFile("w", prefix="relud-keys-", delete=False)
    keys.write("# two keys\nk1\nk2\n")
    keys.close()
    d = Daemon("--api-keys-file", keys.name, "--admin-token", TOKEN)
    try:
        anon = Client(d.url)
        check("api keys: health probes answer without a key",
              anon.is_server_live() and anon.is_server_ready())
        check("api keys: no key is a 401 with relud's message",
              raises(anon.get_server_metadata, 401,
                     'Authorization: "Bearer <access key>" required (api_keys_file is set)'),
              err_of(anon.get_server_metadata))
        check("api keys: an unknown key is a 401",
              raises(Client(d.url, api_key="k3").get_server_metadata, 401,
                     "Authorization: unknown access key"))
        x = np.ones((1, 10), np.float32)
        for key in ("k1", "k2"):
            c = Client(d.url, api_key=key)
            check(f"api keys: {key} serves metadata, binary and JSON infer, forward, stats",
                  c.get_server_metadata()["name"] == "relud"
                  and c.infer("simple_nn", x)["output"].shape == (1, 5)
                  and c.infer("simple_nn", x, binary=False)["output"].shape == (1, 5)
                  and c.forward(x, model="simple_nn")["output"].shape == (1, 5)
                  and c.get_inference_statistics("simple_nn")["model_stats"])
        check("api keys: /metrics without a key (metrics_need_key off)",
              "relud_build_info" in anon.get_metrics())
        c = Client(d.url, api_key="k1")
        check("api keys: the key alone is not the admin token (401 on model control)",
              raises(lambda: c.load_model("simple_nn"), 401, "Authorization: wrong bearer token"),
              err_of(lambda: c.load_model("simple_nn")))
        c = Client(d.url, api_key="k1", admin_token=TOKEN)
        check("api keys: with admin_token, model control and inference both pass",
              c.unload_model("simple_nn")["state"] == "UNAVAILABLE"
              and c.load_model("simple_nn")["state"] == "READY"
              and c.infer("simple_nn", x)["output"].shape == (1, 5))
    finally:
        d.stop()
        os.unlink(keys.name)

def test_training(c, url):
    """train / wait_train / get_train_job / list_train_jobs / cancel_train_job: a golden run
    (torch's numbers, tests/golden/train) through the client with numpy tensors, a cancelled
    long job, and the admin token required."""
    g = json.load(open(os.path.join(ROOT, "tests", "golden", "train", "tr_adam_step_clip_f64.json")))
    c.put_model("py_train", g["model"])
    body = dict(g["train"], save_as="py_trained")
    for k in ("input", "target"):
        if isinstance(body[k], dict):
            body[k] = np.asarray(body[k]["data"], np.float64).reshape(body[k]["shape"])
    check("train: the body's numpy tensors go out as {shape, data}: 202 queued",
          c.train("py_train", body)["state"] in ("queued", "running"))
    jid = c.list_train_jobs()[-1]["id"]
    job = c.wait_train(jid, timeout=60)
    want = g["expected"]["steps"]
    tol = g["tolerance"]
    check("wait_train: done, one history entry per step, losses and lrs as torch's",
          job["state"] == "done" and len(job["history"]) == len(want)
          and close([h["loss"] for h in job["history"]], [w["loss"] for w in want],
                    tol["rtol"], tol["atol"])
          and [h["lr"] for h in job["history"]] == [w["lr"] for w in want],
          json.dumps(job)[:300])
    check("the trained copy is served under save_as",
          c.get_model_metadata("py_trained")["name"] == "py_trained")
    long_job = json.load(open(os.path.join(ROOT, "docs", "examples", "train", "long_job.json")))
    jid = c.train("mnist_mlp", dict(long_job, save_as="py_long"))["id"]
    c.cancel_train_job(jid)
    job = c.wait_train(jid, timeout=60)
    check("cancel_train_job: the job ends cancelled and installs nothing",
          job["state"] == "cancelled" and raises(lambda: c.get_model_metadata("py_long"), 404),
          job["state"])
    check("get_train_job of an unknown id: 404 with relud's message",
          raises(lambda: c.get_train_job(999999), 404, contains="unknown training job"))
    check("train without the admin token: 401",
          raises(lambda: Client(url).train("py_train", body), 401))
    check("wait_train's timeout raises TimeoutError",
          isinstance(_timeout_of(lambda: Client(url, admin_token=TOKEN).wait_train(
              c.train("mnist_mlp", dict(long_job, save_as="py_long2"))["id"], timeout=0.3)),
              TimeoutError))
    for j in c.list_train_jobs():
        if j["state"] in ("queued", "running"):
            c.cancel_train_job(j["id"])


def _timeout_of(fn):
    try:
        fn()
    except TimeoutError as e:
        return e
    return None


def test_queue_timeout(c):
    x = np.zeros((1, 784), np.float32)
    c0 = Client(c.url, retries=0)
    e = raises(lambda: c0.infer("mnist_mlp", x, queue_timeout_us=1), 503,
               contains="request timeout expired")
    check("queue_timeout_us=1 (Triton's timeout): the batch queue's 503 with Retry-After",
          e and e.retry_after == 1.0, err_of(lambda: c0.infer("mnist_mlp", x, queue_timeout_us=1)))
    c2 = Client(c.url, retries=2)
    waits = []
    c2._sleep = waits.append
    statuses = counting(c2)
    e = raises(lambda: c2.infer("mnist_mlp", x, queue_timeout_us=1), 503)
    check("a batch refusal is retried: retries=2 makes 3 attempts, waiting Retry-After each",
          e and statuses == [503, 503, 503] and waits == [1.0, 1.0], f"{statuses} {waits}")


def wait_open(d, pred):
    return d.wait_metric("relud_open_connections", pred) is not None


def sockets(d):
    n = 0
    for fd in os.listdir(f"/proc/{d.pid()}/fd"):
        try:
            n += os.readlink(f"/proc/{d.pid()}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return n


def wait_sockets(d, n, timeout=10):
    """Until the daemon holds n sockets: libmicrohttpd closes a connection's socket after
    relud stopped counting it, so every connection closed before is out of the count."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if sockets(d) == n:
            return True
        time.sleep(0.005)
    return False


def test_retries():
    d = Daemon("--connection-limit", "1")
    idle = sockets(d)  # the listening socket(s), no connection yet
    held = None
    try:
        held = socket.create_connection(("127.0.0.1", d.port))
        # the held connection and the scrape's own
        check("a raw connection holds the one slot", wait_open(d, lambda v: v >= 2))

        c = Client(d.url, retries=3)
        waits, released = [], []

        def release(seconds):  # the wait: let the held connection go, as a client finishing
            waits.append(seconds)
            held.close()
            released.append(wait_sockets(d, idle))
        c._sleep = release
        statuses = counting(c)
        meta = c.get_server_metadata()
        check("503 over connection_limit, then retried after Retry-After: 2 attempts",
              meta.get("name") == "relud" and statuses == [503, 200] and waits == [1.0]
              and released == [True], f"{statuses} {waits} {released}")

        held = socket.create_connection(("127.0.0.1", d.port))
        wait_open(d, lambda v: v >= 2)
        c = Client(d.url, retries=2)
        waits = []
        c._sleep = waits.append
        statuses = counting(c)
        x = np.ones((1, 10), np.float32)
        e = raises(lambda: c.infer("simple_nn", x), 503,
                   "overloaded: more connections open than connection_limit (1); retry later")
        check("still refused: retries=2 is 3 attempts, then ReludError with relud's message",
              e and e.retry_after == 1.0 and statuses == [503] * 3 and waits == [1.0, 1.0],
              f"{statuses} {waits} {err_of(lambda: c.infer('simple_nn', x))}")

        c = Client(d.url, retries=0)
        statuses = counting(c)
        check("retries=0: one attempt", raises(c.get_server_metadata, 503) and statuses == [503])

        c = Client(d.url, retries=3, max_retry_after=0.5)
        statuses = counting(c)
        check("a Retry-After over max_retry_after is not waited for",
              raises(c.get_server_metadata, 503) and statuses == [503])

        c = Client(d.url, retries=1)  # the real sleep
        statuses = counting(c)
        t0 = time.monotonic()
        raises(c.get_server_metadata, 503)
        dt = time.monotonic() - t0
        check("the real wait honours Retry-After: 2 attempts at least 1 s apart",
              statuses == [503, 503] and dt >= 1.0, f"{statuses} {dt:.3f} s")

        check("health probes are answered over the limit",
              Client(d.url).is_server_live() is True)
    finally:
        if held:
            held.close()
        d.stop()

    # connection errors: a port nobody listens on
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    c = Client(f"127.0.0.1:{port}", retries=2, retry_connection_errors=True, backoff=0.05)
    waits = []
    c._sleep = waits.append
    e = raises(c.get_server_metadata)
    check("retry_connection_errors: refused connection retried with backoff, then ReludError",
          e and e.status is None and waits == [0.05, 0.1] and "no reply" in e.message,
          f"{waits} {e and e.message}")
    c = Client(f"127.0.0.1:{port}")
    waits = []
    c._sleep = waits.append
    e = raises(c.is_server_live)
    check("without retry_connection_errors: no retry", e and e.status is None and waits == [])


def test_timeout():
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(4)  # the kernel accepts; nobody answers
    try:
        c = Client(f"127.0.0.1:{lst.getsockname()[1]}", timeout=0.3)
        t0 = time.monotonic()
        e = raises(c.get_server_metadata)
        dt = time.monotonic() - t0
        check("timeout: a server that never answers raises ReludError(None) after it",
              e and e.status is None and dt >= 0.3, f"{dt:.3f} s {e and e.message}")
    finally:
        lst.close()


def test_readme(url):
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    sec = re.search(r"^## Python client\n(.*?)(?=^## )", text, re.M | re.S)
    if not check("README has a \"Python client\" section", sec is not None):
        return
    m = re.search(r"```python\n(.*?)```\n```text\n(.*?)```", sec.group(1), re.S)
    if not check("it has a ```python example followed by its ```text output", m is not None):
        return
    code = m.group(1).replace("http://127.0.0.1:8080", url).replace(
        'admin_token="s3cret"', f'admin_token="{TOKEN}"')
    sys.path.insert(0, os.path.join(ROOT, "clients", "python"))
    out = io.StringIO()
    try:
        with redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), {})
        got = out.getvalue()
    except Exception as e:  # noqa: BLE001 - the check reports it
        got = f"raised {type(e).__name__}: {e}"
    want = m.group(2)
    check("the README example prints what the README shows", got.strip() == want.strip(),
          f"\n--- got\n{got}--- want\n{want}")


def main():
    tmp = tempfile.mkdtemp(prefix="relud-pyclient-")
    models = os.path.join(tmp, "models")
    shutil.copytree(os.path.join(ROOT, "config", "models"), models)
    d = Daemon("--admin-token", TOKEN, "--model-dir", models)
    try:
        with Client(d.url, admin_token=TOKEN) as c:
            test_server(c)
            test_models(c)
            test_infer_simple(c)
            test_dtypes(c)
            test_float64_model(c)
            test_mnist(c)
            test_gradients(c)
            test_repository(c, d.url)
            test_errors(c, d.url)
            test_queue_timeout(c)
            test_training(c, d.url)
            test_auth(d.url)
            test_readme(d.url)
    finally:
        d.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    test_api_keys()
    test_retries()
    test_timeout()
    finish()


if __name__ == "__main__":
    main()
