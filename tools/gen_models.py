#!/usr/bin/python3
"""Generate relud's bundled example models and the model-repository test fixtures.

    /usr/bin/python3 tools/gen_models.py        (or: make models)

Deterministic (torch.manual_seed), needs Debian's python3-torch. Writes:
  config/models/simple_nn.json            the guide's nn.Sequential(Linear(10,5), ReLU()),
                                          inline weights
  config/models/mnist_mlp.json            784-128-64-10 ReLU MLP (logits, no softmax) whose
  config/models/mnist_mlp.safetensors     weights are its state_dict, as
                                          safetensors.torch.save_file(model.state_dict()) writes
  tests/golden/models/mnist_mlp_expected.json   3 inputs -> outputs, and cross_entropy loss +
                                          gradients (input and every state_dict parameter)
  tests/golden/models/tiny_expected.json  the same for tests/fixtures/models/tiny
  tests/fixtures/models/*                 one good float64 safetensors model and broken ones
  config/models/simple_nn_onnx.onnx, tests/fixtures/onnx/*, tests/golden/onnx/*
                                          the ONNX models: see tools/gen_onnx.py

The models are untrained (torch's default Linear initialisation under a fixed seed): they
exist to be served and checked numerically, not to classify digits.

The safetensors files are written by hand (no safetensors package on Debian 12) in the
byte layout of the reference implementation (huggingface/safetensors, serialize()):
8-byte little-endian header length N; N bytes of compact JSON (serde_json style, no
spaces) listing tensors sorted by dtype alignment (descending) then name, each
{"dtype", "shape", "data_offsets": [begin, end]} relative to the end of the header, and
"__metadata__" first when present; the header padded with spaces to a multiple of 8;
then the raw little-endian, row-major data in the same order.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "config", "models")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "models")
EXPECTED = os.path.join(ROOT, "tests", "golden", "models")

torch.set_num_threads(1)


# ---------------------------------------------------------------- numbers
def f32(v):
    """Shortest decimal that reads back to the same float32."""
    x = np.float32(v)
    assert np.isfinite(x)
    s = repr(float(np.format_float_scientific(x, unique=True)))
    assert np.float32(float(s)).tobytes() == x.tobytes(), s
    return s


def f64(v):
    s = repr(float(v))
    assert math.isfinite(float(s))
    return s


def fmt(dtype):
    return f32 if dtype == "float32" else f64


def nested(a, f):
    """A numpy array as nested JSON arrays of shortest numbers."""
    if a.ndim == 1:
        return "[" + ", ".join(f(v) for v in a) + "]"
    return "[" + ", ".join(nested(r, f) for r in a) + "]"


def flat(a, f, integer=False):
    a = np.asarray(a)
    data = ",".join(str(int(v)) if integer else f(v) for v in a.reshape(-1))
    return '{"shape": %s, "data": [%s]}' % (json.dumps(list(a.shape)), data)


def jdump(obj):
    """JSON with one top-level key per line, each layer on one line."""
    lines = []
    for k, v in obj.items():
        if k == "layers":
            v = "[\n    " + ",\n    ".join(json.dumps(L) for L in v) + "\n  ]"
        else:
            v = json.dumps(v)
        lines.append("  %s: %s" % (json.dumps(k), v))
    text = "{\n" + ",\n".join(lines) + "\n}\n"
    assert json.loads(text) == obj
    return text


def write(path, text, mode="w"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(text)
    return path


# ---------------------------------------------------------------- safetensors
ST_DTYPE = {np.dtype("float32"): "F32", np.dtype("float64"): "F64"}
# the reference implementation's Dtype order (increasing alignment), for its sort
ST_ORDER = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32",
            "U32", "F32", "F64", "I64", "U64"]


def safetensors_bytes(tensors, metadata=None):
    """tensors: {name: numpy array (float32/float64)} -> file bytes."""
    items = [(name, np.ascontiguousarray(a)) for name, a in tensors.items()]
    items.sort(key=lambda kv: (-ST_ORDER.index(ST_DTYPE[kv[1].dtype]), kv[0].encode()))
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    offset = 0
    blobs = []
    for name, a in items:
        b = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes(order="C")
        header[name] = {"dtype": ST_DTYPE[a.dtype], "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def safetensors_read(buf):
    """Minimal reader with the reference implementation's checks (self-test)."""
    n = struct.unpack("<Q", buf[:8])[0]
    assert 8 + n <= len(buf)
    hdr = json.loads(buf[8:8 + n].decode())
    hdr.pop("__metadata__", None)
    out, end = {}, 0
    for name, info in sorted(hdr.items(), key=lambda kv: kv[1]["data_offsets"]):
        s, e = info["data_offsets"]
        assert s == end and e >= s
        dt = {"F32": "<f4", "F64": "<f8"}[info["dtype"]]
        cnt = int(np.prod(info["shape"])) if info["shape"] else 1
        assert e - s == cnt * np.dtype(dt).itemsize
        out[name] = np.frombuffer(buf[8 + n + s:8 + n + e], dtype=dt).reshape(info["shape"])
        end = e
    assert 8 + n + end == len(buf)
    return out


