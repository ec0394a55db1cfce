#!/usr/bin/python3
"""relud's own golden vectors, computed by PyTorch (Debian's python3-torch).

    /usr/bin/python3 tests/golden/gen.py        (or: make golden)

Writes tests/golden/vectors/<name>.json in the format of ../shared/golden (see that
README and tests/golden/README.md), and tests/golden/vectors_ext/<name>.json for the
daemon's extensions (clip_grad_norm, gradients:true, stats, 1-D cross_entropy,
smooth_l1 beta=0) that the public format does not have.

Method, as for the public set: a float32 case holds float32 values (inputs, parameters,
targets, grad_output); the passes run in float64 torch on exactly those values and the
results are rounded to float32. float64 cases are float64 throughout. Every case draws
from its own generator seeded by crc32(name), so adding a case changes no other file.
Numbers are written as the shortest decimal that reads back to the same float32 (resp.
float64), checked for every number with the C library's strtof/strtod.
"""
import ctypes
import json
import math
import os
import shutil
import sys
import zlib

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_MAIN = os.path.join(HERE, "vectors")
OUT_EXT = os.path.join(HERE, "vectors_ext")
SEED = 20240601

torch.set_num_threads(1)
torch.use_deterministic_algorithms(True)

_libc = ctypes.CDLL(None)
_libc.strtof.restype = ctypes.c_float
_libc.strtof.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
_libc.strtod.restype = ctypes.c_double
_libc.strtod.argtypes = [ctypes.c_char_p, ctypes.c_void_p]

SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


# ---------------------------------------------------------------- numbers
def _bits32(v):
    return np.array([v], dtype=np.float32).view(np.uint32)[0]


def fmt32(v):
    """Shortest decimal that reads back (strtof, or strtod then cast) to float32 v."""
    f = np.float32(v)
    if not np.isfinite(f):
        raise ValueError("non-finite float32 %r" % (v,))
    s = repr(float(np.format_float_scientific(f, unique=True)))
    b = s.encode()
    if _bits32(_libc.strtof(b, None)) != _bits32(f):
        raise AssertionError("strtof(%s) != %r" % (s, f))
    if _bits32(np.float32(_libc.strtod(b, None))) != _bits32(f):
        raise AssertionError("(float)strtod(%s) != %r" % (s, f))
    return s


def fmt64(v):
    v = float(v)
    if not math.isfinite(v):
        raise ValueError("non-finite float64 %r" % (v,))
    s = repr(v)
    d = _libc.strtod(s.encode(), None)
    if np.float64(d).view(np.uint64) != np.float64(v).view(np.uint64):
        raise AssertionError("strtod(%s) != %r" % (s, v))
    return s


class Raw(str):
    """Preformatted JSON text."""


def num(v, dt):
    return Raw(fmt32(v) if dt == "float32" else fmt64(v))


def tjson(a, dt, integer=False):
    """A tensor as {"shape", "data"} with exact, shortest numbers (flat, row-major)."""
    a = np.asarray(a)
    flat = a.reshape(-1)
    if integer:
        data = ",".join(str(int(v)) for v in flat)
    else:
        f = fmt32 if dt == "float32" else fmt64
        data = ",".join(f(v) for v in flat)
    return Raw('{"shape": %s, "data": [%s]}' % (json.dumps(list(a.shape)), data))


def dumps(obj, indent=0):
    """Small JSON writer: top levels one key per line, tensors on one line."""
    pad = "  " * indent
    if isinstance(obj, Raw):
        return str(obj)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        if indent >= 2:
            return "{" + ", ".join("%s: %s" % (json.dumps(k), dumps(v, indent + 1))
                                   for k, v in obj.items()) + "}"
        inner = ",\n".join("%s  %s: %s" % (pad, json.dumps(k), dumps(v, indent + 1))
                           for k, v in obj.items())
        return "{\n" + inner + "\n" + pad + "}"
    if isinstance(obj, list):
        if not obj:
            return "[]"
        if indent >= 2 or all(not isinstance(v, (dict, list)) for v in obj):
            return "[" + ", ".join(dumps(v, indent + 1) for v in obj) + "]"
        inner = ",\n".join(pad + "  " + dumps(v, indent + 1) for v in obj)
        return "[\n" + inner + "\n" + pad + "]"
    if isinstance(obj, float):
        return fmt64(obj)
    return json.dumps(obj)


# ---------------------------------------------------------------- values
def rng_for(name):
    return np.random.default_rng([SEED, zlib.crc32(name.encode())])


def as_dt(a, dt):
    """Round to the case's dtype (float32 values are then held as float64)."""
    a = np.asarray(a, dtype=np.float64)
    if dt == "float32":
        a = a.astype(np.float32).astype(np.float64)
    return a


def rand(rng, shape, dt, lo=-3.0, hi=3.0):
    return as_dt(rng.uniform(lo, hi, size=shape), dt)


def scatter(rng, a, values):
    """Put each of `values` at a distinct random position of a (copy)."""
    a = np.array(a, dtype=np.float64)
    flat = a.reshape(-1)
    pos = rng.choice(flat.size, size=len(values), replace=False)
    for p, v in zip(pos, values):
        flat[p] = v
    return a


def linear_params(rng, out_f, in_f, dt, bias=True):
    k = 1.0 / math.sqrt(in_f)
    w = as_dt(rng.uniform(-k, k, size=(out_f, in_f)), dt)
    b = as_dt(rng.uniform(-k, k, size=(out_f,)), dt) if bias else None
    return {"type": "linear", "weight": w, "bias": b}


# ---------------------------------------------------------------- torch
def T(a):
    return torch.tensor(np.asarray(a, dtype=np.float64), dtype=torch.float64)


