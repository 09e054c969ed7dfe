#!/usr/bin/python3
"""Writes docs/performance.md and docs/performance.png from the rows bench/compare_torch.py
measures (its `all` mode calls this after measuring; run alone, it rebuilds the page from
docs/performance.jsonl without measuring again).

    /usr/bin/python3 bench/report_performance.py [ROWS.jsonl ...] [--docs DIR]

Needs matplotlib (Debian: python3-matplotlib).
"""
import argparse
import json
import os
import sys

INTRO = """\
# Performance: spear against PyTorch

How fast spear trains, next to the same models written in PyTorch {torch} (Debian's
`python3-torch`), measured in the same run on one machine ({cpu}), both frameworks on
{threads} threads unless a table says otherwise.

**What is measured** is the whole training step: forward, cross-entropy, backward, gradient
clipping and AdamW, on one fixed batch of random tokens, after a few warm-up steps; the time is
that of the fastest timed step, the least disturbed by anything else running. Each spear row runs
right before its PyTorch row, so both see the same machine; thread scaling, though, needs the
cores free of other work. `spear-bench train` (bench/train.cpp) runs spear's step on the model
`spear-train` builds from a config; `bench/compare_torch.py` builds the same model in
PyTorch from the config spear-bench reports (bench/torch_models.py: pre-LN blocks, the same
widths, pooling, feature maps, SPE gating; both parameter counts are printed and must agree) and
trains it the same way. For SPE, PyTorch runs twice. First as the reference implementation
(aliutkus/spe, `spe_reference.md` §2–§4) is written, which is what the targets are stated
against: per step, codes of shape (N, H, D, R) shared over the batch, gated, then applied as
`(qbar * q[..., None]).sum(-2)`, a broadcast product that holds a (B, N, H, D, R) tensor, and
ConvSPE filtering 4P extra noise samples. Then written for speed: the same codes contracted by
one einsum, and only the noise the filters reach (the "einsum" columns and `*_einsum` fields).
PyTorch runs with `OMP_WAIT_POLICY=PASSIVE` unless
the environment says otherwise: its OpenMP threads otherwise spin while they wait, and on a
machine where anything else runs that made its steps 4–8× slower here.

**Memory** is the growth of the peak resident set (`VmHWM`) over the resident set before the
first step, each framework in a process of its own: activations, gradients, optimiser state and
whatever the allocator keeps. spear's peak of live tensor bytes is in the JSON rows as
`spear_tensor_peak_mib`.

**Ratios** are spear over PyTorch: throughput (tokens/s) above 1 and memory below 1 favour spear.

**FLOPs** are the model's, counted from the shapes (multiply-adds count 2), per layer, with
T = B·N tokens, C the width, F the FFN width, H heads, Dh = C/H, W the query/key width the
attention sees (R with SPE, else Dh): projections 8·T·C², FFN 4·T·C·F, softmax attention
2·B·H·N²·(W + Dh) (half when causal), linear attention 2·T·H·m·(2·Dh + 1) with m = W features
(FAVOR+: its m random features, plus 4·T·H·W·m to compute them), SPE codes 4·N·H·Dh·W·2K (sine)
or 4·N·H·Dh·W·P (conv, P taps) shared over the batch, SPE filter 4·T·H·Dh·W; plus the output
head. A step is 3× the forward (the backward costs two forwards). Elementwise work is not
counted. "% peak" is spear's GFLOP/s over the best raw `cblas_sgemm` rate `spear-bench matmul`
measures at the same thread count ({sgemm:.1f} GFLOP/s here, {sgemm_size}³).

**To regenerate** every number, table and the plot (about 35 minutes on 2 cores):

```sh
cmake --build build --target spear-bench
/usr/bin/python3 bench/compare_torch.py all        # measures, then writes this page
```

`all --quick --out DIR` is a smoke run of a few minutes (small N, few steps) that writes its page
into DIR instead.

The raw rows land in `docs/performance.jsonl`; `bench/report_performance.py` rebuilds this page
and `performance.png` from them alone. `compare_torch.py train|sweep|efficiency` measure one part.
"""


