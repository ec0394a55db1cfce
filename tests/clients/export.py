"""tools/relud-export against torch and a real relud.

Modules covering every layer relud has (every row of core/nn.h's NN_LAYER_TABLE, with
non-default parameters), nested nn.Sequential, a module with its own forward calling torch
functions, a pickled module, a TorchScript file, file.py:make_model() and package.module:attr
with --state-dict, float32, float64 and --dtype: each exported into one folder, served by a
real relud (strict_models), and its outputs and gradients from /v1/forward ("gradients":
true) and OIP infer (grad_output) compared with torch's forward and backward, as
torch.allclose with rtol 1e-5 and atol 1e-6 (float32; float64: 1e-10 and 1e-12). The files
themselves: layer types and parameters, safetensors keys in relud's layer indices with the
parameters' exact bytes. Then the refusals, each with its message naming the submodule and
nothing written: Conv2d, BatchNorm, activations relud has no layer for (torch's and custom),
a skip connection, a branch, parameters used directly, two inputs, control flow, dropout in
training, Flatten(0), mismatched shapes, float16 without --dtype, a state_dict file, a
TorchScript custom module, a bad name. Needs Debian's python3-torch.
"""
import contextlib
import importlib.machinery
import importlib.util
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from collections import OrderedDict

import numpy as np
import requests

from common import ROOT, Daemon, check, finish

try:
    import torch
    from torch import nn
    import torch.nn.functional as F
except ImportError:
    print("FAIL - python3-torch is not installed (apt-get install python3-torch)")
    print("0 passed, 1 failed")
    sys.exit(1)

torch.set_num_threads(1)
TOOL = os.path.join(ROOT, "tools", "relud-export")
PY = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
_loader = importlib.machinery.SourceFileLoader("relud_export", TOOL)
rx = importlib.util.module_from_spec(importlib.util.spec_from_loader("relud_export", _loader))
_loader.exec_module(rx)

TOL = {"float32": (1e-5, 1e-6), "float64": (1e-10, 1e-12)}


def close(actual, expected, dtype):
    """torch.allclose's rule; the detail names the worst element."""
    rtol, atol = TOL[dtype]
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        return False, f"shape {list(a.shape)} vs {list(e.shape)}"
    over = np.abs(a - e) - (atol + rtol * np.abs(e))
    if over.size == 0 or over.max() <= 0:
        return True, ""
    i = np.unravel_index(np.argmax(over), over.shape)
    return False, f"at {list(i)}: {a[i]!r} vs torch {e[i]!r}"


def st_read(path):
    """The tensors of a safetensors file (the reference layout's checks)."""
    buf = open(path, "rb").read()
    n = struct.unpack("<Q", buf[:8])[0]
    hdr = json.loads(buf[8:8 + n])
    meta = hdr.pop("__metadata__", None)
    out, end = {}, 0
    for name, info in sorted(hdr.items(), key=lambda kv: kv[1]["data_offsets"]):
        s, e = info["data_offsets"]
        assert s == end, "contiguous"
        dt = {"F32": "<f4", "F64": "<f8"}[info["dtype"]]
        out[name] = np.frombuffer(buf[8 + n + s:8 + n + e], dtype=dt).reshape(info["shape"])
        end = e
    assert 8 + n + end == len(buf) and n % 8 == 0
    return out, meta


# ---------------------------------------------------------------- the tool's table vs relud's
def layer_table():
    """NN_LAYER_TABLE's rows from core/nn.h: (name, Torch, scalar params, weight, bias)."""
    text = open(os.path.join(ROOT, "core", "nn.h")).read()
    body = text[text.index("#define NN_LAYER_TABLE(M, X)"):]
    body = body[:body.index("\n\n")].replace("\\\n", " ")
    rows = []
    for m in re.finditer(r"M\(X,\s*(\w+),\s*(\w+),\s*(\w+),\s*\w+,\s*\w+,\s*\(([^()]*(?:\([^()]*\)[^()]*)*)\)\)",
                         body):
        params = re.findall(r"NN_PS_(\w+)\(\"(\w+)\"", m.group(4))
        scal = tuple(n for k, n in params if k in ("REAL", "DIM", "APPROX"))
        rows.append((m.group(2), m.group(3), scal, any(k == "WEIGHT" for k, _ in params),
                     any(k == "BIAS" for k, _ in params)))
    return rows