def apply_layer(L, h, params):
    t = L["type"]
    if t == "linear":
        w = params.setdefault("weight", T(L["weight"]).requires_grad_(True))
        b = None
        if L["bias"] is not None:
            b = params.setdefault("bias", T(L["bias"]).requires_grad_(True))
        return F.linear(h, w, b)
    if t == "prelu":
        w = params.setdefault("weight", T(L["weight"]).requires_grad_(True))
        return F.prelu(h, w)
    if t == "relu":
        return F.relu(h)
    if t == "relu6":
        return F.relu6(h)
    if t == "leaky_relu":
        return F.leaky_relu(h, L["negative_slope"])
    if t == "elu":
        return F.elu(h, L["alpha"])
    if t == "celu":
        return F.celu(h, L["alpha"])
    if t == "selu":
        return F.selu(h)
    if t == "gelu":
        return F.gelu(h, approximate=L["approximate"])
    if t == "silu":
        return F.silu(h)
    if t == "sigmoid":
        return torch.sigmoid(h)
    if t == "tanh":
        return torch.tanh(h)
    if t == "softplus":
        return F.softplus(h, L["beta"], L["threshold"])
    if t == "hardtanh":
        return F.hardtanh(h, L["min_val"], L["max_val"])
    if t == "softmax":
        return F.softmax(h, dim=L["dim"])
    if t == "log_softmax":
        return F.log_softmax(h, dim=L["dim"])
    raise KeyError(t)


def apply_loss(loss, y):
    t, red = loss["type"], loss["reduction"]
    if t in ("cross_entropy", "nll"):
        tgt = torch.tensor(np.asarray(loss["target"], dtype=np.int64))
        f = F.cross_entropy if t == "cross_entropy" else F.nll_loss
        return f(y, tgt, reduction=red)
    tgt = T(loss["target"])
    if t == "mse":
        return F.mse_loss(y, tgt, reduction=red)
    if t == "l1":
        return F.l1_loss(y, tgt, reduction=red)
    if t == "smooth_l1":
        return F.smooth_l1_loss(y, tgt, reduction=red, beta=loss["beta"])
    if t == "huber":
        return F.huber_loss(y, tgt, reduction=red, delta=loss["delta"])
    if t == "bce_with_logits":
        return F.binary_cross_entropy_with_logits(y, tgt, reduction=red)
    raise KeyError(t)


LAYER_SCALARS = {
    "leaky_relu": ["negative_slope"], "elu": ["alpha"], "celu": ["alpha"],
    "softmax": ["dim"], "log_softmax": ["dim"], "gelu": ["approximate"],
    "softplus": ["beta", "threshold"], "hardtanh": ["min_val", "max_val"],
}


def layer_json(L, dt):
    t = L["type"]
    out = {"type": t}
    if t == "linear":
        out["weight"] = tjson(L["weight"], dt)
        out["bias"] = tjson(L["bias"], dt) if L["bias"] is not None else None
    elif t == "prelu":
        out["weight"] = tjson(L["weight"], dt)
    for k in LAYER_SCALARS.get(t, []):
        v = L[k]
        out[k] = float(v) if isinstance(v, float) else v
    return out


