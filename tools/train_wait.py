#!/usr/bin/python3
"""Waits for a relud training job and prints columns of its history (docs/guide.md).

    curl -s -X POST HOST/v1/models/NAME/train ... | python3 tools/train_wait.py HOST [options] COLUMN...

Reads the POST's reply ({"id": ...}) on stdin, polls GET HOST/v1/train/ID until the job is
done, failed or cancelled, and prints one JSON object: its state, steps, stopped_early,
error, and for each COLUMN the list of its values over the history: step, epoch, loss,
val_loss, epoch_loss, lr, grad_norm, clipped, or a layer's dead_units/N,
zero_fraction/N, weight_grad_norm/N (N = the layer's index). Floats are rounded to 6
significant digits. --epochs keeps the entries that end an epoch, --every K every K-th
entry (and the last). Python's standard library only.
"""
import json
import sys
import time
import urllib.request


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    host, args = argv[1], argv[2:]
    epochs, every, cols = False, 1, []
    while args:
        a = args.pop(0)
        if a == "--epochs":
            epochs = True
        elif a == "--every":
            every = int(args.pop(0))
        else:
            cols.append(a)
    posted = json.load(sys.stdin)
    if "id" not in posted:
        print(json.dumps(posted))
        return 1
    url = "http://%s/v1/train/%s" % (host, posted["id"])
    while True:
        with urllib.request.urlopen(url) as f:
            job = json.load(f)
        if job["state"] not in ("queued", "running"):
            break
        time.sleep(0.02)
    hist = job["history"]
    if epochs:
        hist = [h for h in hist if h["epoch_loss"] is not None]
    if every > 1:
        hist = [h for i, h in enumerate(hist) if i % every == 0 or i == len(hist) - 1]

    def value(h, col):
        if "/" in col:
            key, layer = col.split("/")
            v = h["layers"][int(layer)][key]
        else:
            v = h[col]
        return float("%.6g" % v) if isinstance(v, float) else v

    out = {"state": job["state"], "steps": job["step"], "stopped_early": job["stopped_early"]}
    if job["error"]:
        out["error"] = job["error"]
    for c in cols:
        out[c] = [value(h, c) for h in hist]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