table = layer_table()
check(f"core/nn.h: NN_LAYER_TABLE read ({len(table)} rows)", len(table) >= 16)
check("relud-export's LAYERS are NN_LAYER_TABLE's rows: names, torch classes, parameters, "
      "weight and bias", [tuple(r) for r in rx.LAYERS] == table,
      f"\n  tool:  {rx.LAYERS}\n  table: {table}")
check("every torch class in the table is torch.nn's, with the table's parameters as attributes",
      all(hasattr(nn, t) and all(hasattr(getattr(nn, t)(*([4, 4] if t == "Linear" else [])), p)
                                 for p in ps) for _, t, ps, _, _ in table))


# ---------------------------------------------------------------- the modules
def lin(i, o, scale=1.0, bias=True, dtype=torch.float32):
    m = nn.Linear(i, o, bias=bias, dtype=dtype)
    with torch.no_grad():
        m.weight.mul_(scale)
        if bias:
            m.bias.mul_(scale)
    return m


def prelu(c, dtype=torch.float32):
    m = nn.PReLU(c, dtype=dtype)
    with torch.no_grad():
        m.weight.uniform_(0.05, 0.45)
    return m


def chain_a():
    """Every layer with parameters or a kink, nested, with dropped modules."""
    torch.manual_seed(11)
    return nn.Sequential(
        nn.Flatten(),
        lin(6, 8, 1.5), nn.ReLU(),
        lin(8, 8, 1.5), nn.LeakyReLU(0.2),
        nn.Sequential(lin(8, 8, 1.5, bias=False), prelu(8)),
        nn.ELU(alpha=0.7), nn.Dropout(0.3),
        lin(8, 8, 1.5), nn.CELU(alpha=1.3), nn.Identity(),
        nn.SELU(),
        lin(8, 8, 1.5), nn.GELU(approximate="tanh"),
        lin(8, 8, 2.0), nn.Softplus(beta=2.0, threshold=1.5),
        lin(8, 5), nn.LogSoftmax(dim=1))


TYPES_A = ["linear", "relu", "linear", "leaky_relu", "linear", "prelu", "elu", "linear", "celu",
           "selu", "linear", "gelu", "linear", "softplus", "linear", "log_softmax"]


def chain_b():
    """The smooth and the bounded ones; ReLU6 and Hardtanh past both bounds."""
    torch.manual_seed(12)
    return nn.Sequential(
        lin(6, 8, 1.5), nn.GELU(),
        lin(8, 8, 1.5), nn.SiLU(),
        lin(8, 8, 1.5), nn.Sigmoid(),
        lin(8, 8, 3.0), nn.Tanh(),
        lin(8, 8, 3.0), nn.Hardtanh(min_val=-0.5, max_val=0.75),
        nn.Sequential(nn.Sequential(lin(8, 8, 25.0), nn.ReLU6())),
        lin(8, 8, 0.3), nn.PReLU(),
        lin(8, 4), nn.Softmax(dim=1))


TYPES_B = ["linear", "gelu", "linear", "silu", "linear", "sigmoid", "linear", "tanh", "linear",
           "hardtanh", "linear", "relu6", "linear", "prelu", "linear", "softmax"]