def fmt(value, digits=1):
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if abs(value) >= 100 or digits == 0:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def ratio(value, unit="×"):
    return "—" if value is None else f"{value:.2f}{unit}"


def table(header, lines):
    out = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    out += ["| " + " | ".join(str(c) for c in line) + " |" for line in lines]
    return "\n".join(out) + "\n"


def step_columns(r, peak):
    """The columns every comparison table shares."""
    skipped = r.get("torch_skipped")
    return [fmt(r["spear_ms"]), skipped and f"skipped ({skipped})" or fmt(r.get("torch_ms")),
            ratio(r.get("throughput_ratio")), fmt(r["spear_tokens_per_s"], 0),
            fmt(r["spear_step_rss_mib"]), fmt(r.get("torch_step_rss_mib")),
            ratio(r.get("memory_ratio")), fmt(r["gflop_per_step"], 2), fmt(r["spear_gflops"]),
            f"{100 * r['spear_gflops'] / peak:.0f} %"]


STEP_HEADER = ["spear ms", "PyTorch ms", "throughput", "spear tokens/s", "spear MiB",
               "PyTorch MiB", "memory", "GFLOP/step", "spear GFLOP/s", "% peak"]


def params_column(r):
    same = r.get("torch_params") in (None, r["params"])
    return f"{r['params']:,}" if same else f"{r['params']:,} ≠ {r['torch_params']:,}"


def targets(rows, peak):
    """The issue's targets: (target, where we stand, met)."""
    sweep = [r for r in rows if r["table"] == "sweep"]
    measured = lambda rs: [r for r in rs if r.get("throughput_ratio") is not None]
    spe = measured(r for r in sweep if r["kind"] == "linear" and r["positional"].endswith("spe"))
    others = measured([r for r in rows if r["table"] == "grid" and not (
        r["kind"] == "linear" and r["positional"].endswith("spe"))] +
        [r for r in sweep if not (r["kind"] == "linear" and r["positional"].endswith("spe"))])
    out = []

    def worst(rs, key, pick, label, bound, better):
        if not rs:
            return out.append((label, "not measured", "—"))
        r = pick(rs, key=lambda r: r[key])
        met = all(better(x[key], bound) for x in rs)
        out.append((label, f"worst {r[key]:.2f}× ({r['kind']} + {r['positional']}, N {r['n']})",
                    "yes" if met else "no"))

    worst(spe, "throughput_ratio", min, "linear + SPE ≥ 10× PyTorch + reference SPE throughput, "
          "every N", 10, lambda v, b: v >= b)
    worst([r for r in spe if r["n"] >= 2048], "memory_ratio", max,
          "linear + SPE memory ≤ 0.1× PyTorch + reference SPE at N ≥ 2048", 0.1,
          lambda v, b: v <= b)
    fast = [r for r in spe if r.get("throughput_ratio_einsum") is not None]
    worst(fast, "throughput_ratio_einsum", min, "(for comparison: linear + SPE against PyTorch "
          "with SPE as one einsum, throughput)", 10, lambda v, b: v >= b)
    worst([r for r in fast if r["n"] >= 2048], "memory_ratio_einsum", max, "(the same, memory "
          "at N ≥ 2048)", 0.1, lambda v, b: v <= b)
    worst(others, "throughput_ratio", min, "every other combination ≥ 1.5× throughput", 1.5,
          lambda v, b: v >= b)
    worst([r for r in sweep if r["kind"] == "softmax" and r["n"] == 4096 and
           r.get("memory_ratio") is not None], "memory_ratio", max,
          "softmax memory ≤ 0.1× PyTorch at N = 4096", 0.1, lambda v, b: v <= b)
    scaling = thread_scaling(rows)
    if scaling:
        low = min(scaling, key=lambda s: s[-1])
        out.append(("2 threads ≥ 1.7× 1 thread (training step)",
                    f"worst {low[-1]:.2f}× ({low[0]}, d {low[1]})",
                    "yes" if low[-1] >= 1.7 else "no"))
    growth = length_scaling(rows)
    if growth:
        high = max(growth, key=lambda g: g[1])
        out.append(("T(8192) / T(1024) ≤ 8.5 for linear kernels",
                    f"worst {high[1]:.2f} ({high[0]})", "yes" if high[1] <= 8.5 else "no"))
    wide = [r for r in rows if r["table"] == "width" and r.get("torch_ms") is not None]
    if wide:
        shares = [(100 * r["spear_gflops"] / peak, r["name"]) for r in wide]
        met = sum(share >= 25 for share, _ in shares)
        out.append(("training step ≥ 25 % of sgemm peak at d = 256",
                    ", ".join(f"{name} {share:.0f} %" for share, name in shares),
                    f"{met} of {len(shares)}"))
    return out