def state_dict_np(model, dtype):
    return {k: v.detach().numpy().astype(dtype) for k, v in model.state_dict().items()}


# ---------------------------------------------------------------- expectations
def expected_doc(model_name, model, dtype, x, target, desc):
    """Outputs for x; cross_entropy(mean) loss with target, gradients of the input and of
    every parameter (state_dict names). float64 compute on the dtype's values."""
    sd = {k: torch.tensor(v.detach().numpy().astype(dtype).astype(np.float64),
                          dtype=torch.float64, requires_grad=True)
          for k, v in model.state_dict().items()}
    xt = torch.tensor(x.astype(np.float64), dtype=torch.float64, requires_grad=True)
    h = xt
    for i, m in enumerate(model):
        if isinstance(m, nn.Linear):
            h = F.linear(h, sd["%d.weight" % i], sd.get("%d.bias" % i))
        elif isinstance(m, nn.ReLU):
            h = F.relu(h)
        elif isinstance(m, nn.Tanh):
            h = torch.tanh(h)
        else:
            raise TypeError(m)
    y = h
    loss = F.cross_entropy(y, torch.tensor(target, dtype=torch.int64), reduction="mean")
    loss.backward()
    f = fmt(dtype)
    in_f = max(m.in_features for m in model if isinstance(m, nn.Linear))
    K = max(in_f, x.shape[0] * int(y.shape[-1]))
    base = (1e-5, 1e-4) if dtype == "float32" else (1e-12, 1e-10)
    atol = float("%.2g" % (base[0] * max(1.0, math.sqrt(K) / 4.0)))
    lines = [
        '{',
        '  "model": %s,' % json.dumps(model_name),
        '  "description": %s,' % json.dumps(desc),
        '  "dtype": "%s",' % dtype,
        '  "input": %s,' % flat(x, f),
        '  "output": %s,' % flat(y.detach().numpy(), f),
        '  "loss": {"type": "cross_entropy", "reduction": "mean", "target": %s},'
        % flat(np.array(target), f, integer=True),
        '  "expected_loss": %s,' % f(loss.item()),
        '  "grad_input": %s,' % flat(xt.grad.numpy(), f),
        '  "grad_params": {',
        ",\n".join('    %s: %s' % (json.dumps(k), flat(v.grad.numpy(), f)) for k, v in sd.items()),
        '  },',
        '  "tolerance": {"rtol": %r, "atol": %r, "max_reduction": %d, '
        '"rule": "elementwise |actual - expected| <= atol + rtol * |expected|"},' % (
            base[1], atol, K),
        '  "note": "output = model(input); expected_loss = cross_entropy(output, target.long(), '
        'reduction=mean); grad_input and grad_params (state_dict names; OIP outputs '
        'grad:input, grad:<name>) are from expected_loss.backward(). Computed by float64 torch '
        'on the %s values, rounded to %s."' % (dtype, dtype),
        '}',
    ]
    return "\n".join(lines) + "\n"