def max_reduction(x_shape, layers, loss, backward):
    """K of the tolerance rule: the longest sum in the case."""
    K = 1
    shape = list(x_shape)
    for L in layers:
        t = L["type"]
        if t == "linear":
            out_f, in_f = np.shape(L["weight"])
            K = max(K, in_f)
            if backward:
                K = max(K, int(np.prod(shape[:-1])) if len(shape) > 1 else 1, out_f)
            shape = shape[:-1] + [out_f]
        elif t in ("softmax", "log_softmax"):
            K = max(K, shape[L["dim"]])
        elif t == "prelu" and backward:
            n = int(np.prod(shape))
            C = np.size(L["weight"])
            K = max(K, n // C if C > 1 else n)
    if loss is not None:
        K = max(K, int(np.prod(shape)))
    return K


def tolerance(dt, K):
    s = max(1.0, math.sqrt(K) / 4.0)
    base = 1e-5 if dt == "float32" else 1e-12
    return {"rtol": 1e-4 if dt == "float32" else 1e-10,
            "atol": float("%.2g" % (base * s)), "max_reduction": K,
            "rule": "elementwise |actual - expected| <= atol + rtol * |expected|"}


# ---------------------------------------------------------------- cases
CASES = []  # (folder, dict)
ERRORS = []


def case(name, dt, x, layers, grad_output=None, loss=None, desc="", tags=(),
         ext=None):
    """Compute one case with torch and queue it for writing.

    ext: extension keys, the case goes to vectors_ext/:
      {"clip_grad_norm": max_norm} | {"gradients": True} | {"stats": True} |
      {"note": ...} (a public-format case that only belongs to ext).
    """
    ext = dict(ext or {})
    x = as_dt(x, dt)
    xt = T(x).requires_grad_(True)
    params = [dict() for _ in layers]
    h = xt
    acts = []
    for L, p in zip(layers, params):
        h = apply_layer(L, h, p)
        acts.append(h)
    y = h
    lossv = None
    backward = grad_output is not None or loss is not None or ext.get("gradients")
    if grad_output is not None:
        grad_output = as_dt(grad_output, dt)
        assert grad_output.shape == tuple(y.shape), name
        y.backward(T(grad_output))
    elif loss is not None:
        if loss["type"] not in ("cross_entropy", "nll"):
            loss = dict(loss, target=as_dt(loss["target"], dt))
            assert np.shape(loss["target"]) == tuple(y.shape), name
        lv = apply_loss(loss, y)
        lossv = lv.item()
        lv.backward()
    elif ext.get("gradients"):
        y.sum().backward()

    def grads():
        out = []
        for L, p in zip(layers, params):
            if L["type"] == "linear":
                out.append({"weight": tjson(p["weight"].grad.numpy(), dt),
                            "bias": tjson(p["bias"].grad.numpy(), dt) if "bias" in p else None})
            elif L["type"] == "prelu":
                out.append({"weight": tjson(p["weight"].grad.numpy(), dt)})
            else:
                out.append({})
        return out

    expected = {"output": tjson(y.detach().numpy(), dt),
                "loss": num(lossv, dt) if lossv is not None else None,
                "grad_input": tjson(xt.grad.numpy(), dt) if backward else None,
                "grad_params": grads() if backward else None}

    if "stats" in ext:
        st = []
        for L, p, a in zip(layers, params, acts):
            a = a.detach().numpy()
            z = (a == 0.0)
            lead = z.reshape(-1, a.shape[-1]) if a.ndim > 1 else z.reshape(1, -1)
            e = {"type": L["type"], "zero_fraction": float(z.mean()),
                 "dead_units": [int(i) for i in np.nonzero(lead.all(axis=0))[0]]}
            if backward and "weight" in p:
                e["weight_grad_norm"] = num(torch.linalg.vector_norm(p["weight"].grad).item(), dt)
                e["bias_grad_norm"] = (num(torch.linalg.vector_norm(p["bias"].grad).item(), dt)
                                       if "bias" in p else None)
            else:
                e["weight_grad_norm"] = None
                e["bias_grad_norm"] = None
            st.append(e)
        expected["stats"] = {"layers": st}

    if "clip_grad_norm" in ext:
        plist = [t for p in params for k in ("weight", "bias") for t in [p.get(k)]
                 if t is not None]
        total = torch.nn.utils.clip_grad_norm_(plist, ext["clip_grad_norm"])
        expected["total_norm"] = num(total.item(), dt)
        expected["grad_params"] = grads()

    loss_json = None
    if loss is not None:
        ci = loss["type"] in ("cross_entropy", "nll")
        loss_json = {"type": loss["type"],
                     "target": tjson(loss["target"], dt, integer=ci),
                     "reduction": loss["reduction"]}
        if ci:
            loss_json["target_note"] = ("target holds integer class indices in [0, C), shape "
                                        "[N], as torch.nn.functional.%s(output[N, C], "
                                        "target.long()) takes them" % (
                                            "cross_entropy" if loss["type"] == "cross_entropy"
                                            else "nll_loss"))
        if loss["type"] == "smooth_l1":
            loss_json["beta"] = float(loss["beta"])
        if loss["type"] == "huber":
            loss_json["delta"] = float(loss["delta"])

    K = max_reduction(x.shape, layers, loss, backward)
    doc = {"format": "torch-oracle-case/1", "name": name, "dtype": dt,
           "description": desc, "tags": list(tags)}
    for k in ("clip_grad_norm", "gradients", "stats"):
        if k in ext:
            doc[k] = ext[k]
    doc.update({"input": tjson(x, dt),
                "layers": [layer_json(L, dt) for L in layers],
                "grad_output": tjson(grad_output, dt) if grad_output is not None else None,
                "loss": loss_json,
                "expected": expected,
                "tolerance": tolerance(dt, K),
                "generator": {"tool": "tests/golden/gen.py", "seed": SEED,
                              "torch": torch.__version__, "numpy": np.__version__,
                              "method": ("float64 torch on float32-rounded inputs, results "
                                         "rounded to float32" if dt == "float32" else
                                         "float64 torch on float64 inputs")}})
    if ext.get("note"):
        doc["note"] = ext["note"]
    CASES.append(("ext" if ext else "main", doc))


def both(name, build, **kw):
    """Emit the float32 case `name` and the float64 case `name_f64`.
    build(rng, dt) -> dict of case() arguments."""
    for dt, n in (("float32", name), ("float64", name + "_f64")):
        args = build(rng_for(n), dt)
        args.update(kw)
        case(n, dt, **args)


# ---------------------------------------------------------------- activations
# type -> (default params, kink/bound values, "other" params for the 3-D case, their kinks)
ACTS = {
    "relu":       ({}, [0.0], None, None),
    "relu6":      ({}, [0.0, 6.0], None, None),
    "leaky_relu": ({"negative_slope": 0.01}, [0.0], {"negative_slope": 0.1}, [0.0]),
    "elu":        ({"alpha": 1.0}, [0.0], {"alpha": 2.0}, [0.0]),
    "celu":       ({"alpha": 1.0}, [0.0], {"alpha": 1.5}, [0.0]),
    "selu":       ({}, [0.0], None, None),
    "gelu":       ({"approximate": "none"}, [0.0], {"approximate": "tanh"}, [0.0]),
    "silu":       ({}, [0.0], None, None),
    "sigmoid":    ({}, [0.0], None, None),
    "tanh":       ({}, [0.0], None, None),
    "softplus":   ({"beta": 1.0, "threshold": 20.0}, [0.0, 20.0],
                   {"beta": 0.5, "threshold": 3.0}, [0.0, 6.0]),
    "hardtanh":   ({"min_val": -1.0, "max_val": 1.0}, [-1.0, 1.0],
                   {"min_val": -2.0, "max_val": 0.5}, [-2.0, 0.5]),
}

EXTREMES = [100.0, -100.0, 10000.0, -10000.0, 88.0, -88.0, 89.0, -89.0]


def special_values(kinks, dt, extra=()):
    v = [0.0, -0.0]
    for k in kinks:
        if k != 0.0:
            v += [k, -k]
    for k in kinks:  # just beside every kink
        e = 1e-3 if k == 0.0 else abs(k) * 1e-3
        v += [k + e, k - e]
    v += [1.0, -1.0, 0.5, -0.5, 3.0, -3.0, 20.0, -20.0, -5.0, -8.0, 1e-30, -1e-30]
    v += EXTREMES + list(extra)
    if dt == "float64":
        v += [710.0, -710.0, 800.0, -800.0]
    out = []
    for a in v:  # dedupe, keeping -0.0 beside 0.0
        if not any(np.float64(a).view(np.uint64) == np.float64(b).view(np.uint64) for b in out):
            out.append(a)
    return out


def gen_activations():
    for t, (dflt, kinks, other, okinks) in ACTS.items():
        L = dict(type=t, **dflt)

        def b1(rng, dt, L=L, kinks=kinks, t=t):
            extra = []
            if t == "softplus":  # beside the threshold, one float32 ulp either way
                extra = [float(np.nextafter(np.float32(20), np.float32(30))),
                         float(np.nextafter(np.float32(20), np.float32(10)))]
            x = special_values(kinks, dt, extra)
            return dict(x=x, layers=[L], grad_output=rand(rng, (len(x),), dt, -1, 1),
                        desc="%s on 1-D special values: 0.0, -0.0, kinks/bounds and their "
                             "neighbours, +-100, +-1e4, +-88, +-89 (and +-710, +-800 in "
                             "float64); forward + grad_output." % t)
        both("%s_1d_special" % t, b1, tags=["activation", t, "1d", "kink", "extreme"])

        def b2(rng, dt, L=L, kinks=kinks):
            x = scatter(rng, rand(rng, (4, 6), dt), [0.0, -0.0] + kinks + [-k for k in kinks])
            return dict(x=x, layers=[L], grad_output=rand(rng, (4, 6), dt, -1, 1),
                        desc="%s on a 4x6 random input with exact zeros and kink values "
                             "scattered in." % L["type"])
        both("%s_2d" % t, b2, tags=["activation", t, "2d", "kink"])

        L3 = dict(type=t, **(other or dflt))
        ks3 = okinks or kinks

        def b3(rng, dt, L3=L3, ks3=ks3):
            x = scatter(rng, rand(rng, (2, 3, 4), dt, -7, 7),
                        [0.0, -0.0] + ks3 + [-k for k in ks3] + [100.0, -100.0])
            return dict(x=x, layers=[L3], grad_output=rand(rng, (2, 3, 4), dt, -1, 1),
                        desc="%s %s on a 2x3x4 input with kinks and +-100 scattered in." % (
                            L3["type"], {k: v for k, v in L3.items() if k != "type"}))
        both("%s_3d" % t, b3, tags=["activation", t, "3d", "kink"])

        if other:  # non-default parameters on 1-D special values as well
            def b4(rng, dt, L3=L3, ks3=ks3):
                x = special_values(ks3, dt)
                return dict(x=x, layers=[L3], grad_output=rand(rng, (len(x),), dt, -1, 1),
                            desc="%s with %s on 1-D special values." % (
                                L3["type"], {k: v for k, v in L3.items() if k != "type"}))
            sfx = {"leaky_relu": "slope01", "elu": "alpha2", "celu": "alpha15",
                   "gelu": "tanh", "softplus": "beta05_thr3", "hardtanh": "m2_05"}[t]
            both("%s_%s_1d_special" % (t, sfx), b4, tags=["activation", t, "1d", "kink", "params"])

    # a few more parameter points at the kinks
    def sp(rng, dt):
        x = [2.5, -2.5, 2.4999, 2.5001, 0.0, -0.0, 1.0, 100.0, -100.0, 1e4, -1e4]
        return dict(x=x, layers=[{"type": "softplus", "beta": 2.0, "threshold": 5.0}],
                    grad_output=rand(rng, (len(x),), dt, -1, 1),
                    desc="softplus(beta=2, threshold=5): beta*x == threshold at x=2.5 "
                         "takes the log1p branch (strict >).")
    both("softplus_beta2_thr5_at_threshold", sp, tags=["activation", "softplus", "kink"])

    def ht(rng, dt):
        x = [0.0, -0.0, 0.25, -0.25, 0.2499, 0.2501, 3.0, -3.0, 1e4, -1e4]
        return dict(x=x, layers=[{"type": "hardtanh", "min_val": -0.25, "max_val": 0.25}],
                    grad_output=rand(rng, (len(x),), dt, -1, 1),
                    desc="hardtanh[-0.25, 0.25]: derivative 0 on both bounds.")
    both("hardtanh_narrow_bounds", ht, tags=["activation", "hardtanh", "kink"])

    def ht0(rng, dt):
        x = [0.0, -0.0, 1e-3, -1e-3, 2.0, -2.0, 3.0]
        return dict(x=x, layers=[{"type": "hardtanh", "min_val": 0.0, "max_val": 2.0}],
                    grad_output=rand(rng, (len(x),), dt, -1, 1),
                    desc="hardtanh[0, 2]: -0.0 and 0.0 are on the lower bound (derivative 0).")
    both("hardtanh_zero_bound", ht0, tags=["activation", "hardtanh", "kink"])

    def lr_neg(rng, dt):
        x = scatter(rng, rand(rng, (3, 5), dt), [0.0, -0.0])
        return dict(x=x, layers=[{"type": "leaky_relu", "negative_slope": -0.2}],
                    grad_output=rand(rng, (3, 5), dt, -1, 1),
                    desc="leaky_relu with a negative slope (-0.2), torch accepts it.")
    both("leaky_relu_negative_slope", lr_neg, tags=["activation", "leaky_relu", "params"])

    def fwd(rng, dt):
        x = scatter(rng, rand(rng, (3, 7), dt), [0.0, -0.0, 100.0, -1e4])
        return dict(x=x, layers=[{"type": "gelu", "approximate": "tanh"}],
                    desc="gelu(tanh) forward only.")
    both("gelu_tanh_2d_fwd", fwd, tags=["activation", "gelu", "forward_only"])

    def fwd2(rng, dt):
        x = scatter(rng, rand(rng, (2, 9), dt), [0.0, -0.0, 6.0, 100.0])
        return dict(x=x, layers=[{"type": "relu6"}], desc="relu6 forward only.")
    both("relu6_2d_fwd", fwd2, tags=["activation", "relu6", "forward_only"])


# ---------------------------------------------------------------- prelu
def gen_prelu():
    def mk(shape, w, extra_desc):
        def b(rng, dt):
            x = scatter(rng, rand(rng, shape, dt), [0.0, -0.0, 0.0, -100.0, 1e4, -1e4])
            return dict(x=x, layers=[{"type": "prelu", "weight": as_dt(w, dt)}],
                        grad_output=rand(rng, shape, dt, -1, 1),
                        desc="prelu (%d weight%s) on a %s input; %s" % (
                            len(w), "s" if len(w) > 1 else "",
                            "x".join(map(str, shape)), extra_desc))
        return b
    one = "one slope for every element; dweight sums x*g over x <= 0 (zeros add 0)."
    chans = "channel = dim 1; dweight[c] sums over every other dim."
    both("prelu_1d_single", mk((9,), [0.25], one), tags=["prelu", "1d"])
    both("prelu_2d_single", mk((4, 5), [0.1], one), tags=["prelu", "2d"])
    both("prelu_2d_channels", mk((5, 6), [0.25, 0.1, -0.3, 0.0, 0.5, 1.5], chans),
         tags=["prelu", "2d", "channels"])
    both("prelu_3d_single", mk((2, 3, 4), [0.3], one), tags=["prelu", "3d"])
    both("prelu_3d_channels", mk((2, 3, 5), [0.2, -0.1, 0.7], chans),
         tags=["prelu", "3d", "channels"])
    both("prelu_4d_channels", mk((2, 3, 2, 2), [0.05, 0.5, 2.0], chans),
         tags=["prelu", "4d", "channels"])


# ---------------------------------------------------------------- softmax
def gen_softmax():
    for t in ("softmax", "log_softmax"):
        def b1(rng, dt, t=t, dim=0):
            x = as_dt(100.0 + rng.uniform(-3, 3, size=8), dt)
            return dict(x=x, layers=[{"type": t, "dim": dim}],
                        grad_output=rand(rng, (8,), dt, -1, 1),
                        desc="%s(dim=%d) on a 1-D input near 100." % (t, dim))
        both("%s_1d_dim0" % t, b1, tags=["activation", t, "1d", "extreme"])
        both("%s_1d_dimm1" % t, lambda rng, dt, t=t: b1(rng, dt, t, -1),
             tags=["activation", t, "1d"])

        def bx(rng, dt, t=t):
            rows = [rng.uniform(-3, 3, 6),
                    [1e4, -1e4, 1e4, 0.0, -0.0, 5.0],
                    -100.0 + rng.uniform(-1, 1, 6),
                    [0.5] * 6,
                    -1e4 + rng.uniform(-2, 2, 6),
                    100.0 + rng.uniform(-1, 1, 6),
                    [88.0, -88.0, 89.0, -89.0, 0.0, 88.0],
                    [-1e4, -1e4, -1e4, -1e4, -1e4, 0.0]]
            x = as_dt(np.array(rows, dtype=np.float64), dt)
            return dict(x=x, layers=[{"type": t, "dim": -1}],
                        grad_output=rand(rng, x.shape, dt, -1, 1),
                        desc="%s(dim=-1), rows: random; +-1e4 with ties at the max; ~-100; "
                             "constant; all ~-1e4; ~+100; +-88/89; one 0 among -1e4." % t)
        both("%s_2d_extreme" % t, bx, tags=["activation", t, "2d", "extreme"])

        for dim in (0, 1):
            def b2(rng, dt, t=t, dim=dim):
                x = rand(rng, (5, 4), dt, -4, 4)
                return dict(x=x, layers=[{"type": t, "dim": dim}],
                            grad_output=rand(rng, (5, 4), dt, -1, 1),
                            desc="%s(dim=%d) on 5x4." % (t, dim))
            both("%s_2d_dim%d" % (t, dim), b2, tags=["activation", t, "2d"])

        for dim, dn in ((0, "0"), (1, "1"), (2, "2"), (-1, "m1"), (-2, "m2")):
            def b3(rng, dt, t=t, dim=dim):
                x = scatter(rng, rand(rng, (3, 4, 5), dt, -4, 4), [100.0, -100.0, 1e4, -1e4])
                return dict(x=x, layers=[{"type": t, "dim": dim}],
                            grad_output=rand(rng, (3, 4, 5), dt, -1, 1),
                            desc="%s(dim=%d) on 3x4x5 with +-100 and +-1e4 scattered in." % (
                                t, dim))
            both("%s_3d_dim%s" % (t, dn), b3, tags=["activation", t, "3d"])

        def bf(rng, dt, t=t):
            x = rand(rng, (3, 6), dt, -5, 5)
            return dict(x=x, layers=[{"type": t, "dim": -1}], desc="%s forward only." % t)
        both("%s_2d_fwd" % t, bf, tags=["activation", t, "forward_only"])


# ---------------------------------------------------------------- linear
def gen_linear():
    def mk(xshape, out_f, bias, desc):
        def b(rng, dt):
            x = rand(rng, xshape, dt, -2, 2)
            L = linear_params(rng, out_f, xshape[-1], dt, bias)
            oshape = tuple(xshape[:-1]) + (out_f,)
            return dict(x=x, layers=[L], grad_output=rand(rng, oshape, dt, -1, 1), desc=desc)
        return b
    both("linear_1d_bias", mk((10,), 4, True, "Linear(10,4) on one 1-D sample."),
         tags=["linear", "1d"])
    both("linear_1d_nobias", mk((7,), 4, False, "Linear(7,4,bias=False) on one 1-D sample."),
         tags=["linear", "1d", "no_bias"])
    both("linear_2d_bias", mk((6, 8), 5, True, "Linear(8,5) on 6x8."), tags=["linear", "2d"])
    both("linear_2d_nobias_square", mk((4, 6), 6, False,
                                       "Linear(6,6,bias=False): a transposed weight fails."),
         tags=["linear", "2d", "no_bias"])
    both("linear_3d_bias", mk((2, 3, 6), 4, True, "Linear(6,4) on 2x3x6 (leading dims "
                                                  "flattened)."), tags=["linear", "3d"])
    both("linear_3d_nobias", mk((3, 2, 5), 7, False, "Linear(5,7,bias=False) on 3x2x5."),
         tags=["linear", "3d", "no_bias"])
    both("linear_4d_bias", mk((2, 2, 2, 3), 2, True, "Linear(3,2) on a 4-D input."),
         tags=["linear", "4d"])
    both("linear_2d_in1_out1", mk((5, 1), 1, True, "Linear(1,1): one feature in and out."),
         tags=["linear", "2d", "edge"])
    both("linear_batch1_2d", mk((1, 12), 9, True, "Linear(12,9) on a 1x12 batch (M = 1)."),
         tags=["linear", "2d", "edge"])

    def bf(rng, dt):
        x = rand(rng, (4, 9), dt)
        return dict(x=x, layers=[linear_params(rng, 3, 9, dt)], desc="Linear(9,3) forward only.")
    both("linear_2d_fwd", bf, tags=["linear", "forward_only"])


# ---------------------------------------------------------------- losses
def gen_losses():
    def reg(ltype, red, **lp):
        def b(rng, dt):
            x = rand(rng, (5, 6), dt, -2, 2)
            L = linear_params(rng, 4, 6, dt)
            tgt = rand(rng, (5, 4), dt, -2, 2)
            return dict(x=x, layers=[L], loss=dict(type=ltype, target=tgt, reduction=red, **lp),
                        desc="Linear(6,4) then %s(%s%s)." % (
                            ltype, red, "".join(", %s=%s" % kv for kv in lp.items())))
        return b
    for red in ("mean", "sum"):
        for lt in ("mse", "l1"):
            both("loss_%s_%s" % (lt, red), reg(lt, red), tags=["loss", lt, red])
        both("loss_smooth_l1_%s" % red, reg("smooth_l1", red, beta=1.0),
             tags=["loss", "smooth_l1", red])
        both("loss_smooth_l1_beta05_%s" % red, reg("smooth_l1", red, beta=0.5),
             tags=["loss", "smooth_l1", red, "params"])
        both("loss_huber_%s" % red, reg("huber", red, delta=1.0), tags=["loss", "huber", red])
        both("loss_huber_delta2_%s" % red, reg("huber", red, delta=2.0),
             tags=["loss", "huber", red, "params"])

        # kinks of the regression losses: d == 0 exactly, |d| == beta/delta exactly.
        # relu passes its input through exactly, so the targets are exact.
        def kinks(rng, dt, lt, red, lp):
            # multiples of 1/64, so that output - target is exact in float32 too
            x = np.round(rng.uniform(-3, 3, size=(4, 6)) * 64.0) / 64.0
            x = scatter(rng, x, [0.0, -0.0])
            y = np.maximum(x, 0.0)
            k = lp.get("beta", lp.get("delta", 1.0))
            d = as_dt(rng.choice([0.0, k, -k, 0.25, -2.5, 3.0], size=x.shape), dt)
            tgt = as_dt(y - d, dt)
            assert np.array_equal(y - tgt, d) and np.array_equal(as_dt(y - tgt, "float32"), d)
            return dict(x=x, layers=[{"type": "relu"}],
                        loss=dict(type=lt, target=tgt, reduction=red, **lp),
                        desc="relu then %s(%s): output - target is exactly 0 or +-%s (the "
                             "kinks) at many points; l1 uses sign(0) = 0." % (lt, red, k))
        for lt, lp in (("l1", {}), ("smooth_l1", {"beta": 1.0}), ("smooth_l1", {"beta": 0.5}),
                       ("huber", {"delta": 1.0}), ("huber", {"delta": 2.0}), ("mse", {})):
            nm = "loss_%s%s_kinks_%s" % (lt, "".join("_%s%g" % (k[0], v) for k, v in lp.items())
                                          .replace(".", ""), red)
            both(nm, lambda rng, dt, lt=lt, red=red, lp=lp: kinks(rng, dt, lt, red, lp),
                 tags=["loss", lt, red, "kink"])

        def bce(rng, dt, red=red):
            x = rand(rng, (5, 6), dt, -2, 2)
            L = linear_params(rng, 4, 6, dt)
            tgt = as_dt(rng.choice([0.0, 1.0, 0.5, 0.25, 0.9], size=(5, 4)), dt)
            return dict(x=x, layers=[L],
                        loss=dict(type="bce_with_logits", target=tgt, reduction=red),
                        desc="Linear(6,4) then bce_with_logits(%s), targets in [0,1] with "
                             "exact 0 and 1." % red)
        both("loss_bce_with_logits_%s" % red, bce, tags=["loss", "bce_with_logits", red])

        def bcex(rng, dt, red=red):
            logits = [100.0, -100.0, 1e4, -1e4, 88.0, -88.0, 0.0, -0.0, 30.0, -30.0, 800.0,
                      -800.0, 17.0, -17.0]
            n = len(logits)
            tgts = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.5, 0.5, 1.0, 1.0, 0.0, 0.25]
            # Linear(n, n) = diag(1) with zero bias passes the logits through exactly.
            L = {"type": "linear", "weight": as_dt(np.eye(n), dt), "bias": as_dt(np.zeros(n), dt)}
            return dict(x=logits, layers=[L],
                        loss=dict(type="bce_with_logits", target=as_dt(tgts, dt), reduction=red),
                        desc="bce_with_logits(%s) on extreme logits (+-100, +-1e4, +-88, "
                             "+-800, 0, -0.0) through an identity Linear, targets exact 0/1 "
                             "on both sides." % red)
        both("loss_bce_with_logits_extreme_%s" % red, bcex,
             tags=["loss", "bce_with_logits", red, "extreme"])

        def ce(rng, dt, red=red):
            x = rand(rng, (6, 8), dt, -2, 2)
            L = linear_params(rng, 5, 8, dt)
            tgt = np.array([0, 4, 2, 2, 1, 3])
            return dict(x=x, layers=[L], loss=dict(type="cross_entropy", target=tgt,
                                                   reduction=red),
                        desc="Linear(8,5) logits, cross_entropy(%s), class 0 and C-1 among the "
                             "targets." % red)
        both("loss_cross_entropy_%s" % red, ce, tags=["loss", "cross_entropy", red])

        def cex(rng, dt, red=red):
            rows = [[1e4, -1e4, 0.0, 5.0], [-1e4, -1e4, -1e4, -1e4], [100.0, 100.0, -100.0, 0.0],
                    [88.0, -88.0, 89.0, -89.0], [-1e4, 0.0, -1e4, -1e4], [1e4, 1e4, 1e4, -1e4]]
            x = as_dt(rows, dt)
            tgt = np.array([1, 3, 0, 2, 1, 3])
            L = {"type": "linear", "weight": as_dt(np.eye(4), dt), "bias": None}
            return dict(x=x, layers=[L], loss=dict(type="cross_entropy", target=tgt,
                                                   reduction=red),
                        desc="cross_entropy(%s) on extreme logits through an identity "
                             "Linear(4,4,bias=False): ties, -1e4 rows, target at -1e4 "
                             "(loss 2e4)." % red)
        both("loss_cross_entropy_extreme_%s" % red, cex,
             tags=["loss", "cross_entropy", red, "extreme"])

        def nll(rng, dt, red=red):
            x = rand(rng, (6, 8), dt, -2, 2)
            L = linear_params(rng, 5, 8, dt)
            tgt = np.array([3, 0, 4, 4, 1, 2])
            return dict(x=x, layers=[L, {"type": "log_softmax", "dim": 1}],
                        loss=dict(type="nll", target=tgt, reduction=red),
                        desc="Linear(8,5) -> log_softmax(dim=1) -> nll(%s)." % red)
        both("loss_nll_%s" % red, nll, tags=["loss", "nll", red])

        def nllr(rng, dt, red=red):
            x = rand(rng, (4, 6), dt, -2, 2)
            L = linear_params(rng, 3, 6, dt)
            tgt = np.array([2, 0, 1, 2])
            return dict(x=x, layers=[L], loss=dict(type="nll", target=tgt, reduction=red),
                        desc="nll(%s) directly on Linear outputs (not log-probabilities): "
                             "-out[target]." % red)
        both("loss_nll_raw_%s" % red, nllr, tags=["loss", "nll", red])

    def ce1(rng, dt):
        x = rand(rng, (1, 6), dt, -2, 2)
        L = linear_params(rng, 3, 6, dt)
        return dict(x=x, layers=[L], loss=dict(type="cross_entropy", target=np.array([2]),
                                               reduction="mean"),
                    desc="cross_entropy(mean) with N = 1.")
    both("loss_cross_entropy_n1", ce1, tags=["loss", "cross_entropy", "edge"])

    def mse3(rng, dt):
        x = rand(rng, (2, 3, 6), dt, -2, 2)
        L = linear_params(rng, 4, 6, dt)
        return dict(x=x, layers=[L], loss=dict(type="mse", target=rand(rng, (2, 3, 4), dt),
                                               reduction="mean"),
                    desc="mse(mean) on a 3-D output: n counts every element.")
    both("loss_mse_3d_mean", mse3, tags=["loss", "mse", "3d"])