def thread_scaling(rows):
    """(model, dim, ms 1 thread, ms n threads, speed-up) for each model measured on both."""
    out = []
    timed = [r for r in rows if r["table"] in ("threads", "width")]
    for r in timed:
        if r["threads"] == 1:
            continue
        one = [x for x in timed if x["threads"] == 1 and x["name"] == r["name"] and
               x["dim"] == r["dim"] and x["n"] == r["n"]]
        if one:
            out.append((r["name"], r["dim"], one[0]["spear_ms"], r["spear_ms"],
                        one[0]["spear_ms"] / r["spear_ms"]))
    return out


def length_scaling(rows):
    """(model, T(8192) / T(1024)) of spear's linear-time models in the sweep."""
    out = []
    sweep = [r for r in rows if r["table"] == "sweep" and r["kind"] != "softmax"]
    for name in model_order(sweep):
        ms = {r["n"]: r["spear_ms"] for r in sweep if r["name"] == name}
        if 1024 in ms and 8192 in ms:
            out.append((name, ms[8192] / ms[1024]))
    return out


def model_order(rows):
    """The model names of the sweep rows, in the order they were measured."""
    return list(dict.fromkeys(r["name"] for r in rows if r["table"] == "sweep"))


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sweep = [r for r in rows if r["table"] == "sweep"]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, name in enumerate(model_order(sweep)):
        rs = sorted((r for r in sweep if r["name"] == name), key=lambda r: r["n"])
        color = f"C{i}"
        for ax, key in ((ax_t, "ms"), (ax_m, "step_rss_mib")):
            ax.plot([r["n"] for r in rs], [r["spear_" + key] for r in rs], "o-", color=color,
                    label=f"spear {name}")
            torch_rs = [r for r in rs if r.get("torch_" + key) is not None]
            ax.plot([r["n"] for r in torch_rs], [r["torch_" + key] for r in torch_rs], "s--",
                    color=color, alpha=0.7, label=f"PyTorch {name}")
    for ax, label in ((ax_t, "ms per training step"), (ax_m, "peak RSS growth (MiB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length N (batch 8)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    ax_t.legend(fontsize=7)
    ax_t.set_title("time (solid: spear, dashed: PyTorch)")
    ax_m.set_title("memory")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_report(rows, docs):
    sgemm = next(r for r in rows if r["table"] == "sgemm")
    peak = sgemm["sgemm_gflops"]
    md = [INTRO.format(torch=sgemm.get("torch", ""), cpu=sgemm.get("cpu", "this machine"),
                       threads=sgemm["threads"], sgemm=peak, sgemm_size=sgemm["size"])]
    md.append("## Targets\n\n" + table(["target", "where we stand", "met"], targets(rows, peak)))

    configs = [r for r in rows if r["table"] == "configs"]
    md.append("## The shipped configs\n\nEach `examples/configs/*.json` at its own batch size and "
              "its task's longest input.\n\n" + table(
                  ["config", "model", "N × batch", "params", *STEP_HEADER],
                  [[r["name"], f"{r['kind']} + {r['positional']}, d {r['dim']}",
                    f"{r['n']} × {r['batch']}", params_column(r), *step_columns(r, peak)]
                   for r in configs]))

    grid = [r for r in rows if r["table"] == "grid"]
    if grid:
        g = grid[0]
        md.append(f"## Attention × positional encoding\n\nThe {g['layers']}-layer d {g['dim']} "
                  f"encoder classifier, N {g['n']}, batch {g['batch']}.\n\n" + table(
                      ["attention", "positional", "params", *STEP_HEADER],
                      [[r["kind"], r["positional"], params_column(r), *step_columns(r, peak)]
                       for r in grid]))

    sweep = sorted((r for r in rows if r["table"] == "sweep"),
                   key=lambda r: (model_order(rows).index(r["name"]), r["n"]))
    if sweep:
        s = sweep[0]
        md.append(f"## Sequence length\n\nThe {s['layers']}-layer d {s['dim']} encoder, batch "
                  f"{s['batch']}. PyTorch's softmax rows beyond N 4096 would need more memory "
                  "than the machine has (its score matrices are B·H·N² floats per layer) and are "
                  "skipped. Softmax's absolute positional encoding (APE) is the sinusoidal one.\n"
                  "\n![time and memory against N](performance.png)\n\n" + table(
                      ["model", "N", *STEP_HEADER],
                      [[r["name"], r["n"], *step_columns(r, peak)] for r in sweep]))
        spe = [r for r in sweep if r.get("torch_einsum_ms") is not None]
        if spe:
            md.append("### SPE rows: the reference formulation and PyTorch written for speed\n\n"
                      "The sweep's SPE rows against both PyTorch formulations (see the top of the "
                      "page); the tables above use the reference one.\n\n" + table(
                          ["model", "N", "spear ms", "reference ms", "einsum ms", "throughput "
                           "vs reference", "vs einsum", "spear MiB", "reference MiB",
                           "einsum MiB", "memory vs reference", "vs einsum"],
                          [[r["name"], r["n"], fmt(r["spear_ms"]), fmt(r["torch_ms"]),
                            fmt(r["torch_einsum_ms"]), ratio(r["throughput_ratio"]),
                            ratio(r["throughput_ratio_einsum"]), fmt(r["spear_step_rss_mib"]),
                            fmt(r["torch_step_rss_mib"]), fmt(r["torch_einsum_step_rss_mib"]),
                            ratio(r["memory_ratio"]), ratio(r["memory_ratio_einsum"])]
                           for r in spe]))
        growth = length_scaling(rows)
        if growth:
            md.append("Growth of spear's step time from N 1024 to 8192 (8 for a linear-time "
                      "step): " + ", ".join(f"{n} {g:.2f}" for n, g in growth) + ".\n")

    scaling = thread_scaling(rows)
    if scaling:
        t = next(r for r in rows if r["table"] == "threads")
        md.append(f"## Threads\n\nspear's training step on 1 thread and on all of them, "
                  f"N {t['n']}, batch {t['batch']}.\n\n" + table(
                      ["model", "d", "1 thread ms", f"{sgemm['threads']} threads ms", "speed-up"],
                      [[n, d, fmt(a), fmt(b), ratio(x)] for n, d, a, b, x in scaling]))
    wide = [r for r in rows if r["table"] == "width" and r["threads"] == sgemm["threads"]]
    if wide:
        md.append(f"## Arithmetic efficiency at d 256\n\nThe sweep's models at d {wide[0]['dim']}"
                  f" (4 heads of 64), N {wide[0]['n']}, batch {wide[0]['batch']}, against the "
                  f"raw sgemm peak of {peak:.1f} GFLOP/s.\n\n" + table(
                      ["model", "params", *STEP_HEADER],
                      [[r["name"], params_column(r), *step_columns(r, peak)] for r in wide]))

    with open(os.path.join(docs, "performance.md"), "w") as f:
        f.write("\n".join(md))
    if sweep:
        plot(rows, os.path.join(docs, "performance.png"))


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="*",
                        default=[os.path.join(root, "docs", "performance.jsonl")])
    parser.add_argument("--docs", default=os.path.join(root, "docs"))
    args = parser.parse_args()
    rows = []
    for path in args.rows:
        try:
            with open(path) as f:
                rows += [json.loads(line) for line in f if line.strip()]
        except OSError as e:
            sys.exit(f"report_performance.py: cannot read {path}: {e.strerror}")
        except json.JSONDecodeError as e:
            sys.exit(f"report_performance.py: {path} is not JSON lines: {e}")
    if not any(r.get("table") == "sgemm" for r in rows):
        sys.exit("report_performance.py: no sgemm row (compare_torch.py efficiency measures it)")
    write_report(rows, args.docs)


if __name__ == "__main__":
    main()
