#!/usr/bin/env python3
"""Side-by-side timings of spear and PyTorch on this machine, in one run, at one thread count.

  /usr/bin/python3 bench/compare_torch.py ops|attention|spe|train|sweep|efficiency|all
                                          [--threads N] [--quick] [--out FILE] [--spear-bench PATH]

`ops`: the per-op cost of recording the autograd graph on 8x8 f32 tensors (the same ops as
`spear-bench ops`): forward without grad, forward with grad, forward + backward.
`attention`: forward + backward of the attention kernel alone (batch 8, 4 heads, width 32) vs N,
the same rows as `spear-bench attention`; PyTorch runs softmax attention and linear attention
written the usual way (einsum; causal as a cumsum of outer products), each (kind, N) in a fresh
process so its peak RSS growth can be measured. spear reports its peak live tensor bytes.
`spe`: SPE (sine, conv; gated) feeding elu+1 linear attention, forward + backward, the rows of
`spear-bench spe`; PyTorch runs the reference implementation's formulation: codes of shape
(1, N, H, D, R) shared over the batch (spe_reference.md 2-4), applied as a broadcast product
summed over D (bench/torch_models.py).
These print one JSON object per row with both frameworks' numbers and the torch/spear ratios
(> 1: spear faster or smaller).

The whole training step (forward, backward, AdamW) of the models spear-train builds, each row
`spear-bench train` in its own process next to the PyTorch twin (bench/torch_models.py) in
another, so each peak RSS is its own; ratios spear/PyTorch (throughput > 1, memory < 1: spear
better):
`train`: every examples/configs/*.json, then attention (softmax, linear, FAVOR+) x positional
encoding (none, sinusoidal, learned, RoPE, sine SPE, conv SPE) on the 2-layer d 64 encoder,
N 1024, batch 8.
`sweep`: N = 256 .. 8192, batch 8, for linear + sine SPE, linear + conv SPE, FAVOR+ + sine SPE,
softmax + sinusoidal.
Rows with SPE time PyTorch twice: with the reference formulation (the ratios) and with SPE
written for speed as one einsum (the `*_einsum` fields).
`efficiency`: the raw sgemm peak, spear on 1 thread vs all, and the sweep's models at d 256.
`all`: the three, into docs/performance.jsonl, then docs/performance.md and .png
(bench/report_performance.py); --out DIR writes them elsewhere (a --quick run, say).
Needs Debian's python3-torch (and python3-matplotlib for `all`).
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import time

import torch

import report_performance
import torch_models

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

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

    def forward():
        if kind == "softmax":
            return torch_models.softmax_attention(q, k, v, causal)
        elu1 = lambda x: torch.nn.functional.elu(x) + 1
        return torch_models.linear_attention(elu1(q), elu1(k), v, causal)

    def step():
        forward().backward(g)
        q.grad = k.grad = v.grad = None

    before = rss_now_mib()
    step()
    peak = rss_peak_mib()
    seconds = min(timed(step) for _ in range(3))
    return {"ms": seconds * 1e3, "peak_mib": max(peak - before, 0)}


def timed(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def status_mib(key):
    """A "VmRSS" (now) or "VmHWM" (peak) line of /proc/self/status, in MiB. Not getrusage's
    ru_maxrss: Linux carries it across exec, so a child would report this process's peak."""
    with open("/proc/self/status") as f:
        line = next(l for l in f if l.startswith(key + ":"))
    return int(line.split()[1]) / 1024


def rss_now_mib():
    return status_mib("VmRSS")


def rss_peak_mib():
    return status_mib("VmHWM")


