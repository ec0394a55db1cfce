#!/usr/bin/python3
"""Golden training runs computed by PyTorch (Debian's python3-torch 1.13).

    /usr/bin/python3 tools/gen_train_golden.py

Writes tests/golden/train/<name>.json (and tests/golden/lr_schedules.json: every
scheduler's learning rates over 30 steps, reduce_on_plateau on a noisy curve): a small model, a train body (exactly what
POST /v1/models/{name}/train takes, data included) and what torch does with it step by
step: after every optimizer step the loss, the learning rate the step used, the gradient
norm clip_grad_norm_ returned and whether it clipped, the per-layer diagnostics (weight
gradient norm before clipping, zero fraction and dead units of the layer's output on the
batch), every parameter after the step, and at an epoch's end the epoch's mean loss, the
validation loss and whether early stopping ended the run.

Coverage: every optimizer variant (SGD plain, with momentum + dampening + weight decay,
Nesterov; Adam, Adam with amsgrad + weight decay + betas + eps; AdamW, AdamW with amsgrad)
x every scheduler (none, StepLR, MultiStepLR with a repeated milestone, ExponentialLR,
CosineAnnealingLR stepped per step across its restart, ReduceLROnPlateau on val_loss)
x clipping (none, max_norm 0.5), rotating four small nets and losses; plus cases for
shuffle, "steps", early stopping, ReduceLROnPlateau per step / max mode / abs threshold /
cooldown, maximize, sum reductions, nll, and clipping that never triggers. Each case in
float32 and float64 (<name>_f64).

Method, as tests/golden/gen.py: float32 cases hold float32 values; torch runs the whole
loop in float64 on exactly those values, results rounded to float32 when written. The same
loop run natively in float32 (what a float32 implementation does) must stay within a tenth
of the tolerance of that reference on every number, or the generator fails: the
tolerance is then attainable by any correct float32 implementation whatever its BLAS
kernel. With "shuffle": true the batch order is relud's (core/train.h: SplitMix64 and
Fisher-Yates), implemented below. Deterministic: re-running gives byte-identical files.
"""
import json
import math
import os
import shutil
import sys
import zlib

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "golden"))
import gen as G  # noqa: E402  (number formatting, tensors, layer JSON)

OUT = os.path.join(ROOT, "tests", "golden", "train")
SEED = 20261129
MARGIN = 0.1  # native float32 vs the float64 reference, as a fraction of the tolerance
TOL = {"float32": (1e-4, 1e-5), "float64": (1e-10, 1e-12)}
MASK64 = (1 << 64) - 1


# ---------------------------------------------------------------- relud's shuffle
def splitmix64(state):
    state = (state + 0x9E3779B97F4A7C15) & MASK64
    z = state
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return state, z ^ (z >> 31)


def shuffled(n, state):
    """One epoch's order: Fisher-Yates over 0..n-1, unbiased draws (core/train.h)."""
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        m = i + 1
        threshold = (1 << 64) % m
        while True:
            state, r = splitmix64(state)
            if r >= threshold:
                break
        j = r % m
        order[i], order[j] = order[j], order[i]
    return order, state


# ---------------------------------------------------------------- nets and data
def lin(rng, out_f, in_f, dt, bias=True):
    return G.linear_params(rng, out_f, in_f, dt, bias)


def net_mlp_ce(rng, dt):
    layers = [lin(rng, 6, 4, dt), {"type": "relu"}, lin(rng, 3, 6, dt)]
    return layers, 4, {"type": "cross_entropy"}, 3


def net_tanh_mse(rng, dt):
    layers = [lin(rng, 5, 3, dt), {"type": "tanh"}, lin(rng, 2, 5, dt)]
    return layers, 3, {"type": "mse"}, None


def net_prelu_huber(rng, dt):
    w = G.as_dt([0.25, -0.1, 0.5, 0.0, 1.5], dt)
    layers = [lin(rng, 5, 4, dt), {"type": "prelu", "weight": w}, lin(rng, 2, 5, dt)]
    return layers, 4, {"type": "huber", "delta": 0.5, "reduction": "sum"}, None


