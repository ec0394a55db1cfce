"""PyTorch side of `make bench` (training steps): an MLP trained with Adam, step by step.

Serves bench/bench_train.c over stdin/stdout so the two alternate run by run (same-run
ratios on a machine whose load changes). The net is Linear+ReLU, Linear+ReLU, Linear
(--sizes, default 784,256,256,10), loss cross_entropy (mean), Adam (--lr, default betas),
batches of --batch consecutive rows of the data, cycled through in order as relud's trainer
does without shuffle. With --data FILE the initial weights and the data come from FILE
(float32 W1 b1 W2 b2 W3 b3, x [rows, in], then int64 classes [rows]), as bench_train.c
writes it, so both start from the same numbers; else they are random.

Prints `ready threads <n> version <v>`, then for each input line
  `run N`    N training steps (zero_grad, forward, loss, backward, optimizer.step):
             prints `ms <elapsed>`
  `losses N` N steps, printing `losses <l1> <l2> ...` (the sanity check: run first)
"""
import argparse
import sys
import time

import torch
import torch.nn.functional as F


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rows", type=int, default=640)
    ap.add_argument("--sizes", default="784,256,256,10")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--data", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    s = [int(v) for v in a.sizes.split(",")]
    layers = []
    for i in range(len(s) - 1):
        layers.append(torch.nn.Linear(s[i], s[i + 1]))
        if i < len(s) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    if a.data:
        with open(a.data, "rb") as f:
            buf = bytearray(f.read())
        at = 0

        def take(n, dtype, size):
            nonlocal at
            t = torch.frombuffer(buf, dtype=dtype, count=n, offset=at).clone()
            at += n * size
            return t

        with torch.no_grad():
            for m in linears:
                m.weight.copy_(take(m.weight.numel(), torch.float32, 4).view_as(m.weight))
                m.bias.copy_(take(m.bias.numel(), torch.float32, 4))
        x = take(a.rows * s[0], torch.float32, 4).view(a.rows, s[0])
        y = take(a.rows, torch.int64, 8)
        assert at == len(buf), f"{a.data}: {len(buf)} bytes, expected {at}"
    else:
        x = torch.rand(a.rows, s[0])
        y = torch.randint(0, s[-1], (a.rows,))
    opt = torch.optim.Adam(net.parameters(), lr=a.lr)
    nb = (a.rows + a.batch - 1) // a.batch
    batches = [(x[k * a.batch:(k + 1) * a.batch], y[k * a.batch:(k + 1) * a.batch])
               for k in range(nb)]
    pos = 0

    def step():
        nonlocal pos
        xb, yb = batches[pos]
        pos = (pos + 1) % nb
        opt.zero_grad()
        loss = F.cross_entropy(net(xb), yb)
        loss.backward()
        opt.step()
        return loss

    print(f"ready threads {torch.get_num_threads()} version {torch.__version__}", flush=True)
    for line in sys.stdin:
        w = line.split()
        if len(w) != 2:
            continue
        n = int(w[1])
        if w[0] == "losses":
            ls = [step().item() for _ in range(n)]
            print("losses " + " ".join(f"{v:.9g}" for v in ls), flush=True)
        elif w[0] == "run":
            t0 = time.perf_counter()
            for _ in range(n):
                step()
            t1 = time.perf_counter()
            print(f"ms {(t1 - t0) * 1e3:.4f}", flush=True)


if __name__ == "__main__":
    main()