class Funcs(nn.Module):
    """Its own forward: submodules and torch functions in a chain (torch.fx path), float64."""

    def __init__(self):
        super().__init__()
        d = torch.float64
        self.fc1 = lin(5, 7, 1.5, dtype=d)
        self.block = nn.Sequential(lin(7, 7, 1.5, dtype=d), prelu(7, dtype=d))
        self.fc2 = lin(7, 6, 2.0, dtype=d)
        self.fc3 = lin(6, 3, dtype=d)

    def forward(self, x):
        x = self.fc1(x)
        x = F.leaky_relu(x, negative_slope=0.1)
        x = self.block(x)
        x = F.softplus(x, beta=0.5, threshold=3.0)
        x = F.dropout(x, 0.2, self.training)
        x = self.fc2(x)
        x = F.hardtanh(x, -2.0, 1.5)
        x = torch.flatten(x, 1)
        x = F.celu(x, alpha=2.0)
        x = self.fc3(x)
        x = x.tanh()
        return torch.log_softmax(x, dim=-1)


def funcs():
    torch.manual_seed(13)
    return Funcs()


TYPES_F = ["linear", "leaky_relu", "linear", "prelu", "softplus", "linear", "hardtanh", "celu",
           "linear", "tanh", "log_softmax"]


def small(seed, dtype=torch.float32):
    torch.manual_seed(seed)
    return nn.Sequential(lin(4, 6, 1.5, dtype=dtype), nn.ELU(0.4), lin(6, 6, 1.5, dtype=dtype),
                         nn.SELU(), lin(6, 3, dtype=dtype))


TYPES_S = ["linear", "elu", "linear", "selu", "linear"]

work = tempfile.mkdtemp(prefix="relud-export-")
models_dir = os.path.join(work, "models")
src_dir = os.path.join(work, "src")
os.makedirs(src_dir)


def cli(*args, cwd=None):
    p = subprocess.run([PY, TOOL, *args], capture_output=True, text=True, cwd=cwd or work,
                       timeout=300)
    return p.returncode, p.stdout, p.stderr


def api(module, name, **kw):
    """rx.export in-process: (layers, files, dtype) or the ExportError message."""
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            return rx.export(module, name, models_dir, **kw), None
    except rx.ExportError as e:
        return None, str(e)


# name -> (torch reference module, dtype, expected relud types, input features)
served = OrderedDict()

res, err = api(chain_a(), "chain_a")
check("chain_a (every layer with parameters, nested Sequential, Flatten/Dropout/Identity "
      "dropped) exports", err is None, err or "")
served["chain_a"] = (chain_a(), "float32", TYPES_A, 6)

res, err = api(chain_b(), "chain_b")
check("chain_b (GELU, SiLU, Sigmoid, Tanh, Hardtanh, ReLU6, PReLU(1), Softmax) exports",
      err is None, err or "")
served["chain_b"] = (chain_b(), "float32", TYPES_B, 6)

res, err = api(funcs(), "funcs")
check("a module with its own forward (torch.fx: submodules, F.leaky_relu, F.softplus, "
      "F.dropout, F.hardtanh, torch.flatten, F.celu, Tensor.tanh, torch.log_softmax) exports, "
      "float64", err is None and res[2] == "float64", err or str(res and res[2]))
served["funcs"] = (funcs(), "float64", TYPES_F, 5)

res, err = api(chain_b(), "chain_b64", dtype="float64")
check("--dtype float64 converts a float32 module", err is None and res[2] == "float64", err or "")
served["chain_b64"] = (chain_b().double(), "float64", TYPES_B, 6)

# CLI: a pickled module, a TorchScript file, file.py:make_model(), package.module:attr with
# --state-dict.
torch.save(small(21), os.path.join(src_dir, "pickled.pt"))
torch.jit.save(torch.jit.script(small(22)), os.path.join(src_dir, "scripted.pt"))
with open(os.path.join(src_dir, "build_net.py"), "w") as f:
    f.write("import torch\nfrom torch import nn\n\n\ndef make_model():\n"
            "    torch.manual_seed(23)\n"
            "    return nn.Sequential(nn.Linear(4, 6), nn.ELU(0.4), nn.Linear(6, 6), nn.SELU(),\n"
            "                         nn.Linear(6, 3))\n")
os.makedirs(os.path.join(src_dir, "mypkg"))
with open(os.path.join(src_dir, "mypkg", "__init__.py"), "w") as f:
    f.write("")