# ---------------------------------------------------------------- stacks
def gen_stacks():
    def mlp_ce(rng, dt):
        x = rand(rng, (6, 10), dt, -2, 2)
        return dict(x=x, layers=[linear_params(rng, 8, 10, dt), {"type": "relu"},
                                 linear_params(rng, 4, 8, dt)],
                    loss=dict(type="cross_entropy", target=np.array([0, 3, 1, 2, 3, 0]),
                              reduction="mean"),
                    desc="Linear(10,8) -> ReLU -> Linear(8,4), cross_entropy(mean).")
    both("stack_mlp_ce", mlp_ce, tags=["stack", "cross_entropy"])

    def mlp_go(rng, dt):
        x = rand(rng, (5, 10), dt, -2, 2)
        return dict(x=x, layers=[linear_params(rng, 8, 10, dt), {"type": "relu"},
                                 linear_params(rng, 3, 8, dt)],
                    grad_output=rand(rng, (5, 3), dt, -1, 1),
                    desc="Linear(10,8) -> ReLU -> Linear(8,3) with grad_output.")
    both("stack_mlp_grad_output", mlp_go, tags=["stack", "grad_output"])

    def dead(rng, dt):
        x = rand(rng, (6, 8), dt, -2, 2)
        L1 = linear_params(rng, 6, 8, dt)
        L1["bias"][1] = -50.0            # unit 1: dead for the whole batch
        L1["bias"][4] = -60.0            # unit 4: dead too
        L1["weight"][2, :] = 0.0         # unit 2: pre-activation exactly 0 -> relu'(0) = 0
        L1["bias"][2] = 0.0
        L2 = linear_params(rng, 3, 6, dt)
        return dict(x=x, layers=[L1, {"type": "relu"}, L2],
                    loss=dict(type="mse", target=rand(rng, (6, 3), dt), reduction="sum"),
                    desc="dying relu: units 1 and 4 dead for the whole batch, unit 2's "
                         "pre-activation exactly 0 (gradients exactly 0); mse(sum).")
    both("stack_dead_units", dead, tags=["stack", "dying_relu", "kink"])

    def prelu_nll(rng, dt):
        x = rand(rng, (4, 7), dt, -2, 2)
        return dict(x=x, layers=[linear_params(rng, 5, 7, dt),
                                 {"type": "prelu", "weight": as_dt([0.25, -0.1, 0.0, 0.5, 1.0], dt)},
                                 linear_params(rng, 3, 5, dt),
                                 {"type": "log_softmax", "dim": -1}],
                    loss=dict(type="nll", target=np.array([2, 0, 1, 1]), reduction="sum"),
                    desc="Linear -> PReLU(5 channels) -> Linear -> log_softmax -> nll(sum).")
    both("stack_prelu_nll", prelu_nll, tags=["stack", "prelu", "nll"])

    def fwd(rng, dt):
        x = rand(rng, (3, 10), dt, -2, 2)
        return dict(x=x, layers=[linear_params(rng, 6, 10, dt),
                                 {"type": "gelu", "approximate": "none"},
                                 linear_params(rng, 4, 6, dt), {"type": "softmax", "dim": -1}],
                    desc="Linear -> GELU -> Linear -> Softmax, forward only.")
    both("stack_gelu_softmax_fwd", fwd, tags=["stack", "forward_only"])

    def s3d(rng, dt):
        x = rand(rng, (2, 3, 5), dt, -2, 2)
        return dict(x=x, layers=[linear_params(rng, 4, 5, dt), {"type": "silu"},
                                 linear_params(rng, 4, 4, dt, bias=False),
                                 {"type": "softmax", "dim": 1}],
                    grad_output=rand(rng, (2, 3, 4), dt, -1, 1),
                    desc="3-D: Linear -> SiLU -> Linear(no bias) -> Softmax(dim=1), "
                         "grad_output.")
    both("stack_3d_silu_softmax_dim1", s3d, tags=["stack", "3d", "grad_output"])

    def mixed(rng, dt):
        x = rand(rng, (4, 6), dt, -2, 2)
        return dict(x=x, layers=[linear_params(rng, 6, 6, dt),
                                 {"type": "elu", "alpha": 1.5},
                                 linear_params(rng, 5, 6, dt),
                                 {"type": "softplus", "beta": 2.0, "threshold": 4.0},
                                 linear_params(rng, 4, 5, dt),
                                 {"type": "hardtanh", "min_val": -0.5, "max_val": 0.5},
                                 linear_params(rng, 2, 4, dt)],
                    loss=dict(type="smooth_l1", target=rand(rng, (4, 2), dt), reduction="mean",
                              beta=0.5),
                    desc="Linear -> ELU(1.5) -> Linear -> Softplus(2, 4) -> Linear -> "
                         "Hardtanh(-0.5, 0.5) -> Linear, smooth_l1(mean, beta 0.5).")
    both("stack_mixed_smooth_l1", mixed, tags=["stack", "smooth_l1"])

    def simple(rng, dt):
        x = rand(rng, (4, 10), dt, -2, 2)
        return dict(x=x, layers=[linear_params(rng, 5, 10, dt), {"type": "relu"}],
                    grad_output=rand(rng, (4, 5), dt, -1, 1),
                    desc="the guide's SimpleNN: Linear(10,5) + ReLU.")
    both("stack_simple_nn", simple, tags=["stack", "simple_nn"])


