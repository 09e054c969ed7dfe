#!/usr/bin/env python3
"""Side-by-side timings of spear and PyTorch on this machine, in one run, at one thread count.

  /usr/bin/python3 bench/compare_torch.py ops [--threads N] [--spear-bench PATH]

`ops`: the per-op cost of recording the autograd graph on 8x8 f32 tensors (the same ops as
`spear-bench ops`): forward without grad, forward with grad, forward + backward. Prints one JSON
object per op with both frameworks' microseconds and the torch/spear ratios (> 1: spear faster).
Needs Debian's python3-torch.
"""
import argparse
import json
import os
import subprocess
import time

import torch

OPS = {
    "add": lambda a, b: a + b,
    "mul": lambda a, b: a * b,
    "exp": lambda a, b: torch.exp(a),
    "matmul": lambda a, b: a @ b,
    "sum": lambda a, b: a.sum(1),
    "softmax": lambda a, b: torch.softmax(a, -1),
    "reshape": lambda a, b: a.reshape(4, 16),
    "transpose": lambda a, b: a.transpose(0, 1),
}


def micros_per_call(fn, calls=2000):
    """Best of several batches, like spear-bench: the least disturbed run."""
    fn()
    best, total, reps = float("inf"), 0.0, 0
    while reps < 3 or total < 0.5:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        dt = time.perf_counter() - t0
        best, total, reps = min(best, dt), total + dt, reps + 1
    return best / calls * 1e6


def torch_ops():
    a = torch.randn(8, 8, requires_grad=True)
    b = torch.randn(8, 8, requires_grad=True)
    rows = {}
    for name, fn in OPS.items():
        def nograd():
            with torch.no_grad():
                fn(a, b)
        grad = torch.ones_like(fn(a, b))
        rows[name] = {
            "fwd_nograd_us": micros_per_call(nograd),
            "fwd_us": micros_per_call(lambda: fn(a, b)),
            "fwd_bwd_us": micros_per_call(lambda: fn(a, b).backward(grad)),
        }
    return rows


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["ops"])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--spear-bench", default=os.path.join(here, "..", "build", "bin", "spear-bench"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = subprocess.run([args.spear_bench, "ops", "--json", "--threads", str(args.threads)],
                         check=True, capture_output=True, text=True).stdout
    spear_rows = {r["op"]: r for r in map(json.loads, out.splitlines())}
    torch_rows = torch_ops()
    for name, t in torch_rows.items():
        s = spear_rows[name]
        row = {"op": name, "threads": args.threads, "torch": torch.__version__}
        for key in ("fwd_nograd_us", "fwd_us", "fwd_bwd_us"):
            row["spear_" + key] = s[key]
            row["torch_" + key] = round(t[key], 2)
            row["ratio_" + key[:-3]] = round(t[key] / s[key], 2)
        print(json.dumps(row))


if __name__ == "__main__":
    main()