with open(os.path.join(src_dir, "mypkg", "nets.py"), "w") as f:
    f.write("from torch import nn\n\n\nclass Small(nn.Sequential):\n    def __init__(self):\n"
            "        super().__init__(nn.Linear(4, 6), nn.ELU(0.4), nn.Linear(6, 6), nn.SELU(),\n"
            "                         nn.Linear(6, 3))\n")
torch.save(small(24).state_dict(), os.path.join(src_dir, "small24.pt"))

rc, out, errtext = cli(os.path.join(src_dir, "pickled.pt"), "--out-dir", models_dir)
check("CLI: a pickled module (torch.save(model)) -> pickled.json + pickled.safetensors, named "
      "after the file", rc == 0 and os.path.exists(os.path.join(models_dir, "pickled.json"))
      and "wrote" in out, f"exit {rc}: {errtext.strip()}")
served["pickled"] = (small(21), "float32", TYPES_S, 4)
check("CLI: prints the layer mapping (relud index <- submodule)",
      re.search(r"^\s+0\s+linear\s+weight \[6, 4\], bias \[6\]\s+<- model\.0 \(Linear\)$", out, re.M)
      is not None, out)

rc, out, errtext = cli(os.path.join(src_dir, "scripted.pt"), "--out-dir", models_dir,
                       "--description", "from TorchScript")
check("CLI: a TorchScript file (torch.jit.save(torch.jit.script(seq)))", rc == 0,
      f"exit {rc}: {errtext.strip()}")
served["scripted"] = (small(22), "float32", TYPES_S, 4)

rc, out, errtext = cli("src/build_net.py:make_model()", "--name", "from_file",
                       "--out-dir", "models")
check("CLI: path/to/file.py:make_model() with --name and a relative --out-dir", rc == 0,
      f"exit {rc}: {errtext.strip()}")
_spec = importlib.util.spec_from_file_location("build_net", os.path.join(src_dir, "build_net.py"))
_build_net = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_build_net)
served["from_file"] = (_build_net.make_model(), "float32", TYPES_S, 4)

rc, out, errtext = cli("mypkg.nets:Small", "--state-dict", "small24.pt", "--out-dir",
                       models_dir, "--quiet", cwd=src_dir)
check("CLI: package.module:Class from the current folder, --state-dict, --quiet (prints "
      "nothing)", rc == 0 and out == "" and os.path.exists(os.path.join(models_dir, "Small.json")),
      f"exit {rc}: {errtext.strip()} {out}")
served["Small"] = (small(24), "float32", TYPES_S, 4)

# ---------------------------------------------------------------- the files
for name, (ref, dtype, types, _) in served.items():
    try:
        doc = json.load(open(os.path.join(models_dir, name + ".json")))
        tensors, meta = st_read(os.path.join(models_dir, name + ".safetensors"))
    except (OSError, ValueError, AssertionError, KeyError) as e:
        check(f"{name}: files readable", False, repr(e))
        continue
    check(f"{name}.json: name, dtype {dtype}, weights file, layer types {len(types)}",
          doc.get("name") == name and doc.get("dtype") == dtype
          and doc.get("weights") == name + ".safetensors"
          and [L["type"] for L in doc["layers"]] == types, json.dumps(doc)[:300])
    params = [m for m in ref.modules() if isinstance(m, (nn.Linear, nn.PReLU))]
    idx = [i for i, t in enumerate(types) if t in ("linear", "prelu")]
    want = {}
    for i, m in zip(idx, params):
        want[f"{i}.weight"] = m.weight
        if isinstance(m, nn.Linear) and m.bias is not None:
            want[f"{i}.bias"] = m.bias
    npdt = np.float32 if dtype == "float32" else np.float64
    same = (set(tensors) == set(want) and all(
        tensors[k].dtype == npdt and np.array_equal(tensors[k],
                                                    want[k].detach().numpy().astype(npdt))
        for k in want))
    check(f"{name}.safetensors: keys are relud's layer indices ({', '.join(sorted(want)[:4])}, "
          "...) with the parameters' exact values", same,
          f"keys {sorted(tensors)} vs {sorted(want)}")
    check(f"{name}.safetensors: __metadata__ format pt", meta == {"format": "pt"}, str(meta))