def torch_spe_step(kind, n, threads):
    """Runs in a child process: the reference SPE + linear attention, ms and peak RSS growth."""
    torch.set_num_threads(threads)
    B, H, D, R, K, P = 8, 4, 32, 64, 10, 128
    q = (torch.randn(B, n, H, D) * 0.3).requires_grad_()
    k = (torch.randn(B, n, H, D) * 0.3).requires_grad_()
    v = torch.randn(B, n, H, D, requires_grad=True)
    g = torch.randn(B, n, H, D)
    code = (torch_models.SineSPE(H, D, R, K) if kind == "sine"
            else torch_models.ConvSPE(H, D, R, P, None))
    spe = torch_models.SPEFilter(code, gated=True, owns_code=True)

    def step():
        qh, kh = spe(q, k)
        fq, fk = torch.nn.functional.elu(qh) + 1, torch.nn.functional.elu(kh) + 1
        torch_models.linear_attention(fq, fk, v, causal=False).backward(g)
        for t in [q, k, v, *spe.parameters()]:
            t.grad = None

    before = rss_now_mib()
    step()
    peak = rss_peak_mib()
    seconds = min(timed(step) for _ in range(2))
    return {"ms": seconds * 1e3, "peak_mib": max(peak - before, 0)}


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
                check=True, capture_output=True, text=True, env=torch_env(args.threads)).stdout
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
                 str(args.threads)], check=True, capture_output=True, text=True,
                env=torch_env(args.threads)).stdout
            t = json.loads(child)
            row.update({"torch_ms": round(t["ms"], 2), "torch_peak_mib": round(t["peak_mib"], 1),
                        "ratio_time": round(t["ms"] / spear_row["ms"], 2),
                        "ratio_memory": round(t["peak_mib"] / max(spear_row["peak_mib"], 1e-9), 2)})
        print(json.dumps(row), flush=True)


# ---- The whole training step: train, sweep, efficiency, all ----

KINDS = ["softmax", "linear", "favor"]
POSITIONALS = ["none", "sinusoidal", "learned", "rope", "sine_spe", "conv_spe"]
# The sweep's combinations; softmax's absolute encoding (APE) is the sinusoidal one.
SWEEP = [("linear", "sine_spe"), ("linear", "conv_spe"), ("favor", "sine_spe"),
         ("softmax", "sinusoidal")]
TORCH_MEMORY_CAP_GIB = 14  # PyTorch rows estimated above this are skipped (see torch_skip)


def torch_train_step(row):
    """Runs in a child process: the PyTorch twin of the spear-bench train `row`, trained the same
    number of steps on the same shapes; ms of the fastest timed step (as spear-bench reports),
    RSS growth, parameters."""
    torch.set_num_threads(row["threads"])
    torch.manual_seed(0)
    task, B, N = row["task"], row["batch"], row["n"]
    model = torch_models.Model(row)
    model.train()
    opt = torch_models.optimizer(model, row["optimizer"])
    ids = torch.randint(0, task["vocab"], (B, N))
    targets = (torch.randint(0, task["vocab"], (B, N)) if task["head"] == "lm"
               else torch.randint(0, task["classes"], (B,)))
    before = rss_now_mib()
    ms, loss = [], 0.0
    for step in range(row["warmup"] + row["steps"]):
        t0 = time.perf_counter()
        loss = torch_models.training_step(model, opt, ids, targets, row["optimizer"]["grad_clip"])
        if step >= row["warmup"]:
            ms.append((time.perf_counter() - t0) * 1e3)
    return {"params": sum(p.numel() for p in model.parameters()), "ms": min(ms),
            "step_rss_mib": rss_peak_mib() - before, "peak_rss_mib": rss_peak_mib(), "loss": loss}


def torch_env(threads):
    """PyTorch's OpenMP threads spin while they wait, by default: with anything else running on
    the machine, each of a step's hundreds of parallel regions then waits for a time slice (d 64
    steps ran 4-8x slower here than with passive waiting). So the PyTorch side waits passively;
    on a quiet machine, spinning may win a little: set OMP_WAIT_POLICY=ACTIVE to compare, since
    settings in the environment win. OpenBLAS, which PyTorch calls for its matmuls, gets the same
    thread count."""
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env.setdefault("OPENBLAS_NUM_THREADS", str(threads))
    return env


def torch_skip(row):
    """Why PyTorch does not run `row`, or None: its softmax holds a (B, H, N, N) tensor per layer
    for backward and a few more at the peak (layers + 3 copies, measured at N 4096)."""
    m = row["model"]
    if m["attention"]["kind"] != "softmax":
        return None
    need = row["batch"] * m["heads"] * row["n"] ** 2 * 4 * (m["layers"] + 3) / 2**30
    return f"needs ~{need:.0f} GiB" if need > TORCH_MEMORY_CAP_GIB else None


