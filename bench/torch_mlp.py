"""PyTorch side of `make bench` (core part): forward + backward of a ReLU MLP.

Serves bench/bench_core.c over stdin/stdout so the two alternate run by run (same-run
ratios on a machine whose load changes): prints `ready threads <n> version <v>`, then
for each input line `run 1` (x requires grad, so grad_input is computed like relud
does) or `run 0` (it is not) does one forward + backward and prints `ms <x>`.
"""
import argparse
import sys
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--sizes", default="1024,4096,1024")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    s = [int(v) for v in a.sizes.split(",")]
    layers = []
    for i in range(len(s) - 1):
        layers.append(torch.nn.Linear(s[i], s[i + 1]))
        layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    g = torch.randn(a.batch, s[-1])
    xs = {want: torch.randn(a.batch, s[0], requires_grad=want) for want in (True, False)}
    for want in (True, False):  # warm up
        net(xs[want]).backward(g)
    print(f"ready threads {torch.get_num_threads()} version {torch.__version__}", flush=True)
    for line in sys.stdin:
        want = line.split()[-1] == "1"
        x = xs[want]
        net.zero_grad(set_to_none=False)
        x.grad = None
        t0 = time.perf_counter()
        net(x).backward(g)
        t1 = time.perf_counter()
        print(f"ms {(t1 - t0) * 1e3:.4f}", flush=True)


if __name__ == "__main__":
    main()
