"""PyTorch side of `make bench` (core part): forward + backward of a ReLU MLP.

Prints one line per variant: `torch <variant> median_ms <x> threads <n> version <v>`.
Run by bench/bench_core.c with the same thread count as OpenBLAS there.
"""
import argparse
import statistics
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--sizes", default="1024,4096,1024")
    ap.add_argument("--runs", type=int, default=15)
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
    for variant, want_dx in (("fwd+bwd,with_grad_input", True), ("fwd+bwd,no_grad_input", False)):
        x = torch.randn(a.batch, s[0], requires_grad=want_dx)
        times = []
        for r in range(a.runs + 2):
            net.zero_grad(set_to_none=False)
            if x.grad is not None:
                x.grad = None
            t0 = time.perf_counter()
            y = net(x)
            y.backward(g)
            t1 = time.perf_counter()
            if r >= 2:
                times.append((t1 - t0) * 1e3)
        print(f"torch {variant} median_ms {statistics.median(times):.3f} "
              f"threads {torch.get_num_threads()} version {torch.__version__}", flush=True)


if __name__ == "__main__":
    main()