def net_leaky_bce(rng, dt):
    layers = [lin(rng, 4, 5, dt), {"type": "leaky_relu", "negative_slope": 0.1},
              lin(rng, 3, 4, dt)]
    return layers, 5, {"type": "bce_with_logits"}, "binary"


def net_nll(rng, dt):
    layers = [lin(rng, 5, 4, dt), {"type": "elu", "alpha": 1.0}, lin(rng, 3, 5, dt),
              {"type": "log_softmax", "dim": -1}]
    return layers, 4, {"type": "nll", "reduction": "sum"}, 3


def net_smooth_l1(rng, dt):
    layers = [lin(rng, 4, 3, dt), {"type": "silu"}, lin(rng, 2, 4, dt, bias=False)]
    return layers, 3, {"type": "smooth_l1", "beta": 0.5}, None


NETS = [net_mlp_ce, net_tanh_mse, net_prelu_huber, net_leaky_bce]


def make_data(rng, n, in_f, out_f, classes, dt):
    x = G.rand(rng, (n, in_f), dt, -2.0, 2.0)
    if classes == "binary":
        y = rng.integers(0, 2, size=(n, out_f)).astype(np.float64)
    elif classes:
        y = rng.integers(0, classes, size=(n,)).astype(np.int64)
    else:
        y = G.rand(rng, (n, out_f), dt, -1.5, 1.5)
    return x, y


def out_features(layers):
    for L in reversed(layers):
        if L["type"] == "linear":
            return np.shape(L["weight"])[0]
    raise ValueError("no linear layer")


# ---------------------------------------------------------------- torch
def tt(a, tdt):
    return torch.tensor(np.asarray(a, dtype=np.float64), dtype=tdt)


class Net:
    def __init__(self, layers, tdt):
        self.layers = layers
        self.params = []  # per layer: {"weight": t, "bias": t}
        for L in layers:
            p = {}
            if L["type"] in ("linear", "prelu"):
                p["weight"] = tt(L["weight"], tdt).requires_grad_(True)
                if L["type"] == "linear" and L["bias"] is not None:
                    p["bias"] = tt(L["bias"], tdt).requires_grad_(True)
            self.params.append(p)

    def flat(self):
        return [p[k] for p in self.params for k in ("weight", "bias") if k in p]

    def forward(self, x):
        acts = []
        h = x
        for L, p in zip(self.layers, self.params):
            t = L["type"]
            if t == "linear":
                h = F.linear(h, p["weight"], p.get("bias"))
            elif t == "prelu":
                h = F.prelu(h, p["weight"])
            elif t == "relu":
                h = F.relu(h)
            elif t == "tanh":
                h = torch.tanh(h)
            elif t == "leaky_relu":
                h = F.leaky_relu(h, L["negative_slope"])
            elif t == "elu":
                h = F.elu(h, L["alpha"])
            elif t == "silu":
                h = F.silu(h)
            elif t == "log_softmax":
                h = F.log_softmax(h, dim=L["dim"])
            else:
                raise KeyError(t)
            acts.append(h)
        return h, acts


def loss_fn(spec, out, y):
    t, red = spec["type"], spec.get("reduction", "mean")
    if t == "cross_entropy":
        return F.cross_entropy(out, y, reduction=red)
    if t == "nll":
        return F.nll_loss(out, y, reduction=red)
    if t == "mse":
        return F.mse_loss(out, y, reduction=red)
    if t == "huber":
        return F.huber_loss(out, y, reduction=red, delta=spec.get("delta", 1.0))
    if t == "smooth_l1":
        return F.smooth_l1_loss(out, y, reduction=red, beta=spec.get("beta", 1.0))
    if t == "bce_with_logits":
        return F.binary_cross_entropy_with_logits(out, y, reduction=red)
    raise KeyError(t)


def make_opt(params, o):
    kw = {k: v for k, v in o.items() if k != "type"}
    if "betas" in kw:
        kw["betas"] = tuple(kw["betas"])
    cls = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[o["type"]]
    return cls(params, **kw)