doc = json.load(open(os.path.join(models_dir, "chain_a.json")))
check("chain_a.json: torch's parameter values (negative_slope 0.2, alpha 0.7 / 1.3, "
      "approximate tanh, beta 2 threshold 1.5, dim 1)",
      [{k: v for k, v in L.items() if k != "type"} for L in doc["layers"]
       if len(L) > 1] == [{"negative_slope": 0.2}, {"alpha": 0.7}, {"alpha": 1.3},
                          {"approximate": "tanh"}, {"beta": 2.0, "threshold": 1.5},
                          {"dim": 1}], json.dumps(doc["layers"]))
doc = json.load(open(os.path.join(models_dir, "chain_b.json")))
check("chain_b.json: GELU approximate none, Hardtanh -0.5 / 0.75, Softmax dim 1",
      {"type": "gelu", "approximate": "none"} in doc["layers"]
      and {"type": "hardtanh", "min_val": -0.5, "max_val": 0.75} in doc["layers"]
      and doc["layers"][-1] == {"type": "softmax", "dim": 1}, json.dumps(doc["layers"]))
check("scripted.json: --description", json.load(open(os.path.join(models_dir, "scripted.json")))
      .get("description") == "from TorchScript")

# ---------------------------------------------------------------- served by relud, vs torch
try:
    d = Daemon("--model-dir", models_dir, "--strict-models")
except RuntimeError as e:
    check("relud loads every exported model (strict_models)", False, str(e)[-800:])
    shutil.rmtree(work, ignore_errors=True)
    finish()
check(f"relud loads all {len(served)} exported models (strict_models)",
      f"models: {len(served)} ready, 0 unavailable" in d.text(), d.text()[-400:])
