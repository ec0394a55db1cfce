#!/usr/bin/python3
"""relud's ONNX models and their expectations (called by tools/gen_models.py; or alone:
/usr/bin/python3 tools/gen_onnx.py). Needs Debian's python3-torch and python3-onnx.

Writes:
  config/models/simple_nn_onnx.onnx        the guide's SimpleNN (fc = Linear(10, 5), ReLU),
                                           torch.onnx.export at opset 13, input "x", output "y"
  tests/fixtures/onnx/NAME.onnx            nn.Sequential models covering every op relud maps,
                                           exported at opsets 11, 13 and 17 (9 for the
                                           attribute forms), a few built with onnx.helper
                                           (Gelu at opset 20, Gemm's alpha/beta/transB = 0,
                                           float16, external data), and broken files
  tests/golden/onnx/NAME.json              per good model: an input, the output, an mse loss
                                           against a target and the gradients of the input and
                                           of every initializer, by its name

The expectations are computed by evaluating each ONNX graph op by op with torch in float64
(initializers as leaf tensors, so the gradients are by initializer, in its own shape); for
exported models that output is first checked against the torch module's own. Every file
written is checked with onnx.checker, except the opset-20 one (Debian 12's onnx 1.12 knows
opsets up to 17) and the deliberately broken ones.
"""
import json
import os
import zlib

import numpy as np
import onnx
import onnx.numpy_helper
from onnx import TensorProto, helper
import torch
from torch import nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "config", "models")
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "onnx")
EXPECTED = os.path.join(ROOT, "tests", "golden", "onnx")

torch.set_num_threads(1)


def f32(v):
    x = np.float32(v)
    s = repr(float(np.format_float_scientific(x, unique=True)))
    assert np.float32(float(s)).tobytes() == x.tobytes(), s
    return s


def f64(v):
    return repr(float(v))


def flat(a, f):
    a = np.asarray(a)
    return '{"shape": %s, "data": [%s]}' % (json.dumps(list(a.shape)),
                                             ", ".join(f(v) for v in a.reshape(-1)))