def mnist_like_inputs(rng, n):
    """n 28x28 images: zero border, a few thick strokes, values with 2 decimals in (0, 1]."""
    imgs = np.zeros((n, 28, 28))
    for k in range(n):
        for _ in range(3):
            r0, c0 = rng.integers(6, 22, size=2)
            dr, dc = rng.integers(-1, 2, size=2)
            if dr == 0 and dc == 0:
                dr = 1
            for t in range(int(rng.integers(5, 10))):
                r, c = r0 + dr * t, c0 + dc * t
                if 4 <= r < 24 and 4 <= c < 24:
                    imgs[k, r, c] = max(imgs[k, r, c], rng.uniform(0.5, 1.0))
                    if c + 1 < 24:
                        imgs[k, r, c + 1] = max(imgs[k, r, c + 1], rng.uniform(0.1, 0.6))
    imgs = np.round(imgs, 2)
    return imgs.reshape(n, 784).astype(np.float32)


# ---------------------------------------------------------------- models
def gen_simple_nn():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 5), nn.ReLU())
    w = model[0].weight.detach().numpy().astype(np.float32)
    b = model[0].bias.detach().numpy().astype(np.float32)
    text = (
        '{\n'
        '  "name": "simple_nn",\n'
        '  "description": "The guide\'s SimpleNN: nn.Sequential(nn.Linear(10, 5), nn.ReLU()), '
        'torch.manual_seed(0) initialisation (untrained), inline weights.",\n'
        '  "dtype": "float32",\n'
        '  "layers": [\n'
        '    {"type": "linear",\n'
        '     "weight": [\n       %s\n     ],\n'
        '     "bias": %s},\n'
        '    {"type": "relu"}\n'
        '  ]\n'
        '}\n') % (",\n       ".join(nested(r, f32) for r in w), nested(b, f32))
    json.loads(text)
    return [write(os.path.join(MODELS, "simple_nn.json"), text)]


def gen_mnist():
    torch.manual_seed(784)
    model = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(),
                          nn.Linear(64, 10))
    sd = state_dict_np(model, np.float32)
    st = safetensors_bytes(sd)
    back = safetensors_read(st)
    assert all(np.array_equal(back[k], sd[k]) for k in sd)
    text = jdump({
        "name": "mnist_mlp",
        "description": "MNIST-shaped MLP: nn.Sequential(Linear(784, 128), ReLU(), "
                       "Linear(128, 64), ReLU(), Linear(64, 10)); outputs logits (no "
                       "softmax). Input [N, 784] (28x28 pixels in [0, 1], row-major). "
                       "Weights: its state_dict in mnist_mlp.safetensors, torch.manual_seed(784) "
                       "initialisation (untrained).",
        "dtype": "float32",
        "weights": "mnist_mlp.safetensors",
        "layers": [{"type": "linear"}, {"type": "relu"}, {"type": "linear"},
                   {"type": "relu"}, {"type": "linear"}],
        # dynamic batching, Triton's settings (docs/batching.md)
        "max_batch_size": 64,
        "dynamic_batching": {"max_queue_delay_microseconds": 500, "preferred_batch_size": [64]},
    })
    files = [write(os.path.join(MODELS, "mnist_mlp.json"), text),
             write(os.path.join(MODELS, "mnist_mlp.safetensors"), st, "wb")]
    x = mnist_like_inputs(np.random.default_rng(784), 3)
    files.append(write(os.path.join(EXPECTED, "mnist_mlp_expected.json"),
                       expected_doc("mnist_mlp", model, "float32", x, [7, 2, 1],
                                    "config/models/mnist_mlp on 3 MNIST-like inputs (zero "
                                    "border, sparse strokes, 2-decimal pixels).")))
    return files