def run_torch(args, row, threads):
    """The PyTorch twin of `row` in a child process: (its result, None) or (None, why not)."""
    try:
        child = subprocess.run([sys.executable, __file__, "_torch_train"], input=json.dumps(row),
                               check=True, capture_output=True, text=True,
                               timeout=args.torch_timeout, env=torch_env(threads)).stdout
        return json.loads(child), None
    except subprocess.TimeoutExpired:
        return None, f"over {args.torch_timeout} s"
    except subprocess.CalledProcessError as e:
        return None, "failed: " + (e.stderr.strip().splitlines() or [f"exit {e.returncode}"])[-1]


def compare_train_row(args, table, flags, threads=None, with_torch=True, steps=(2, 5)):
    """spear-bench train with `flags`, then the same model in PyTorch in a child process; one row
    with both and the spear/PyTorch ratios (throughput > 1 and memory < 1: spear better)."""
    threads = threads or args.threads
    warmup, timed_steps = steps
    cmd = [args.spear_bench, "train", "--json", "--threads", str(threads), "--warmup",
           str(warmup), "--steps", str(timed_steps), *flags]
    s = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
    s["warmup"] = warmup
    row = {"table": table, "name": s["name"], "kind": s["kind"], "positional": s["positional"],
           "n": s["n"], "batch": s["batch"], "dim": s["dim"], "layers": s["layers"],
           "threads": threads, "params": s["params"],
           "gflop_per_step": s["gflop_per_step"]}
    row.update({"spear_" + k: s[k] for k in ("ms", "tokens_per_s", "gflops", "tensor_peak_mib",
                                              "step_rss_mib", "peak_rss_mib", "loss")})
    skip = torch_skip(s) if with_torch else "not run"
    spe = s["positional"].endswith("spe")
    if skip is None:
        t, skip = run_torch(args, s, threads)
    if skip is None:
        tokens = s["batch"] * s["n"] / (t["ms"] * 1e-3)
        row.update({"torch_params": t["params"], "torch_ms": round(t["ms"], 2),
                    "torch_tokens_per_s": round(tokens, 1),
                    "torch_gflops": round(s["gflop_per_step"] / (t["ms"] * 1e-3), 2),
                    "torch_step_rss_mib": round(t["step_rss_mib"], 1),
                    "torch_peak_rss_mib": round(t["peak_rss_mib"], 1), "torch_loss": t["loss"],
                    "throughput_ratio": round(t["ms"] / s["ms"], 2),
                    "memory_ratio": round(s["step_rss_mib"] / max(t["step_rss_mib"], 1e-9), 3)})
        if t["params"] != s["params"]:
            print(f"compare_torch: {s['name']}: parameter counts differ, spear {s['params']}, "
                  f"PyTorch {t['params']}", file=sys.stderr)
        if spe:  # the reference SPE above; PyTorch written for speed too (torch_models.py)
            row["torch_spe"] = "reference"
            e, why = run_torch(args, dict(s, torch_spe="einsum"), threads)
            if why is None:
                row.update({"torch_einsum_ms": round(e["ms"], 2),
                            "torch_einsum_step_rss_mib": round(e["step_rss_mib"], 1),
                            "throughput_ratio_einsum": round(e["ms"] / s["ms"], 2),
                            "memory_ratio_einsum":
                                round(s["step_rss_mib"] / max(e["step_rss_mib"], 1e-9), 3)})
            else:
                row["torch_einsum_skipped"] = why
    else:
        row["torch_skipped"] = skip
    print(json.dumps(row), flush=True)
    return row


def wanted(args, name):
    """--only: the rows of one config (its file name without .json) or model ("linear+sine_spe")."""
    return args.only is None or args.only == name


def compare_train(args):
    """Every shipped config at its own size, then the attention x positional grid on the 2-layer
    d 64 encoder, batch 8, N 1024 (256 with --quick)."""
    steps = (1, 2) if args.quick else (2, 5)
    rows = []
    for config in sorted(glob.glob(os.path.join(ROOT, "examples", "configs", "*.json"))):
        if wanted(args, os.path.basename(config)[:-len(".json")]):
            rows.append(compare_train_row(args, "configs", ["--config", config], steps=steps))
    n = 256 if args.quick else 1024
    for kind in KINDS:
        for pos in POSITIONALS:
            if wanted(args, f"{kind}+{pos}"):
                flags = ["--kind", kind, "--positional", pos, "--n", str(n)]
                rows.append(compare_train_row(args, "grid", flags, steps=steps))
    return rows