S = requests.Session()
rng = np.random.default_rng(7)
for name, (ref, dtype, types, n_in) in served.items():
    tdt = torch.float32 if dtype == "float32" else torch.float64
    x = (rng.standard_normal((7, n_in)) * 2).astype(np.float32 if dtype == "float32" else np.float64)
    ref.eval()
    xt = torch.tensor(x, dtype=tdt, requires_grad=True)
    seen = []  # (module, its input) for the layers whose both sides the inputs must reach
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append((m, i[0].detach())))
             for m in ref.modules() if isinstance(m, (nn.ReLU6, nn.Hardtanh, nn.Softplus))]
    y = ref(xt)
    for h in hooks:
        h.remove()
    if name in ("chain_a", "chain_b"):
        sides = []
        for m, v in seen:
            if isinstance(m, nn.Softplus):
                bv = m.beta * v
                sides.append(((bv > m.threshold).any() and (bv < m.threshold).any()).item())
            else:  # ReLU6 is a Hardtanh(0, 6)
                sides.append(((v < m.min_val).any() and (v > m.max_val).any()
                              and ((v > m.min_val) & (v < m.max_val)).any()).item())
        kinds = ", ".join(type(m).__name__ for m, _ in seen)
        check(f"{name}: the inputs reach both sides of every bound ({kinds})",
              seen and all(sides), str(sides))
    g = rng.standard_normal(tuple(y.shape)).astype(x.dtype)
    params = [m for m in ref.modules() if isinstance(m, (nn.Linear, nn.PReLU))]
    idx = [i for i, t in enumerate(types) if t in ("linear", "prelu")]

    def grads(seed_grad):
        for p in ref.parameters():
            p.grad = None
        xt.grad = None
        ref(xt).backward(seed_grad)
        out = {"input": xt.grad.numpy().copy()}
        for i, m in zip(idx, params):
            out[f"{i}.weight"] = m.weight.grad.numpy().copy()
            if isinstance(m, nn.Linear) and m.bias is not None:
                out[f"{i}.bias"] = m.bias.grad.numpy().copy()
        return out

    g_sum = grads(torch.ones_like(y))
    g_out = grads(torch.tensor(g))
    yv = y.detach().numpy()

    r = S.post(d.url + "/v1/forward", json={"model": name, "input": x.tolist(), "gradients": True})
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    ok, det = close(body.get("output", []), yv, dtype) if r.status_code == 200 else (False, r.text[:200])
    check(f"{name}: /v1/forward output matches torch ({dtype})", ok, det)
    if r.status_code == 200:
        gl = body["gradients"]["layers"]
        fails = []
        ok, det = close(body["gradients"]["input"], g_sum["input"], dtype)
        if not ok:
            fails.append("input " + det)
        for k, v in g_sum.items():
            if k == "input":
                continue
            i, p = k.split(".")
            ok, det = close(gl[int(i)].get(p) or [], v, dtype)
            if not ok:
                fails.append(f"{k} {det}")
        extra = [i for i, L in enumerate(gl) if L and i not in idx]
        check(f"{name}: /v1/forward \"gradients\": true matches output.sum().backward() "
              f"(input and {len(g_sum) - 1} parameters)", not fails and not extra,
              "; ".join(fails[:3]) + (f" layers without parameters have gradients: {extra}"
                                      if extra else ""))

    wire = "FP32" if dtype == "float32" else "FP64"
    req = {"parameters": {"gradients": True}, "inputs": [
        {"name": "input", "shape": list(x.shape), "datatype": wire, "data": x.reshape(-1).tolist()},
        {"name": "grad_output", "shape": list(g.shape), "datatype": wire,
         "data": g.reshape(-1).tolist()}]}
    r = S.post(f"{d.url}/v2/models/{name}/infer", json=req)
    if not check(f"{name}: OIP infer with grad_output answers 200", r.status_code == 200,
                 r.text[:300]):
        continue
    outs = {o["name"]: np.asarray(o["data"]).reshape(o["shape"]) for o in r.json()["outputs"]}
    ok, det = close(outs.get("output", []), yv, dtype)
    check(f"{name}: OIP output matches torch", ok, det)
    fails = []
    for k, v in g_out.items():
        ok, det = close(outs.get("grad:" + k, []), v, dtype)
        if not ok:
            fails.append(f"grad:{k} {det}")
    names = sorted(k for k in outs if k.startswith("grad:"))
    check(f"{name}: OIP grad:input and grad:<i>.weight/.bias match output.backward(grad_output) "
          f"({len(g_out)} tensors, no others)", not fails
          and names == sorted("grad:" + k for k in g_out), "; ".join(fails[:3]) or str(names))

r = S.get(d.url + "/v1/models/chain_a")
lay = r.json().get("layers", []) if r.status_code == 200 else []
check("GET /v1/models/chain_a: the torch classes relud reports are the exported modules'",
      [L.get("torch") for L in lay] == ["Linear", "ReLU", "Linear", "LeakyReLU", "Linear", "PReLU",
                                         "ELU", "Linear", "CELU", "SELU", "Linear", "GELU",
                                         "Linear", "Softplus", "Linear", "LogSoftmax"],
      str([L.get("torch") for L in lay]))
d.stop()


# ---------------------------------------------------------------- refusals
class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return x + self.fc(x)


class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


class ExpAct(nn.Module):
    def forward(self, x):
        return torch.exp(x)


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.scale = nn.Parameter(torch.ones(4))

    def forward(self, x):
        return self.fc(x) * self.scale


class Branch(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 2), nn.Linear(4, 2)

    def forward(self, x):
        return torch.cat([self.a(x), self.b(x)], dim=1)


class TwoInputs(nn.Module):
    def forward(self, x, y):
        return x


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        if x.sum() > 0:
            return self.fc(x)
        return x


class DropTrain(nn.Module):
    def forward(self, x):
        return F.dropout(x, 0.5, True)