def make_sched(opt, s):
    if not s:
        return None
    kw = {k: v for k, v in s.items() if k not in ("type", "monitor")}
    cls = {"step": torch.optim.lr_scheduler.StepLR,
           "multistep": torch.optim.lr_scheduler.MultiStepLR,
           "exponential": torch.optim.lr_scheduler.ExponentialLR,
           "cosine": torch.optim.lr_scheduler.CosineAnnealingLR,
           "reduce_on_plateau": torch.optim.lr_scheduler.ReduceLROnPlateau}[s["type"]]
    return cls(opt, **kw)


def run(case, tdt):
    """The loop of core/train.h in torch; returns the per-step records."""
    tr = case["train"]
    net = Net(case["layers"], tdt)
    params = net.flat()
    ydt = torch.int64 if case["classes"] not in (None, "binary") else tdt
    X, Y = tt(case["x"], tdt), torch.tensor(case["y"], dtype=ydt) if ydt == torch.int64 else tt(case["y"], tdt)
    val = case.get("val")
    if val is not None:
        VX = tt(val[0], tdt)
        VY = torch.tensor(val[1], dtype=ydt) if ydt == torch.int64 else tt(val[1], tdt)
    opt = make_opt(params, tr["optimizer"])
    sspec = tr.get("lr_scheduler")
    sched = make_sched(opt, sspec)
    plateau = sspec is not None and sspec["type"] == "reduce_on_plateau"
    per_step = tr.get("scheduler_interval", "epoch") == "step"
    has_val = val is not None
    sched_mon = (sspec or {}).get("monitor", "val_loss" if has_val else "loss")
    es = tr.get("early_stopping")
    es_mon = (es or {}).get("monitor", "val_loss" if has_val else "loss")
    clip = tr.get("clip_grad_norm", 0) or 0
    n = X.shape[0]
    bs = min(tr.get("batch_size", 1), n)
    spe = (n + bs - 1) // bs
    total = tr["steps"] if "steps" in tr else tr.get("epochs", 1) * spe
    state = tr.get("seed", 0)
    order = list(range(n))
    step = pos = 0
    esum = 0.0
    best, wait, stopped = math.inf, 0, False
    recs = []
    while step < total and not stopped:
        if pos == 0 and tr.get("shuffle", False):
            order, state = shuffled(n, state)
        idx = torch.tensor(order[pos * bs:pos * bs + bs], dtype=torch.int64)
        opt.zero_grad()
        out, acts = net.forward(X[idx])
        loss = loss_fn(case["loss"], out, Y[idx])
        loss.backward()
        stats = []
        for L, p, a in zip(case["layers"], net.params, acts):
            a2 = a.detach().reshape(-1, a.shape[-1])
            zero = (a2 == 0)
            stats.append({
                "weight_grad_norm": float(p["weight"].grad.norm()) if "weight" in p else None,
                "zero_fraction": float(zero.double().mean()),
                "dead_units": int(zero.all(dim=0).sum()),
            })
        norm = float(torch.nn.utils.clip_grad_norm_(params, clip if clip else math.inf))
        clipped = bool(clip) and clip / (norm + 1e-6) < 1
        lr = opt.param_groups[0]["lr"]
        opt.step()
        step += 1
        pos += 1
        lv = float(loss)
        esum += lv
        if sched is not None and per_step:
            sched.step(lv) if plateau else sched.step()
        rec = {"step": step, "epoch": (step - 1) // spe + 1, "loss": lv, "lr": lr,
               "grad_norm": norm, "clipped": clipped, "stats": stats,
               "params": [{k: v.detach().numpy().copy() for k, v in p.items()} for p in net.params],
               "epoch_end": False}
        if pos == spe:
            pos = 0
            rec["epoch_end"] = True
            rec["epoch_loss"] = esum / spe
            esum = 0.0
            if has_val:
                with torch.no_grad():
                    vout, _ = net.forward(VX)
                    rec["val_loss"] = float(loss_fn(case["loss"], vout, VY))
            if sched is not None and not per_step:
                if plateau:
                    sched.step(rec["val_loss"] if sched_mon == "val_loss" else rec["epoch_loss"])
                else:
                    sched.step()
            if es:
                v = rec["val_loss"] if es_mon == "val_loss" else rec["epoch_loss"]
                if v < best - es.get("min_delta", 0):
                    best, wait = v, 0
                else:
                    wait += 1
                    if wait >= es.get("patience", 3):
                        stopped = True
            rec["stop"] = stopped
        recs.append(rec)
    return recs, total