def compare_sweep(args):
    """N = 256 .. 8192 (512 with --quick), batch 8, the SWEEP combinations."""
    rows = []
    for kind, pos in SWEEP:
        for n in [256, 512] if args.quick else [256 << i for i in range(6)]:
            if wanted(args, f"{kind}+{pos}"):
                steps = (1, 2) if args.quick or n >= 4096 else (2, 5)
                flags = ["--kind", kind, "--positional", pos, "--n", str(n)]
                rows.append(compare_train_row(args, "sweep", flags, steps=steps))
    return rows


def compare_efficiency(args):
    """The raw sgemm peak; spear's training step on 1 and `threads` threads; the SWEEP models at
    d 256 (both frameworks), whose GFLOP/s the report sets against the peak."""
    out = subprocess.run([args.spear_bench, "matmul", "--json", "--threads", str(args.threads)],
                         check=True, capture_output=True, text=True).stdout
    square = [r for r in map(json.loads, out.splitlines()) if r["size"]]
    peak = max(square, key=lambda r: r["sgemm_gflops"])
    with open("/proc/cpuinfo") as f:
        cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    rows = [{"table": "sgemm", "threads": args.threads, "size": peak["size"],
             "sgemm_gflops": peak["sgemm_gflops"], "cpu": cpu, "torch": torch.__version__}]
    print(json.dumps(rows[0]), flush=True)
    n = 256 if args.quick else 1024
    for dim in (64, 256):
        steps = (1, 2) if args.quick else (2, 5) if dim == 64 else (1, 3)
        for kind, pos in SWEEP:
            if not wanted(args, f"{kind}+{pos}"):
                continue
            flags = ["--kind", kind, "--positional", pos, "--n", str(n), "--dim", str(dim)]
            for threads in sorted({1, args.threads}):
                rows.append(compare_train_row(args, "threads" if dim == 64 else "width", flags,
                                              threads, dim == 256 and threads == args.threads,
                                              steps))
    return rows


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_torch_train":
        print(json.dumps(torch_train_step(json.load(sys.stdin))))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_torch_spe":
        print(json.dumps(torch_spe_step(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_torch_attention":
        kind, causal, n, threads = sys.argv[2], bool(int(sys.argv[3])), int(sys.argv[4]), int(sys.argv[5])
        print(json.dumps(torch_attention_step(kind, causal, n, threads)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["ops", "attention", "spe", "train", "sweep", "efficiency",
                                         "all"])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--spear-bench", default=os.path.join(ROOT, "build", "bin", "spear-bench"))
    parser.add_argument("--quick", action="store_true",
                        help="train, sweep, efficiency, all: small N and few steps (a smoke run)")
    parser.add_argument("--only", metavar="NAME",
                        help="train, sweep, efficiency: only this config (file name without "
                        ".json) or model (kind+positional, e.g. linear+sine_spe)")
    parser.add_argument("--out", help="train, sweep, efficiency: also write the rows (JSON lines) "
                        "to this file; all: the folder of performance.jsonl, .md and .png "
                        "(default docs)")
    parser.add_argument("--torch-timeout", type=int, default=900,
                        help="seconds one PyTorch row may take before it is reported as skipped")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tables = {"train": [compare_train], "sweep": [compare_sweep],
              "efficiency": [compare_efficiency],
              "all": [compare_efficiency, compare_train, compare_sweep]}
    if args.what in tables:
        rows = [row for table in tables[args.what] for row in table(args)]
        folder = args.out or os.path.join(ROOT, "docs") if args.what == "all" else None
        out = os.path.join(folder, "performance.jsonl") if folder else args.out
        if out:
            with open(out, "w") as f:
                f.writelines(json.dumps(row) + "\n" for row in rows)
        if folder:
            report_performance.write_report(rows, folder)
        return
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