SUP = ("Linear, ReLU, ReLU6, LeakyReLU, PReLU, ELU, CELU, SELU, GELU, SiLU, Sigmoid, Tanh, "
       "Softplus, Hardtanh, Softmax, LogSoftmax, Identity, Dropout, Flatten")
refusals = [
    ("BatchNorm1d", nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)),
     "model.1 (BatchNorm1d) is not supported (supported: " + SUP + ")"),
    ("Mish (torch's, no relud layer)", nn.Sequential(nn.Linear(4, 4), nn.Mish()),
     "model.1 (Mish) is not supported (supported: "),
    ("Hardswish nested", nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ReLU(), nn.Hardswish())),
     "model.1.1 (Hardswish) is not supported"),
    ("Softsign", nn.Sequential(nn.Softsign()), "model.0 (Softsign) is not supported"),
    ("a skip connection", nn.Sequential(nn.Linear(4, 4), Residual()),
     "model.1 (Residual) is not a chain of layers: the input 'x' goes to 'fc' and operator.add "
     "(a skip connection or a branch)"),
    ("a custom activation x * sigmoid(x)", nn.Sequential(nn.Linear(4, 4), Swish()),
     "model.1 (Swish) is not a chain of layers"),
    ("a custom activation calling torch.exp", nn.Sequential(nn.Linear(4, 4), ExpAct()),
     "model.1.forward: forward calls torch.exp, which relud has no layer for"),
    ("a parameter used directly", Scaled(),
     "model (Scaled): forward uses the tensor self.scale directly"),
    ("two branches concatenated", Branch(), "model (Branch) is not a chain of layers"),
    ("two inputs", TwoInputs(), "model (TwoInputs): forward takes 2 inputs; a relud model takes one"),
    ("control flow", Branchy(), "model (Branchy): forward cannot be traced by torch.fx"),
    ("F.dropout with training=True", DropTrain(),
     "model.forward (F.dropout): dropout with training=True"),
    ("Flatten(0)", nn.Sequential(nn.Flatten(0), nn.Linear(4, 4)),
     "model.0 (Flatten(start_dim=0, end_dim=-1)) is not supported"),
    ("mismatched Linear shapes", nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(5, 2)),
     "model.2 (Linear): takes 5 features but model.0 gives 3"),
    ("PReLU channels vs features", nn.Sequential(nn.Linear(4, 3), nn.PReLU(4)),
     "model.1 (PReLU): 4 parameters but model.0 gives 3 features"),
    ("float16 parameters without --dtype", nn.Sequential(nn.Linear(4, 3).half()),
     "parameters are float16 (model.0): relud serves float32 or float64; pass --dtype"),
    ("mixed float32 / float64 parameters",
     nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2, dtype=torch.float64)),
     "parameters are float32 (model.0), float64 (model.1)"),
    ("a TorchScript custom module", torch.jit.script(Swish()),
     "model (Swish): a TorchScript module exports only as an nn.Sequential"),
    ("a non-finite weight", nn.Sequential(nn.Linear(2, 2)), "model.0 (Linear): weight has inf or NaN"),
    ("only dropped modules", nn.Sequential(nn.Identity(), nn.Dropout()), "model: no layers left"),
]
with torch.no_grad():
    refusals[-2][1][0].weight[0, 0] = float("nan")
before = set(os.listdir(models_dir))
for desc, module, msg in refusals:
    _, err = api(module, "refused")
    check(f"refused: {desc}: \"{msg[:70]}...\"", err is not None and err.startswith(msg),
          f"got: {err}")
check("refusals wrote nothing", set(os.listdir(models_dir)) == before,
      str(set(os.listdir(models_dir)) - before))

res, err = api(nn.Sequential(nn.Linear(4, 3).half(), nn.ReLU()), "half", dtype="float32")
check("float16 parameters with --dtype float32 export", err is None and res[2] == "float32", err or "")
res, err = api(nn.Sequential(nn.Linear(4, 3), nn.Softmax()), "implicit_dim")
check("Softmax() (dim=None) exports as dim -1 with a note",
      err is None and json.load(open(os.path.join(models_dir, "implicit_dim.json")))["layers"][-1]
      == {"type": "softmax", "dim": -1} and any("dim=None" in n for n in rx.NOTES), err or str(rx.NOTES))

