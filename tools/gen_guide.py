#!/usr/bin/python3
"""The models and training bodies of docs/guide.md (the guide's lessons run against relud).

    /usr/bin/python3 tools/gen_guide.py

Writes docs/examples/train/<name>.json: models (PUT /v1/models/NAME) initialised as
torch.nn.Linear does (kaiming-uniform, torch.manual_seed), and train bodies (POST
/v1/models/NAME/train) with their data. float64 throughout, so the numbers the guide
prints are the same on every CPU and OpenBLAS kernel to many digits. Deterministic.

The guide's numbers come from relud running these (tests/http/test_docs.c repeats every
example and compares); `tools/gen_guide.py --torch` runs the same jobs in torch and prints
their last losses and dead units, a cross-check of the daemon (the golden files in
tests/golden/train/ are the exact tests).
"""
import json
import math
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "docs", "examples", "train")


def linear(seed_gen, out_f, in_f, scale=1.0):
    lin = torch.nn.Linear(in_f, out_f).double()
    with torch.no_grad():
        lin.weight.mul_(scale)
        lin.bias.mul_(scale)
    return {"type": "linear", "weight": lin.weight.detach().numpy().tolist(),
            "bias": lin.bias.detach().numpy().tolist()}


def model(description, layers):
    return {"description": description, "dtype": "float64", "layers": layers}


def write(name, doc):
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")


def data_regression(rng, n, in_f):
    x = rng.normal(0, 1, size=(n, in_f))
    w = rng.normal(0, 1, size=(in_f,))
    y = np.tanh(x @ w)[:, None] + 0.1 * np.sin(3 * x[:, :1])
    return x.round(4).tolist(), y.round(4).tolist()


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20261129)

    # 1. dying ReLU: the same net with ReLU and with LeakyReLU, a learning rate too high
    torch.manual_seed(0)
    l1, l2 = linear(None, 32, 8), linear(None, 1, 32)
    write("dying_relu", model("Linear(8, 32) -> ReLU -> Linear(32, 1), torch.manual_seed(0)",
                              [l1, {"type": "relu"}, l2]))
    write("dying_leaky", model("The same weights with LeakyReLU(0.01)",
                               [l1, {"type": "leaky_relu", "negative_slope": 0.01}, l2]))
    x, y = data_regression(rng, 64, 8)
    write("dying_high_lr", {"input": x, "target": y, "loss": {"type": "mse"},
                            "optimizer": {"type": "sgd", "lr": 0.6},
                            "batch_size": 64, "epochs": 60})

    # 2. exploding gradients: a deep tanh-free ReLU stack initialised 3x too large
    torch.manual_seed(1)
    layers = []
    for i in range(6):
        layers += [linear(None, 16, 16 if i else 8, scale=3.0), {"type": "relu"}]
    layers.append(linear(None, 1, 16, scale=3.0))
    write("exploding", model("Six Linear(16)+ReLU layers and Linear(16, 1), initialised 3x too "
                             "large (torch.manual_seed(1))", layers))
    x, y = data_regression(rng, 64, 8)
    base = {"input": x, "target": y, "loss": {"type": "mse"},
            "optimizer": {"type": "sgd", "lr": 0.01}, "batch_size": 16, "epochs": 10}
    write("exploding_plain", base)
    write("exploding_clipped", dict(base, clip_grad_norm=1.0))

    # 3. an oscillating loss curve: momentum SGD near its stability limit, then step decay
    torch.manual_seed(2)
    write("oscillating", model("Linear(4, 16) -> Tanh -> Linear(16, 1), torch.manual_seed(2)",
                               [linear(None, 16, 4), {"type": "tanh"}, linear(None, 1, 16)]))
    x, y = data_regression(rng, 48, 4)
    base = {"input": x, "target": y, "loss": {"type": "mse"},
            "optimizer": {"type": "sgd", "lr": 0.5, "momentum": 0.9},
            "batch_size": 48, "epochs": 24}
    write("oscillating_constant", dict(base, save_as="guide_osc_constant"))
    write("oscillating_step", dict(base, save_as="guide_osc_step",
                                   lr_scheduler={"type": "step", "step_size": 6, "gamma": 0.3}))

    # 4. early stopping: few rows, a wide net, validation on held-out rows
    torch.manual_seed(3)
    write("overfit", model("Linear(4, 64) -> ReLU -> Linear(64, 1), torch.manual_seed(3)",
                           [linear(None, 64, 4), {"type": "relu"}, linear(None, 1, 64)]))
    x, y = data_regression(rng, 40, 4)
    yn = (np.array(y) + rng.normal(0, 0.3, size=(40, 1))).round(4).tolist()
    write("overfit_train", {"input": x[:16], "target": yn[:16], "loss": {"type": "mse"},
                            "optimizer": {"type": "adam", "lr": 0.03},
                            "batch_size": 16, "epochs": 200,
                            "validation": {"input": x[16:], "target": y[16:]},
                            "early_stopping": {"patience": 10, "min_delta": 0.0001}})
    # docs/api.md's cancellation example: a long job on the bundled mnist_mlp
    write("long_job", {"input": [[round(float(v), 3) for v in rng.uniform(0, 1, 784)]],
                       "target": [3], "loss": {"type": "cross_entropy"},
                       "optimizer": {"type": "sgd", "lr": 0.001}, "steps": 100000,
                       "save_as": "mnist_long"})
    print("guide examples written to %s" % OUT)
    if "--torch" in sys.argv:
        cross_check()


RUNS = [("dying_relu", "dying_high_lr"), ("dying_leaky", "dying_high_lr"),
        ("exploding", "exploding_plain"), ("exploding", "exploding_clipped"),
        ("oscillating", "oscillating_constant"), ("oscillating", "oscillating_step"),
        ("overfit", "overfit_train")]


def cross_check():
    """The same jobs in torch (the loop of tools/gen_train_golden.py): their losses and the
    hidden layer's dead units, to hold against the guide's."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import gen_train_golden as T
    for mname, bname in RUNS:
        with open(os.path.join(OUT, mname + ".json")) as f:
            m = json.load(f)
        with open(os.path.join(OUT, bname + ".json")) as f:
            b = json.load(f)
        layers = []
        for L in m["layers"]:
            L = dict(L)
            if L["type"] == "linear":
                L["weight"] = np.array(L["weight"])
                L["bias"] = np.array(L["bias"])
            layers.append(L)
        c = {"layers": layers, "loss": b["loss"], "classes": None, "x": np.array(b["input"]),
             "y": np.array(b["target"]),
             "train": {k: v for k, v in b.items() if k not in ("input", "target", "validation",
                                                               "loss", "save_as")}}
        if "validation" in b:
            c["val"] = (np.array(b["validation"]["input"]), np.array(b["validation"]["target"]))
        try:
            recs, _ = T.run(c, torch.float64)
        except Exception as e:  # the exploding run: torch goes on with inf/nan
            print("%-12s %-22s torch raised %s" % (mname, bname, e))
            continue
        finite = [r for r in recs if math.isfinite(r["loss"])]
        print("%-12s %-22s %3d steps, %3d finite, last loss %.6g, dead units %d%s"
              % (mname, bname, len(recs), len(finite), finite[-1]["loss"],
                 recs[-1]["stats"][1]["dead_units"],
                 ", val_loss %.6g, stopped early" % recs[-1]["val_loss"]
                 if recs[-1].get("stop") else ""))


if __name__ == "__main__":
    sys.exit(main())