# ---------------------------------------------------------------- comparing and writing
def ratio(a, e, dt):
    rtol, atol = TOL[dt]
    a = np.asarray(a, dtype=np.float64)
    e = np.asarray(e, dtype=np.float64)
    return float(np.max(np.abs(a - e) / (atol + rtol * np.abs(e)))) if e.size else 0.0


def margin(ref, nat, dt):
    """The worst difference of the native float32 run from the reference, as a fraction of
    the tolerance; discrete values must agree."""
    if len(ref) != len(nat):
        return math.inf
    worst = 0.0
    r32 = (lambda v: np.float32(v)) if dt == "float32" else (lambda v: v)
    for a, b in zip(nat, ref):
        for k in ("loss", "grad_norm", "epoch_loss", "val_loss"):
            if k in b:
                worst = max(worst, ratio(a[k], r32(b[k]), dt))
        if a["clipped"] != b["clipped"] or a.get("stop") != b.get("stop") or a["lr"] != b["lr"]:
            return math.inf
        for sa, sb in zip(a["stats"], b["stats"]):
            if sa["dead_units"] != sb["dead_units"] or abs(sa["zero_fraction"] - sb["zero_fraction"]) > 1e-12:
                return math.inf
            if sb["weight_grad_norm"] is not None:
                worst = max(worst, ratio(sa["weight_grad_norm"], r32(sb["weight_grad_norm"]), dt))
        for pa, pb in zip(a["params"], b["params"]):
            for k in pb:
                worst = max(worst, ratio(pa[k], pb[k].astype(np.float32) if dt == "float32" else pb[k], dt))
    return worst


def num(v, dt):
    return G.num(v, dt)


def tensor_or_ints(a, dt, classes):
    if classes not in (None, "binary"):
        return G.tjson(a, dt, integer=True)
    return G.tjson(a, dt)


def write_case(name, dt, case, recs, total, mg):
    rtol, atol = TOL[dt]
    layers = [G.layer_json(L, dt) for L in case["layers"]]
    body = dict(case["train"])
    body["loss"] = case["loss"]
    body["input"] = G.tjson(case["x"], dt)
    body["target"] = tensor_or_ints(case["y"], dt, case["classes"])
    if case.get("val") is not None:
        body["validation"] = {"input": G.tjson(case["val"][0], dt),
                              "target": tensor_or_ints(case["val"][1], dt, case["classes"])}
    steps = []
    for r in recs:
        s = {"step": r["step"], "epoch": r["epoch"], "loss": num(r["loss"], dt),
             "lr": G.Raw(G.fmt64(r["lr"])), "grad_norm": num(r["grad_norm"], dt),
             "clipped": r["clipped"], "epoch_end": r["epoch_end"]}
        if r["epoch_end"]:
            s["epoch_loss"] = num(r["epoch_loss"], dt)
            s["val_loss"] = num(r["val_loss"], dt) if "val_loss" in r else None
            s["stop"] = r["stop"]
        s["stats"] = [{"weight_grad_norm": num(x["weight_grad_norm"], dt)
                       if x["weight_grad_norm"] is not None else None,
                       "zero_fraction": G.Raw(G.fmt64(x["zero_fraction"])),
                       "dead_units": x["dead_units"]} for x in r["stats"]]
        s["params"] = [{k: G.tjson(v, dt) for k, v in p.items()} for p in r["params"]]
        steps.append(s)
    doc = {
        "name": name,
        "dtype": dt,
        "description": case["desc"],
        "generator": "tools/gen_train_golden.py (torch %s, the loop in float64)" % torch.__version__,
        "model": {"dtype": dt, "layers": layers},
        "train": body,
        "expected": {"total_steps": total, "steps": steps},
        "tolerance": {"rtol": rtol, "atol": atol, "float32_native_margin": float("%.2g" % mg),
                      "rule": "elementwise |actual - expected| <= atol + rtol * |expected|"},
    }
    text = G.dumps(doc) + "\n"
    json.loads(text)
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        f.write(text)
    return len(text)