# ---------------------------------------------------------------- extensions
def gen_ext():
    def mlp(rng, dt, n=5, huge=False):
        x = rand(rng, (n, 6), dt, -2, 2)
        L1 = linear_params(rng, 5, 6, dt)
        if huge:
            L1["weight"] = as_dt(L1["weight"] * 40.0, dt)
        return x, [L1, {"type": "prelu", "weight": as_dt([0.2], dt)},
                   linear_params(rng, 3, 5, dt), {"type": "relu"},
                   linear_params(rng, 4, 3, dt, bias=False)]

    for max_norm, tag in ((0.5, "clipped"), (1e6, "not_needed")):
        def c1(rng, dt, max_norm=max_norm):
            x, layers = mlp(rng, dt)
            return dict(x=x, layers=layers,
                        loss=dict(type="cross_entropy", target=np.array([0, 3, 1, 2, 0]),
                                  reduction="sum"),
                        ext={"clip_grad_norm": max_norm},
                        desc="clip_grad_norm_(params, %g) after cross_entropy(sum); "
                             "expected.grad_params are clipped, total_norm is before clipping; "
                             "torch scales by min(1, max_norm/(total+1e-6)); grad_input is not "
                             "clipped." % max_norm)
        both("clip_ce_%s" % tag, c1, tags=["clip_grad_norm", tag])

        def c2(rng, dt, max_norm=max_norm):
            x, layers = mlp(rng, dt, huge=True)
            return dict(x=x, layers=layers, grad_output=rand(rng, (5, 4), dt, -1, 1),
                        ext={"clip_grad_norm": max_norm},
                        desc="clip_grad_norm_(params, %g) after grad_output on a net with "
                             "large first-layer weights (an exploding gradient)." % max_norm)
        both("clip_grad_output_%s" % tag, c2, tags=["clip_grad_norm", tag])

    def c3(rng, dt):
        x, layers = mlp(rng, dt)
        return dict(x=x, layers=layers, loss=dict(type="mse", target=rand(rng, (5, 4), dt),
                                                  reduction="mean"),
                    ext={"clip_grad_norm": 1.0},
                    desc="clip_grad_norm_(params, 1.0) after mse(mean).")
    both("clip_mse_max1", c3, tags=["clip_grad_norm"])

    def gsum(rng, dt):
        x, layers = mlp(rng, dt)
        return dict(x=x, layers=layers, ext={"gradients": True},
                    desc="gradients: true without grad_output/loss = output.sum().backward().")
    both("gradients_sum", gsum, tags=["gradients"])

    def stats(rng, dt):
        x = rand(rng, (6, 8), dt, -2, 2)
        L1 = linear_params(rng, 6, 8, dt)
        L1["bias"][1] = -50.0
        L1["bias"][4] = -60.0
        L1["weight"][2, :] = 0.0
        L1["bias"][2] = 0.0
        L2 = linear_params(rng, 3, 6, dt)
        return dict(x=x, layers=[L1, {"type": "relu"}, L2],
                    loss=dict(type="mse", target=rand(rng, (6, 3), dt), reduction="sum"),
                    ext={"stats": True},
                    desc="stats: per layer, zero_fraction (exactly-zero outputs / outputs), "
                         "dead_units (indices along the last dim zero for every sample; -0.0 "
                         "counts as zero), and the 2-norm of the weight and bias gradients "
                         "(null for layers without them).")
    both("stats_dead_units", stats, tags=["stats", "dying_relu"])

    def stats_fwd(rng, dt):
        x = scatter(rng, rand(rng, (4, 5), dt, -2, 2), [0.0, -0.0])
        return dict(x=x, layers=[{"type": "relu"}, {"type": "prelu", "weight": as_dt([0.0], dt)}],
                    ext={"stats": True},
                    desc="stats on a forward-only pass: no gradient norms.")
    both("stats_forward_only", stats_fwd, tags=["stats", "forward_only"])

    def ce1d(rng, dt):
        x = rand(rng, (6,), dt, -2, 2)
        return dict(x=x, layers=[linear_params(rng, 4, 6, dt)],
                    loss=dict(type="cross_entropy", target=np.array(2), reduction="mean"),
                    ext={"note": "1-D cross_entropy: output [C], target a scalar class index "
                                 "(shape [])."},
                    desc="cross_entropy on a 1-D output [C] with a 0-d target.")
    both("loss_cross_entropy_1d", ce1d, tags=["loss", "cross_entropy", "1d"])

    def sl0(rng, dt):
        x = as_dt([0.0, -0.0, 1.0, -2.0, 0.5, 3.0], dt)
        tgt = as_dt([0.0, 0.0, 1.0, 0.0, 1.0, -1.0], dt)
        return dict(x=x, layers=[{"type": "relu"}],
                    loss=dict(type="smooth_l1", target=tgt, reduction="sum", beta=0.0),
                    ext={"note": "smooth_l1 with beta=0 (torch: the l1 loss), where torch's "
                                 "backward gives -1 (not 0) at d == 0."},
                    desc="smooth_l1(sum, beta=0): forward is l1; the derivative at d == 0 is "
                         "-1 in torch 1.13 (x <= -beta branch first).")
    both("loss_smooth_l1_beta0", sl0, tags=["loss", "smooth_l1", "kink", "beta0"])


# ---------------------------------------------------------------- main
def main():
    gen_activations()
    gen_prelu()
    gen_softmax()
    gen_linear()
    gen_losses()
    gen_stacks()
    gen_ext()

    for d in (OUT_MAIN, OUT_EXT):
        if os.path.isdir(d):
            shutil.rmtree(d)
        os.makedirs(d)
    names = set()
    counts = {}
    total = 0
    for folder, doc in CASES:
        assert doc["name"] not in names, doc["name"]
        names.add(doc["name"])
        text = dumps(doc) + "\n"
        json.loads(text)  # must parse
        path = os.path.join(OUT_MAIN if folder == "main" else OUT_EXT, doc["name"] + ".json")
        with open(path, "w") as f:
            f.write(text)
        total += len(text)
        cat = doc["tags"][0] if doc["tags"] else "other"
        key = (folder, cat, doc["dtype"])
        counts[key] = counts.get(key, 0) + 1

    print("golden: %d cases, %d bytes" % (len(CASES), total))
    for (folder, cat, dt), n in sorted(counts.items()):
        print("  %-5s %-16s %-8s %3d" % (folder, cat, dt, n))


if __name__ == "__main__":
    sys.exit(main())