def gen_fixtures():
    files = []
    j = lambda name, obj: files.append(write(os.path.join(FIXTURES, name),
                                             jdump(obj)))

    # good: Linear(4, 3) + Tanh, float64 weights in safetensors
    torch.manual_seed(4)
    tiny = nn.Sequential(nn.Linear(4, 3, dtype=torch.float64), nn.Tanh())
    sd = state_dict_np(tiny, np.float64)
    st = safetensors_bytes(sd)
    assert all(np.array_equal(safetensors_read(st)[k], sd[k]) for k in sd)
    files.append(write(os.path.join(FIXTURES, "tiny.safetensors"), st, "wb"))
    j("tiny.json", {"name": "tiny",
                    "description": "good: Linear(4, 3) + Tanh, float64 weights from "
                                   "tiny.safetensors (F64).",
                    "dtype": "float64", "weights": "tiny.safetensors",
                    "layers": [{"type": "linear"}, {"type": "tanh"}]})
    x = np.array([[0.5, -1.0, 2.0, 0.0], [-0.25, 0.75, -1.5, 3.0]])
    files.append(write(os.path.join(EXPECTED, "tiny_expected.json"),
                       expected_doc("tiny", tiny, "float64", x, [2, 0],
                                    "tests/fixtures/models/tiny on 2 inputs.")))

    # broken: JSON syntax error (missing comma, unterminated array)
    files.append(write(os.path.join(FIXTURES, "bad_json.json"),
                       '{\n  "name": "bad_json"\n  "dtype": "float32",\n'
                       '  "layers": [{"type": "relu"}\n}\n'))

    # broken: the second linear's weight is [2, 5] but the first gives 3 features
    torch.manual_seed(5)
    w0 = np.round(np.random.default_rng(5).uniform(-0.5, 0.5, (3, 4)), 3)
    w2 = np.round(np.random.default_rng(6).uniform(-0.5, 0.5, (2, 5)), 3)
    j("bad_shape.json", {"name": "bad_shape",
                         "description": "broken: layers[2] (linear) weight is [2, 5] but "
                                        "layers[0] gives 3 features.",
                         "dtype": "float32",
                         "layers": [{"type": "linear", "weight": w0.tolist(),
                                     "bias": [0.1, -0.2, 0.3]},
                                    {"type": "relu"},
                                    {"type": "linear", "weight": w2.tolist(),
                                     "bias": [0.0, 0.5]}]})

    # broken: references a safetensors file that does not exist
    j("missing_weights.json", {"name": "missing_weights",
                               "description": "broken: weights file does not exist.",
                               "dtype": "float32",
                               "weights": "missing_weights.safetensors",
                               "layers": [{"type": "linear"}, {"type": "relu"}]})

    # broken: file cut short, the last data_offsets point past the end
    torch.manual_seed(6)
    m = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    st = safetensors_bytes(state_dict_np(m, np.float32))
    files.append(write(os.path.join(FIXTURES, "truncated.safetensors"), st[:-20], "wb"))
    j("truncated.json", {"name": "truncated",
                         "description": "broken: truncated.safetensors is 20 bytes shorter "
                                        "than its header's data_offsets say.",
                         "dtype": "float32", "weights": "truncated.safetensors",
                         "layers": [{"type": "linear"}, {"type": "relu"}]})

    # broken: header length larger than the whole file
    st = safetensors_bytes(state_dict_np(m, np.float32))
    bad = struct.pack("<Q", len(st) + 1000) + st[8:]
    files.append(write(os.path.join(FIXTURES, "bad_header.safetensors"), bad, "wb"))
    j("bad_header.json", {"name": "bad_header",
                          "description": "broken: bad_header.safetensors declares a header "
                                         "length larger than the file.",
                          "dtype": "float32", "weights": "bad_header.safetensors",
                          "layers": [{"type": "linear"}, {"type": "relu"}]})
    return files


def main():
    files = gen_simple_nn() + gen_mnist() + gen_fixtures()
    import gen_onnx  # the ONNX models and fixtures (tools/gen_onnx.py, needs python3-onnx)
    files += gen_onnx.main()
    for p in files:
        print("%8d  %s" % (os.path.getsize(p), os.path.relpath(p, ROOT)))


if __name__ == "__main__":
    sys.exit(main())