CASES = []


def case(name, build, desc):
    CASES.append((name, build, desc))


def build_case(name, build, dt):
    rng = np.random.default_rng([SEED, zlib.crc32(name.encode())])
    c = build(rng, dt)
    layers, in_f, loss, classes = c["net"](rng, dt)
    n = c.get("n", 7)
    x, y = make_data(rng, n, in_f, out_features(layers), classes, dt)
    case = {"layers": layers, "loss": dict(loss, **c.get("loss", {})), "classes": classes,
            "x": x, "y": y, "train": c["train"]}
    if c.get("val"):
        case["val"] = make_data(rng, 5, in_f, out_features(layers), classes, dt)
    return case


# ---------------------------------------------------------------- the cases
OPTIMS = [
    ("sgd", {"type": "sgd", "lr": 0.1}),
    ("sgdmom", {"type": "sgd", "lr": 0.05, "momentum": 0.9, "dampening": 0.1, "weight_decay": 0.01}),
    ("nesterov", {"type": "sgd", "lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.001}),
    ("adam", {"type": "adam", "lr": 0.01}),
    ("amsgrad", {"type": "adam", "lr": 0.02, "betas": [0.8, 0.99], "eps": 1e-6, "weight_decay": 0.01,
                 "amsgrad": True}),
    ("adamw", {"type": "adamw", "lr": 0.01}),
    ("adamwams", {"type": "adamw", "lr": 0.01, "weight_decay": 0.1, "amsgrad": True}),
]
SCHEDS = [
    ("const", None, "epoch"),
    ("step", {"type": "step", "step_size": 1, "gamma": 0.5}, "epoch"),
    ("multistep", {"type": "multistep", "milestones": [1, 2, 2], "gamma": 0.5}, "epoch"),
    ("exp", {"type": "exponential", "gamma": 0.8}, "epoch"),
    ("cosine", {"type": "cosine", "T_max": 3, "eta_min": 0.001}, "step"),
    ("plateau", {"type": "reduce_on_plateau", "factor": 0.5, "patience": 0, "threshold": 0.1}, "epoch"),
]
CLIPS = [("noclip", 0), ("clip", 0.5)]


def gen_grid():
    k = 0
    for oname, o in OPTIMS:
        for sname, s, interval in SCHEDS:
            for cname, clip in CLIPS:
                net = NETS[k % len(NETS)]
                k += 1

                def b(rng, dt, o=o, s=s, interval=interval, clip=clip, net=net):
                    train = {"optimizer": dict(o), "batch_size": 3, "epochs": 3}
                    if s:
                        train["lr_scheduler"] = dict(s)
                        train["scheduler_interval"] = interval
                    if clip:
                        train["clip_grad_norm"] = clip
                    return {"net": net, "train": train, "val": s is not None and s["type"] == "reduce_on_plateau"}
                case("tr_%s_%s_%s" % (oname, sname, cname), b,
                     "%s with %s (%s) and %s on %s: 7 rows, batches of 3 (the last of 1), 3 epochs"
                     % (oname, sname, interval, cname, net.__name__[4:]))


def gen_extra():
    def shuffle(rng, dt):
        return {"net": net_mlp_ce, "n": 7, "val": True,
                "train": {"optimizer": {"type": "adam", "lr": 0.05}, "batch_size": 2, "epochs": 3,
                          "shuffle": True, "seed": 7,
                          "lr_scheduler": {"type": "step", "step_size": 2, "gamma": 0.1}}}
    case("tr_shuffle", shuffle, "relud's shuffle (seed 7), 4 batches an epoch (the last of 1), StepLR(2)")

    def steps(rng, dt):
        return {"net": net_tanh_mse, "n": 7,
                "train": {"optimizer": {"type": "sgd", "lr": 0.1, "momentum": 0.5}, "batch_size": 3,
                          "steps": 8, "lr_scheduler": {"type": "exponential", "gamma": 0.5}}}
    case("tr_steps", steps, "\"steps\": 8 with 3 batches an epoch: 2 epoch ends and 2 steps more")

    def early(rng, dt):
        return {"net": net_tanh_mse, "n": 8, "val": True,
                "train": {"optimizer": {"type": "sgd", "lr": 0.6, "momentum": 0.9}, "batch_size": 4,
                          "epochs": 12, "early_stopping": {"patience": 2, "min_delta": 0.001}}}
    case("tr_early_stop_val", early, "early stopping on val_loss (patience 2, min_delta 0.001)")

    def early_loss(rng, dt):
        return {"net": net_leaky_bce, "n": 6,
                "train": {"optimizer": {"type": "adam", "lr": 0.3}, "batch_size": 6, "epochs": 15,
                          "early_stopping": {"patience": 1, "monitor": "loss"}}}
    case("tr_early_stop_loss", early_loss, "early stopping on the epoch's loss (patience 1)")

    def plateau_step(rng, dt):
        return {"net": net_prelu_huber, "n": 8,
                "train": {"optimizer": {"type": "sgd", "lr": 0.05}, "batch_size": 2, "epochs": 3,
                          "scheduler_interval": "step",
                          "lr_scheduler": {"type": "reduce_on_plateau", "factor": 0.5, "patience": 1,
                                           "threshold": 0.05, "threshold_mode": "abs", "cooldown": 1}}}
    case("tr_plateau_step_abs", plateau_step,
         "ReduceLROnPlateau per step on the step loss: abs threshold, patience 1, cooldown 1")

    def plateau_max(rng, dt):
        return {"net": net_mlp_ce, "n": 7, "val": True,
                "train": {"optimizer": {"type": "adamw", "lr": 0.02}, "batch_size": 7, "epochs": 6,
                          "lr_scheduler": {"type": "reduce_on_plateau", "mode": "max", "factor": 0.3,
                                           "patience": 1, "min_lr": 0.004, "monitor": "loss"}}}
    case("tr_plateau_max_minlr", plateau_max,
         "ReduceLROnPlateau in max mode on the epoch's loss, down to min_lr")

    def maximize(rng, dt):
        return {"net": net_smooth_l1, "n": 6, "loss": {"reduction": "sum"},
                "train": {"optimizer": {"type": "sgd", "lr": 0.01, "momentum": 0.3, "maximize": True},
                          "batch_size": 4, "epochs": 2}}
    case("tr_sgd_maximize", maximize, "SGD with maximize (gradient ascent) on smooth_l1 (sum)")

    def maximize_adam(rng, dt):
        return {"net": net_nll, "n": 6,
                "train": {"optimizer": {"type": "adam", "lr": 0.01, "maximize": True}, "batch_size": 4,
                          "epochs": 2, "clip_grad_norm": 1.0}}
    case("tr_adam_maximize_nll", maximize_adam, "Adam with maximize on log_softmax + nll (sum), clipped")

    def clip_idle(rng, dt):
        return {"net": net_mlp_ce, "n": 7,
                "train": {"optimizer": {"type": "adam", "lr": 0.01}, "batch_size": 3, "epochs": 2,
                          "clip_grad_norm": 100.0}}
    case("tr_clip_not_needed", clip_idle, "clip_grad_norm 100: the norm is returned, nothing scaled")

    def multistep_step(rng, dt):
        return {"net": net_leaky_bce, "n": 7,
                "train": {"optimizer": {"type": "sgd", "lr": 0.2, "nesterov": True, "momentum": 0.5},
                          "batch_size": 2, "epochs": 2, "scheduler_interval": "step",
                          "lr_scheduler": {"type": "multistep", "milestones": [2, 5, 5, 7], "gamma": 0.7}}}
    case("tr_multistep_per_step", multistep_step, "MultiStepLR stepped per step, a milestone twice")


# ---------------------------------------------------------------- scheduler sequences
SCHED_SEQS = [
    ("step_3_0.5", {"type": "step", "step_size": 3, "gamma": 0.5}, 0.1),
    ("step_1_default", {"type": "step", "step_size": 1}, 1.0),
    ("multistep_repeats", {"type": "multistep", "milestones": [2, 5, 5, 9, 9, 9], "gamma": 0.3}, 0.5),
    ("multistep_unsorted", {"type": "multistep", "milestones": [7, 0, 3]}, 2.0),
    ("exponential_0.9", {"type": "exponential", "gamma": 0.9}, 0.05),
    ("exponential_1.1", {"type": "exponential", "gamma": 1.1}, 1e-3),
    ("cosine_t1", {"type": "cosine", "T_max": 1}, 0.1),
    ("cosine_t4_eta", {"type": "cosine", "T_max": 4, "eta_min": 0.01}, 0.1),
    ("cosine_t7", {"type": "cosine", "T_max": 7, "eta_min": 1e-4}, 3.0),
    ("plateau_default", {"type": "reduce_on_plateau"}, 0.1),
    ("plateau_min_rel", {"type": "reduce_on_plateau", "patience": 2, "factor": 0.5}, 0.1),
    ("plateau_min_abs_cooldown", {"type": "reduce_on_plateau", "patience": 1, "threshold": 0.05,
                                  "threshold_mode": "abs", "cooldown": 2, "factor": 0.2}, 1.0),
    ("plateau_max_rel", {"type": "reduce_on_plateau", "mode": "max", "patience": 0, "threshold": 0.01}, 0.3),
    ("plateau_max_abs_minlr", {"type": "reduce_on_plateau", "mode": "max", "threshold_mode": "abs",
                               "patience": 0, "min_lr": 0.05, "factor": 0.5}, 0.4),
    ("plateau_eps", {"type": "reduce_on_plateau", "patience": 0, "factor": 0.5, "eps": 0.01}, 0.1),
]


def gen_sched_seqs(path, steps=30):
    rng = np.random.default_rng([SEED, 17])
    seqs = []
    for name, spec, lr0 in SCHED_SEQS:
        p = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([p], lr=lr0)
        sched = make_sched(opt, spec)
        # a noisy, mostly falling curve with flat stretches and jumps: plateaus to detect
        metrics = [float(v) for v in np.round(2.0 / (1 + np.arange(steps) * 0.3) +
                                              rng.normal(0, 0.08, steps), 3)]
        lrs = [opt.param_groups[0]["lr"]]
        for k in range(steps):
            opt.step()
            if spec["type"] == "reduce_on_plateau":
                sched.step(metrics[k])
            else:
                sched.step()
            lrs.append(opt.param_groups[0]["lr"])
        seqs.append({"name": name, "lr": G.Raw(G.fmt64(lr0)), "lr_scheduler": spec,
                     "metrics": [G.Raw(G.fmt64(m)) for m in metrics],
                     "lrs": [G.Raw(G.fmt64(v)) for v in lrs]})
    doc = {"description": "learning rates of torch %s's schedulers: lrs[k] is the rate after k "
                          "scheduler.step() calls (reduce_on_plateau: step(metrics[k-1]))"
                          % torch.__version__,
           "generator": "tools/gen_train_golden.py", "sequences": seqs}
    text = G.dumps(doc) + "\n"
    json.loads(text)
    with open(path, "w") as f:
        f.write(text)
    return len(seqs)


def main():
    gen_grid()
    gen_extra()
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)
    total = 0
    worst = (0.0, "")
    for name, build, desc in CASES:
        for dt in ("float32", "float64"):
            full = name if dt == "float32" else name + "_f64"
            c = build_case(name, build, dt)
            c["desc"] = desc
            ref, steps = run(c, torch.float64)
            mg = 0.0
            if dt == "float32":
                nat, _ = run(c, torch.float32)
                mg = margin(ref, nat, dt)
                if mg > MARGIN:
                    raise SystemExit("%s: torch in float32 is %.3g of the tolerance from the float64 "
                                     "reference (over %g): change the case" % (full, mg, MARGIN))
                worst = max(worst, (mg, full))
            total += write_case(full, dt, c, ref, steps, mg)
    nseq = gen_sched_seqs(os.path.join(ROOT, "tests", "golden", "lr_schedules.json"))
    print("train golden: %d cases, %d bytes; worst float32 margin %.3g (%s); %d lr schedules"
          % (2 * len(CASES), total, worst[0], worst[1], nseq))


if __name__ == "__main__":
    sys.exit(main())