# the CLI's contract: exit status 1, one line on stderr, the message of the issue
torch.save(nn.Sequential(OrderedDict(fc1=nn.Linear(4, 4), fc2=nn.Conv2d(1, 1, 3))),
           os.path.join(src_dir, "conv.pt"))
rc, out, errtext = cli(os.path.join(src_dir, "conv.pt"), "--out-dir", models_dir)
check("CLI: Conv2d refused: exit 1, stderr \"relud-export: model.fc2 (Conv2d) is not supported "
      "(supported: Linear, ReLU, ...)\", nothing on stdout",
      rc == 1 and out == "" and errtext == f"relud-export: model.fc2 (Conv2d) is not supported "
      f"(supported: {SUP})\n", f"exit {rc}: {errtext!r}")
check("CLI: nothing written for the refused conv.pt",
      not os.path.exists(os.path.join(models_dir, "conv.json")))
rc, out, errtext = cli(os.path.join(src_dir, "small24.pt"))
check("CLI: a state_dict file is refused, pointing at --state-dict",
      rc == 1 and "holds a state_dict" in errtext and "--state-dict" in errtext, errtext)
rc, out, errtext = cli("src/build_net.py:nothing_here")
check("CLI: a missing attribute is refused by name", rc == 1 and "has no attribute 'nothing_here'"
      in errtext, errtext)
rc, out, errtext = cli(os.path.join(src_dir, "pickled.pt"), "--name", "../evil")
check("CLI: an invalid --name is refused (relud's model name rule)",
      rc == 1 and "invalid model name '../evil'" in errtext, errtext)
rc, out, errtext = cli(os.path.join(src_dir, "build_net.py"))
check("CLI: a .py without :attr asks for one", rc == 1 and "build_net.py:make_model()" in errtext,
      errtext)
rc, out, errtext = cli("--help")
check("CLI: --help documents SOURCE and every option",
      rc == 0 and all(o in out for o in ("SOURCE", "--name", "--out-dir", "--dtype",
                                          "--description", "--state-dict")), out[:300])

# the README's "From PyTorch" example, run as printed
readme = open(os.path.join(ROOT, "README.md")).read()
m = re.search(r"^## From PyTorch\n(.*?)(?=^## )", readme, re.M | re.S)
ex = m and re.search(r"```text\n\$ (tools/relud-export [^\n]*)\n(.*?)```", m.group(1), re.S)
if check("README has a \"From PyTorch\" section with an example run", ex is not None):
    rdir = os.path.join(work, "readme")
    os.makedirs(rdir)
    torch.manual_seed(0)
    torch.save(nn.Sequential(nn.Linear(10, 5), nn.ReLU()), os.path.join(rdir, "simple.pt"))
    argv = ex.group(1).split()[1:]
    p = subprocess.run([PY, TOOL, *argv], capture_output=True, text=True, cwd=rdir, timeout=300)
    check(f"README: `{ex.group(1)}` prints what the README shows", p.returncode == 0
          and p.stdout == ex.group(2), f"exit {p.returncode}: {p.stdout!r} {p.stderr!r}")
    check("README: its example's files are there", all(os.path.exists(os.path.join(rdir, "models", f))
                                                      for f in ("simple.json", "simple.safetensors")))
    # the options on the section's relud-export command lines (its curl lines have their own)
    opts = {o for line in m.group(1).splitlines() if "relud-export " in line
            for o in re.findall(r"(--[a-z-]+)", line)}
    rc, out, _ = cli("--help")
    check(f"README: the options it shows are relud-export's ({', '.join(sorted(opts))})",
          opts and all(o in out for o in opts), str(opts))

shutil.rmtree(work, ignore_errors=True)
finish()