def write(path, data, mode="wb"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as fh:
        fh.write(data)
    return path


# ---------------------------------------------------------------- the reference evaluator
def evaluate(model, x):
    """Runs an ONNX model on x with torch ops in float64: (output, {initializer: leaf})."""
    g = model.graph
    opset = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")][0]
    env, leaves = {}, {}
    for t in g.initializer:
        a = onnx.numpy_helper.to_array(t)
        if a.dtype.kind == "f":
            leaves[t.name] = torch.tensor(a.astype(np.float64), requires_grad=True)
            env[t.name] = leaves[t.name]
        else:
            env[t.name] = torch.tensor(a)
    inp = [i.name for i in g.input if i.name not in env][0]
    env[inp] = x

    def attrs(n):
        return {a.name: helper.get_attribute_value(a) for a in n.attribute}

    for n in g.node:
        a = attrs(n)
        i = [env[k] if k else None for k in n.input]
        op = n.op_type
        if op == "Constant":
            v = onnx.numpy_helper.to_array(a["value"])
            y = torch.tensor(v.astype(np.float64) if v.dtype.kind == "f" else v)
        elif op == "Gemm":
            A = i[0].T if a.get("transA", 0) else i[0]
            B = i[1].T if a.get("transB", 0) else i[1]
            y = a.get("alpha", 1.0) * A @ B
            if len(i) > 2 and i[2] is not None:
                y = y + a.get("beta", 1.0) * i[2]
        elif op == "MatMul":
            y = i[0] @ i[1]
        elif op in ("Add", "Mul", "Div", "Pow"):
            y = {"Add": torch.add, "Mul": torch.mul, "Div": torch.div, "Pow": torch.pow}[op](i[0], i[1])
        elif op == "Relu":
            y = F.relu(i[0])
        elif op == "LeakyRelu":
            y = F.leaky_relu(i[0], a.get("alpha", 0.01))
        elif op == "PRelu":
            y = torch.where(i[0] > 0, i[0], i[0] * i[1])
        elif op == "Elu":
            y = F.elu(i[0], a.get("alpha", 1.0))
        elif op == "Celu":
            y = F.celu(i[0], a.get("alpha", 1.0))
        elif op == "Selu":
            y = F.selu(i[0])
        elif op == "Gelu":
            y = F.gelu(i[0], approximate=a.get("approximate", b"none").decode())
        elif op == "Erf":
            y = torch.erf(i[0])
        elif op == "Sigmoid":
            y = torch.sigmoid(i[0])
        elif op == "Tanh":
            y = torch.tanh(i[0])
        elif op == "Softplus":
            y = F.softplus(i[0], beta=1, threshold=1e30)  # ONNX has no threshold
        elif op == "Clip":
            lo, hi = (a.get("min"), a.get("max")) if opset < 11 else (
                float(i[1]) if len(i) > 1 and i[1] is not None else None,
                float(i[2]) if len(i) > 2 and i[2] is not None else None)
            y = torch.clamp(i[0], lo, hi)
        elif op in ("Softmax", "LogSoftmax"):
            fn = torch.softmax if op == "Softmax" else torch.log_softmax
            axis = a.get("axis", 1 if opset < 13 else -1)
            if opset < 13:
                shp = i[0].shape
                ax = axis % len(shp)
                y = fn(i[0].reshape(int(np.prod(shp[:ax])), -1), 1).reshape(shp)
            else:
                y = fn(i[0], axis)
        elif op == "Flatten":
            ax = a.get("axis", 1) % (i[0].dim() + 1)
            y = i[0].reshape(int(np.prod(i[0].shape[:ax])), -1)
        elif op == "Reshape":
            shp = [int(v) for v in i[1]]
            shp = [i[0].shape[k] if v == 0 else v for k, v in enumerate(shp)]
            y = i[0].reshape(shp)
        elif op in ("Identity", "Dropout"):
            y = i[0]
        elif op == "Shape":
            y = torch.tensor(list(i[0].shape), dtype=torch.int64)
        elif op == "Gather":
            y = i[0][int(i[1])]
        elif op == "Unsqueeze":
            y = i[0].reshape(1)
        elif op == "Concat":
            y = torch.cat([t.reshape(-1) for t in i])
        else:
            raise TypeError(op)
        env[n.output[0]] = y
    return env[g.output[0].name], leaves


# ---------------------------------------------------------------- exports
def export(module, x, path, opset, in_name="x", out_name="y", dynamic=True):
    module = module.eval()
    torch.onnx.export(module, x, path, opset_version=opset, input_names=[in_name],
                      output_names=[out_name],
                      dynamic_axes={in_name: {0: "N"}, out_name: {0: "N"}} if dynamic else None)
    m = onnx.load(path)
    onnx.checker.check_model(m)
    return m


def expectation(name, model, x, desc, seed):
    """The case file: output, mse loss against a target, gradients by initializer."""
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    y, leaves = evaluate(model, xt)
    rng = np.random.default_rng(seed)
    target = np.round(rng.uniform(-1, 1, size=tuple(y.shape)), 2)
    loss = F.mse_loss(y, torch.tensor(target), reduction="mean")
    loss.backward()
    g = model.graph
    elem = g.input[[i.name for i in g.input].index(next(
        i.name for i in g.input if i.name not in leaves))].type.tensor_type.elem_type
    dtype = "float64" if elem == TensorProto.DOUBLE else "float32"
    f = f64 if dtype == "float64" else f32

    def meta_shape(vi):
        return [d.dim_value if d.HasField("dim_value") else -1
                for d in vi.type.tensor_type.shape.dim]

    inp = next(i for i in g.input if i.name not in leaves)
    tol = (1e-10, 1e-12) if dtype == "float64" else (1e-4, 2e-5)
    if any(t.data_type in (TensorProto.FLOAT16, TensorProto.BFLOAT16) for t in g.initializer):
        tol = (1e-4, 2e-5)  # float16 weights are exact in float32: same tolerance
    doc = [
        "{",
        '  "model": %s,' % json.dumps(name),
        '  "description": %s,' % json.dumps(desc),
        '  "opset": %d,' % [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")][0],
        '  "dtype": "%s",' % dtype,
        '  "input_name": %s,' % json.dumps(inp.name),
        '  "output_name": %s,' % json.dumps(g.output[0].name),
        '  "input_meta": %s,' % json.dumps(meta_shape(inp)),
        '  "output_meta": %s,' % json.dumps(meta_shape(g.output[0])),
        '  "input": %s,' % flat(x, f),
        '  "output": %s,' % flat(y.detach().numpy(), f),
        '  "target": %s,' % flat(target, f),
        '  "loss": "mse",',
        '  "expected_loss": %s,' % f(loss.item()),
        '  "grad_input": %s,' % flat(xt.grad.numpy(), f),
        '  "grad_params": {',
        ",\n".join("    %s: %s" % (json.dumps(k), flat(v.grad.numpy(), f))
                   for k, v in leaves.items() if v.grad is not None),
        "  },",
        '  "tolerance": {"rtol": %r, "atol": %r},' % tol,
        '  "note": "the ONNX graph evaluated op by op by float64 torch (initializers as leaves); '
        'loss = mse_loss(output, target), gradients from loss.backward()"',
        "}",
    ]
    text = "\n".join(doc) + "\n"
    json.loads(text)
    return write(os.path.join(EXPECTED, name + ".json"), text, "w")


def good(name, module, x, opset, desc, in_name="x", dynamic=True):
    path = os.path.join(FIXTURES, name + ".onnx")
    m = export(module, torch.tensor(x), path, opset, in_name=in_name, dynamic=dynamic)
    with torch.no_grad():
        ref = module(torch.tensor(x)).double().numpy()
    got, _ = evaluate(m, torch.tensor(x.astype(np.float64)))
    assert np.allclose(got.detach().numpy(), ref, rtol=1e-4, atol=1e-5), name
    return [path, expectation(name, m, x, desc, zlib.crc32(name.encode()) % 1000)]


class View(nn.Module):
    def forward(self, x):
        return x.view(x.size(0), -1)


class Reshape12(nn.Module):
    def forward(self, x):
        return x.reshape(-1, 12)


class SimpleNN(nn.Module):
    """The guide's SimpleNN."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(10, 5)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.fc(x))


def sequentials():
    """(name, module factory, input, opsets, description)."""
    rng = np.random.default_rng(2024)
    x6 = rng.uniform(-2, 2, size=(3, 6)).astype(np.float32)
    x23 = rng.uniform(-2, 2, size=(3, 2, 3)).astype(np.float32)
    x54 = rng.uniform(-2, 2, size=(3, 5, 4)).astype(np.float32)
    x134 = rng.uniform(-2, 2, size=(3, 1, 3, 4)).astype(np.float32)

    def seed(s, f):
        def make():
            torch.manual_seed(s)
            return f()
        return make

    return [
        ("mlp_a", seed(1, lambda: nn.Sequential(
            nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.LeakyReLU(0.2), nn.Linear(8, 8),
            nn.ELU(0.5), nn.Linear(8, 8), nn.SELU(), nn.Linear(8, 4), nn.Tanh())), x6,
         (11, 13, 17), "Gemm, Relu, LeakyRelu(0.2), Elu(0.5), Selu, Tanh"),
        ("mlp_b", seed(2, lambda: nn.Sequential(
            nn.Linear(6, 8), nn.Sigmoid(), nn.Linear(8, 8), nn.Softplus(beta=2.0), nn.Linear(8, 8),
            nn.Softplus(), nn.Linear(8, 8), nn.ReLU6(), nn.Linear(8, 8), nn.Hardtanh(-0.5, 2.0),
            nn.Linear(8, 5), nn.Softmax(dim=-1))), x6,
         (11, 13, 17), "Sigmoid, Softplus(beta=2) (Mul-Softplus-Div), Softplus, Clip(0, 6) "
                       "(ReLU6), Clip(-0.5, 2) (Hardtanh), Softmax"),
        ("mlp_c", seed(3, lambda: nn.Sequential(
            nn.Linear(6, 8), nn.GELU(), nn.Linear(8, 8), nn.GELU(approximate="tanh"),
            nn.Linear(8, 8), nn.SiLU(), nn.Linear(8, 8), nn.PReLU(8, 0.3), nn.Linear(8, 8),
            nn.PReLU(), nn.Linear(8, 5), nn.LogSoftmax(dim=1))), x6,
         (11, 13, 17), "torch's GELU erf and tanh subgraphs, SiLU subgraph, PRelu per channel "
                       "and single, LogSoftmax"),
        ("mlp_d", seed(4, lambda: nn.Sequential(
            nn.Flatten(), nn.Linear(6, 8), nn.CELU(0.7), nn.Dropout(0.3), nn.Identity(),
            nn.Linear(8, 3, bias=False))), x23,
         (13, 17), "Flatten of a [N, 2, 3] input, Celu(0.7), Dropout, Identity, MatMul without "
                   "bias"),
        ("seq3d", seed(5, lambda: nn.Sequential(
            nn.Linear(4, 6), nn.PReLU(5), nn.Linear(6, 3, bias=False), nn.Softmax(dim=-1))), x54,
         (11, 13, 17), "[N, 5, 4] input: MatMul+Add, PRelu over dim 1 (slope [5, 1]), MatMul, "
                       "Softmax over the last dim"),
        ("flat4d", seed(6, lambda: nn.Sequential(
            nn.ReLU(), nn.Flatten(), nn.Linear(12, 4), nn.Tanh())), x134,
         (11, 13, 17), "Relu then Flatten of a [N, 1, 3, 4] input, Gemm"),
        ("view", seed(7, lambda: nn.Sequential(View(), nn.Linear(12, 3))), x134,
         (11, 13, 17), "x.view(x.size(0), -1) (Shape-Gather-Unsqueeze-Concat-Reshape), Gemm"),
        ("reshape", seed(8, lambda: nn.Sequential(Reshape12(), nn.Linear(12, 3))), x134,
         (13,), "x.reshape(-1, 12) (Reshape by a Constant), Gemm"),
        ("mlp_o9", seed(9, lambda: nn.Sequential(
            nn.Linear(6, 8), nn.ReLU6(), nn.Linear(8, 8), nn.Hardtanh(-1.0, 2.0), nn.Dropout(0.5),
            nn.Linear(8, 4), nn.Softmax(dim=1))), x6,
         (9,), "opset 9: Clip's min/max as attributes, Softmax's 2-D coercion"),
    ]


def handmade(rng):
    """Graphs torch 1.13 does not write, built with onnx.helper."""
    files = []
    x = rng.uniform(-2, 2, size=(3, 4)).astype(np.float32)

    def init(name, a, dt=TensorProto.FLOAT):
        return onnx.numpy_helper.from_array(a.astype(
            {TensorProto.FLOAT: np.float32, TensorProto.DOUBLE: np.float64,
             TensorProto.FLOAT16: np.float16}[dt]), name)

    def vi(name, elem, shape):
        return helper.make_tensor_value_info(name, elem, shape)

    w1 = np.round(rng.uniform(-1, 1, (4, 5)), 3)  # [in, out]: transB = 0
    c1 = np.round(rng.uniform(-1, 1, (5,)), 3)
    w2 = np.round(rng.uniform(-1, 1, (3, 5)), 3)
    # Gemm alpha/beta, transB = 0, a one-value C broadcast; Gelu (opset 20) both forms
    nodes = [helper.make_node("Gemm", ["x", "W1", "C1"], ["h"], alpha=0.5, beta=2.0),
             helper.make_node("Gelu", ["h"], ["g"]),
             helper.make_node("Gemm", ["g", "W2", "C2"], ["h2"], transB=1, beta=0.25),
             helper.make_node("Gelu", ["h2"], ["y"], approximate="tanh")]
    g = helper.make_graph(nodes, "gemm_gelu20", [vi("x", TensorProto.FLOAT, ["N", 4])],
                          [vi("y", TensorProto.FLOAT, ["N", 3])],
                          [init("W1", w1), init("C1", c1), init("W2", w2),
                           init("C2", np.array([0.5]))])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)], producer_name="relud")
    m.ir_version = 8
    p = os.path.join(FIXTURES, "gemm_gelu_o20.onnx")
    onnx.save(m, p)  # onnx 1.12's checker knows opsets up to 17: not checked
    files += [p, expectation("gemm_gelu_o20", m, x, "Gemm alpha=0.5 beta=2 transB=0, Gelu "
                             "(opset 20) none and tanh, a one-value C broadcast", 20)]

    # float64: Gemm + Tanh, a double graph
    w = np.round(rng.uniform(-1, 1, (3, 4)), 3)
    b = np.round(rng.uniform(-1, 1, (3,)), 3)
    g = helper.make_graph([helper.make_node("Gemm", ["x", "w", "b"], ["h"], transB=1),
                           helper.make_node("Tanh", ["h"], ["y"])], "f64",
                          [vi("x", TensorProto.DOUBLE, ["N", 4])],
                          [vi("y", TensorProto.DOUBLE, ["N", 3])],
                          [init("w", w, TensorProto.DOUBLE), init("b", b, TensorProto.DOUBLE)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="relud")
    m.ir_version = 8
    onnx.checker.check_model(m)
    p = os.path.join(FIXTURES, "f64_o13.onnx")
    onnx.save(m, p)
    files += [p, expectation("f64_o13", m, x.astype(np.float64), "a float64 graph", 21)]

    # float16: the weights in half precision (served as float32)
    g = helper.make_graph([helper.make_node("Gemm", ["x", "w", "b"], ["h"], transB=1),
                           helper.make_node("Relu", ["h"], ["y"])], "f16",
                          [vi("x", TensorProto.FLOAT16, ["N", 4])],
                          [vi("y", TensorProto.FLOAT16, ["N", 3])],
                          [init("w", w, TensorProto.FLOAT16), init("b", b, TensorProto.FLOAT16)])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="relud")
    m.ir_version = 8
    onnx.checker.check_model(m)
    p = os.path.join(FIXTURES, "f16_o13.onnx")
    onnx.save(m, p)
    files += [p, expectation("f16_o13", m, x, "a float16 graph, served as float32", 22)]

    # external data: mlp weights in ext_o13.onnx.data beside it
    torch.manual_seed(10)
    mod = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3)).eval()
    p = os.path.join(FIXTURES, "ext_o13.onnx")
    m = export(mod, torch.tensor(x), p, 13)
    if os.path.exists(p + ".data"):
        os.remove(p + ".data")  # onnx appends to an existing data file
    onnx.save_model(m, p, save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext_o13.onnx.data", size_threshold=0)
    m = onnx.load(p)
    onnx.checker.check_model(p)
    files += [p, os.path.join(FIXTURES, "ext_o13.onnx.data"),
              expectation("ext_o13", m, x, "weights in an external data file", 23)]
    return files


def broken(rng):
    """Files relud must refuse, each with its message (tests/http/test_onnx.c)."""
    files = []

    def save(name, m):
        p = os.path.join(FIXTURES, name + ".onnx")
        onnx.save(m, p)
        files.append(p)

    def vi(name, shape, elem=TensorProto.FLOAT):
        return helper.make_tensor_value_info(name, elem, shape)

    def model(nodes, inits=(), ins=None, outs=None, opset=13):
        g = helper.make_graph(nodes, "g", ins or [vi("x", ["N", 4])], outs or [vi("y", ["N", 4])],
                              list(inits))
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = 8
        return m

    torch.manual_seed(11)
    p = os.path.join(FIXTURES, "bad_conv.onnx")
    export(nn.Sequential(nn.Conv1d(2, 2, 3), nn.Flatten(), nn.Linear(4, 2)),
           torch.randn(1, 2, 4), p, 13)
    files.append(p)
    p = os.path.join(FIXTURES, "bad_hardsigmoid.onnx")
    export(nn.Sequential(nn.Linear(4, 4), nn.Hardsigmoid()), torch.randn(1, 4), p, 13)
    files.append(p)
    save("bad_cycle", model([helper.make_node("Relu", ["b"], ["a"]),
                             helper.make_node("Relu", ["a"], ["b"]),
                             helper.make_node("Relu", ["x"], ["y"])]))
    save("bad_dangling", model([helper.make_node("Add", ["x", "nowhere"], ["y"])]))
    save("bad_opset8", model([helper.make_node("Relu", ["x"], ["y"])], opset=8))
    w = onnx.numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    w.raw_data = w.raw_data[:40]
    save("bad_rawlen", model([helper.make_node("Gemm", ["x", "w"], ["y"])], [w]))
    huge = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[1 << 40, 1 << 40],
                       raw_data=b"\0" * 16)
    save("bad_hugedims", model([helper.make_node("Gemm", ["x", "w"], ["y"])], [huge]))
    ext = onnx.numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    ext.ClearField("raw_data")
    ext.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "../../etc/passwd"), ("offset", "0"), ("length", "64")):
        e = ext.external_data.add()
        e.key, e.value = k, v
    save("bad_ext_escape", model([helper.make_node("Gemm", ["x", "w"], ["y"])], [ext]))
    two = helper.make_graph([helper.make_node("Add", ["x", "z"], ["y"])], "g",
                            [vi("x", ["N", 4]), vi("z", ["N", 4])], [vi("y", ["N", 4])])
    m = helper.make_model(two, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    save("bad_two_inputs", m)
    # GELU-like, but Div by 2 instead of sqrt(2)
    c = lambda n, v: helper.make_node("Constant", [], [n], value=helper.make_tensor(
        n, TensorProto.FLOAT, [], [v]))
    save("bad_gelu_like", model([
        c("k2", 2.0), c("k1", 1.0), c("kh", 0.5),
        helper.make_node("Div", ["x", "k2"], ["d"]), helper.make_node("Erf", ["d"], ["e"]),
        helper.make_node("Add", ["e", "k1"], ["a"]), helper.make_node("Mul", ["x", "a"], ["m"]),
        helper.make_node("Mul", ["m", "kh"], ["y"])]))
    shp = onnx.numpy_helper.from_array(np.array([-1, 2], np.int64), "shp")
    save("bad_reshape", model([helper.make_node("Reshape", ["x", "shp"], ["y"])], [shp],
                              outs=[vi("y", ["M", 2])]))
    # truncated: a good model cut in half
    good_bytes = open(os.path.join(FIXTURES, "mlp_a_o13.onnx"), "rb").read()
    files.append(write(os.path.join(FIXTURES, "bad_truncated.onnx"),
                       good_bytes[:len(good_bytes) // 2]))
    return files


def main():
    rng = np.random.default_rng(12)
    files = []
    os.makedirs(FIXTURES, exist_ok=True)
    for name, make, x, opsets, desc in sequentials():
        for op in opsets:
            files += good("%s_o%d" % (name, op), make(), x, op, desc)
    # the guide's SimpleNN, bundled
    torch.manual_seed(0)
    sn = SimpleNN().eval()
    p = os.path.join(MODELS, "simple_nn_onnx.onnx")
    export(sn, torch.randn(1, 10), p, 13)
    files.append(p)
    x = np.arange(1, 11, dtype=np.float32).reshape(1, 10)
    m = onnx.load(p)
    assert np.allclose(evaluate(m, torch.tensor(x.astype(np.float64)))[0].detach().numpy(),
                       sn(torch.tensor(x)).detach().numpy(), rtol=1e-5, atol=1e-6)
    files.append(expectation("simple_nn_onnx", m, x, "the guide's SimpleNN (config/models)", 1))
    files += handmade(rng)
    files += broken(rng)
    return files


if __name__ == "__main__":
    for path in main():
        print("%8d  %s" % (os.path.getsize(path), os.path.relpath(path, ROOT)))
