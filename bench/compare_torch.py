#!/usr/bin/env python3
"""Side-by-side timings of spear and PyTorch on this machine, in one run, at one thread count.

  /usr/bin/python3 bench/compare_torch.py ops|attention|spe [--threads N] [--spear-bench PATH]

`ops`: the per-op cost of recording the autograd graph on 8x8 f32 tensors (the same ops as
`spear-bench ops`): forward without grad, forward with grad, forward + backward.
`attention`: forward + backward of the attention kernel alone (batch 8, 4 heads, width 32) vs N,
the same rows as `spear-bench attention`; PyTorch runs softmax attention and linear attention
written the usual way (einsum; causal as a cumsum of outer products), each (kind, N) in a fresh
process so its peak RSS growth can be measured. spear reports its peak live tensor bytes.
`spe`: SPE (sine, conv; gated) feeding elu+1 linear attention, forward + backward, the rows of
`spear-bench spe`; PyTorch follows the reference formulation: codes of shape (1, N, H, D, R)
shared over the batch (spe_reference.md 2-4), then the filter as an einsum.
Prints one JSON object per row with both frameworks' numbers and the torch/spear ratios
(> 1: spear faster or smaller). Needs Debian's python3-torch.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
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


def torch_cap(kind, causal):
    """The largest N PyTorch runs: its causal linear attention keeps a (B, N, H, F, M) tensor and
    its softmax an (N, N) one per head; FAVOR+ has no PyTorch counterpart here."""
    if kind == "favor":
        return 0
    if kind == "softmax" or causal:
        return 4096
    return 16384


def torch_attention_step(kind, causal, n, threads):
    """Runs in a child process: ms and peak RSS growth (MiB) of one forward + backward."""
    torch.set_num_threads(threads)
    B, H, D = 8, 4, 32
    q = (torch.randn(B, n, H, D) * 0.3).requires_grad_()
    k = (torch.randn(B, n, H, D) * 0.3).requires_grad_()
    v = torch.randn(B, n, H, D, requires_grad=True)
    g = torch.randn(B, n, H, D)

    def softmax_attention():
        s = torch.einsum("bnhd,bmhd->bhnm", q, k) / D**0.5
        if causal:
            s = s.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
        return torch.einsum("bhnm,bmhd->bnhd", torch.softmax(s, -1), v)

    def linear_attention():
        fq, fk = torch.nn.functional.elu(q) + 1, torch.nn.functional.elu(k) + 1
        if causal:
            kv = torch.cumsum(torch.einsum("bnhf,bnhm->bnhfm", fk, v), dim=1)
            num = torch.einsum("bnhf,bnhfm->bnhm", fq, kv)
            den = torch.einsum("bnhf,bnhf->bnh", fq, torch.cumsum(fk, dim=1))
        else:
            kv = torch.einsum("bnhf,bnhm->bhfm", fk, v)
            num = torch.einsum("bnhf,bhfm->bnhm", fq, kv)
            den = torch.einsum("bnhf,bhf->bnh", fq, fk.sum(1))
        return num / (den[..., None] + 1e-6)

    forward = softmax_attention if kind == "softmax" else linear_attention

    def step():
        forward().backward(g)
        q.grad = k.grad = v.grad = None

    with open("/proc/self/statm") as f:
        before = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    seconds = min(timed(step) for _ in range(3))
    return {"ms": seconds * 1e3, "peak_mib": max(peak - before, 0) / 2**20}


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def torch_spe_step(kind, n, threads):
    """Runs in a child process: the reference SPE + linear attention, ms and peak RSS growth."""
    torch.set_num_threads(threads)
    B, H, D, R, K, P = 8, 4, 32, 64, 10, 128
    q = (torch.randn(B, n, H, D) * 0.3).requires_grad_()
    k = (torch.randn(B, n, H, D) * 0.3).requires_grad_()
    v = torch.randn(B, n, H, D, requires_grad=True)
    g = torch.randn(B, n, H, D)
    gate = torch.randn(H, D, requires_grad=True)
    if kind == "sine":
        freqs = (torch.randn(H, D, K) - 4).requires_grad_()
        offsets = torch.randn(H, D, K, requires_grad=True)
        gains = torch.randn(H, D, K, requires_grad=True)
    elif kind == "conv":
        conv_q = (torch.rand(H * D, 1, P) / (P / 2) ** 0.5).requires_grad_()
        conv_k = (torch.rand(H * D, 1, P) / (P / 2) ** 0.5).requires_grad_()

    def codes():
        if kind == "sine":
            f = torch.sigmoid(freqs) / 2
            angle = 2 * torch.pi * f[:, :, None, :] * torch.arange(n)[None, None, :, None]
            om_q = torch.stack([torch.cos(angle + offsets[:, :, None, :]),
                                torch.sin(angle + offsets[:, :, None, :])], -1).flatten(-2)
            om_k = torch.stack([torch.cos(angle), torch.sin(angle)], -1).flatten(-2)
            gain2 = torch.nn.functional.softplus(gains).repeat_interleave(2, -1)
            z = gain2[..., None] * torch.randn(H, D, 2 * K, R) / (2 * K) ** 0.5
            qbar = torch.einsum("hdnc,hdcr->nhdr", om_q, z)
            kbar = torch.einsum("hdnc,hdcr->nhdr", om_k, z)
        else:
            noise = torch.randn(R, H * D, n + 2 * P)
            kbar = torch.nn.functional.conv1d(noise, conv_q, groups=H * D)[..., P:P + n]
            qbar = torch.nn.functional.conv1d(noise, conv_k, groups=H * D)[..., P:P + n]
            qbar = qbar.reshape(R, H, D, n).permute(3, 1, 2, 0)
            kbar = kbar.reshape(R, H, D, n).permute(3, 1, 2, 0)
        scale = (R * D) ** -0.25
        gamma = torch.sigmoid(gate)[..., None]
        eta = torch.randn(H, D, R) * scale
        qbar = (1 - gamma).sqrt() * qbar * scale + gamma.sqrt() * eta
        kbar = (1 - gamma).sqrt() * kbar * scale + gamma.sqrt() * eta
        return qbar[None], kbar[None]  # (1, N, H, D, R)

    def step():
        qbar, kbar = codes()
        qh = torch.einsum("bnhd,bnhdr->bnhr", q, qbar)
        kh = torch.einsum("bnhd,bnhdr->bnhr", k, kbar)
        fq, fk = torch.nn.functional.elu(qh) + 1, torch.nn.functional.elu(kh) + 1
        kv = torch.einsum("bnhf,bnhm->bhfm", fk, v)
        num = torch.einsum("bnhf,bhfm->bnhm", fq, kv)
        den = torch.einsum("bnhf,bhf->bnh", fq, fk.sum(1))
        (num / (den[..., None] + 1e-6)).backward(g)
        for t in [q, k, v, gate]:
            t.grad = None

    with open("/proc/self/statm") as f:
        before = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    seconds = min(timed(step) for _ in range(2))
    return {"ms": seconds * 1e3, "peak_mib": max(peak - before, 0) / 2**20}


def compare_spe(args):
    out = subprocess.run([args.spear_bench, "spe", "--json", "--threads", str(args.threads)],
                         check=True, capture_output=True, text=True).stdout
    for spear_row in map(json.loads, out.splitlines()):
        kind, n = spear_row["spe"], spear_row["n"]
        row = {"spe": kind, "n": n, "threads": args.threads, "spear_ms": spear_row["ms"],
               "spear_peak_mib": spear_row["peak_mib"],
               "spear_tokens_per_s": round(8 * n / (spear_row["ms"] * 1e-3))}
        if kind != "none" and n <= 8192:
            child = subprocess.run(
                [sys.executable, __file__, "_torch_spe", kind, str(n), str(args.threads)],
                check=True, capture_output=True, text=True).stdout
            t = json.loads(child)
            row.update({"torch_ms": round(t["ms"], 2), "torch_peak_mib": round(t["peak_mib"], 1),
                        "torch_tokens_per_s": round(8 * n / (t["ms"] * 1e-3)),
                        "ratio_time": round(t["ms"] / spear_row["ms"], 2),
                        "ratio_memory": round(t["peak_mib"] / max(spear_row["peak_mib"], 1e-9), 2)})
        print(json.dumps(row), flush=True)


def compare_attention(args):
    out = subprocess.run([args.spear_bench, "attention", "--json", "--threads", str(args.threads)],
                         check=True, capture_output=True, text=True).stdout
    for spear_row in map(json.loads, out.splitlines()):
        kind, causal, n = spear_row["kind"], spear_row["causal"], spear_row["n"]
        torch_kind = "linear" if kind == "linear_composed" else kind
        row = {"kind": kind, "causal": causal, "n": n, "threads": args.threads,
               "spear_ms": spear_row["ms"], "spear_peak_mib": spear_row["peak_mib"]}
        if n <= torch_cap(kind, causal):
            child = subprocess.run(
                [sys.executable, __file__, "_torch_attention", torch_kind, str(int(causal)), str(n),
                 str(args.threads)], check=True, capture_output=True, text=True).stdout
            t = json.loads(child)
            row.update({"torch_ms": round(t["ms"], 2), "torch_peak_mib": round(t["peak_mib"], 1),
                        "ratio_time": round(t["ms"] / spear_row["ms"], 2),
                        "ratio_memory": round(t["peak_mib"] / max(spear_row["peak_mib"], 1e-9), 2)})
        print(json.dumps(row), flush=True)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_torch_spe":
        print(json.dumps(torch_spe_step(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_torch_attention":
        kind, causal, n, threads = sys.argv[2], bool(int(sys.argv[3])), int(sys.argv[4]), int(sys.argv[5])
        print(json.dumps(torch_attention_step(kind, causal, n, threads)))
        return
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["ops", "attention", "spe"])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--spear-bench", default=os.path.join(here, "..", "build", "bin", "spear-bench"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.what == "attention":
        compare_attention(args)
        return
    if args.what == "spe":
        compare_spe(args)
        return
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
