#!/usr/bin/python3
"""Turns the run directories of scripts/experiments.sh into the tables and plots of docs/results.md.

    scripts/results.py [STUDY_DIR] [--out DIR]

STUDY_DIR (default build/runs/study) holds TASK/ROW/sSEED run directories, each with the
summary.json, metrics.jsonl and time.txt experiments.sh leaves (and, for the language model,
spear-eval's positions_test_*.jsonl), and spe_variance/variance.jsonl. Only finished runs count.

Prints markdown tables on stdout: for every row, the mean ± sample std (ddof 1, as in the SPE
paper) over the seeds that finished and their number. Reported numbers are the test split at the
last step; the validation split is shown beside them and was the only one looked at for choices.
Writes into DIR (default docs/results):
  curves_TASK.png         training loss and validation metric per row, mean over seeds
  positions.png           extrapolation: loss per position up to 4x the trained length
  kernels_TASK_ROW.png    the kernels seed 0 of an SPE row learned (scripts/plot_kernels.py)
  variance.png            SPE: the relative error of one draw's logits against R
  r_tradeoff.png          SineSPE's R against the loss and the time per step

Needs numpy and matplotlib (Debian: python3-numpy, python3-matplotlib).
"""
import argparse
import glob
import json
import math
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# The rows in the order of the tables, and how they read.
ROWS = ["linear-none", "linear-sinusoidal", "linear-rope", "linear-sine_spe", "linear-conv_spe",
        "linear-conv_spe_2d", "softmax-sinusoidal", "favor-none", "favor-sinusoidal",
        "favor-rope", "favor-sine_spe", "favor-conv_spe"]
ATTENTION = {"linear": "linear (ReLU)", "favor": "FAVOR+", "softmax": "softmax"}
POSITIONAL = {"none": "none", "sinusoidal": "sinusoidal (APE)", "rope": "RoPE",
              "sine_spe": "gated SineSPE", "conv_spe": "gated ConvSPE",
              "conv_spe_2d": "gated ConvSPE 2-D"}
TASKS = ["extrapolation", "listops", "fashion_mnist"]


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


class Run:
    """One finished run directory."""

    def __init__(self, path):
        self.path = path
        self.seed = int(os.path.basename(path)[1:])
        with open(os.path.join(path, "summary.json")) as f:
            self.summary = json.load(f)
        with open(os.path.join(path, "config.json")) as f:
            self.config = json.load(f)
        self.metrics = read_jsonl(os.path.join(path, "metrics.jsonl"))
        positions = sorted(glob.glob(os.path.join(path, "positions_test_*.jsonl")))
        self.positions = read_jsonl(positions[-1]) if positions else None
        # time.txt: "wall user sys" of each spear-train invocation (more than one if resumed),
        # then, for a language model, of spear-eval.
        with open(os.path.join(path, "time.txt")) as f:
            times = [tuple(map(float, line.split())) for line in f if line.strip()]
        self.wall = sum(t[0] for t in times)
        self.cpu = sum(t[1] + t[2] for t in times)
        train = times[:-1] if self.positions else times
        self.train_cpu = sum(t[1] + t[2] for t in train)

    def ms_per_step(self):
        """CPU milliseconds per training step, the periodic evaluations included: unlike the
        wall time, it hardly depends on what else the shared machine runs."""
        return 1e3 * self.train_cpu / self.summary["steps"]

    def position_loss(self, begin, end):
        """The count-weighted mean test loss at input positions [begin, end)."""
        lines = [l for l in self.positions if "position" in l and begin <= l["position"] < end]
        count = sum(l["count"] for l in lines)
        return sum(l["loss"] * l["count"] for l in lines) / count if count else math.nan

    def trained_length(self):
        return next(l["trained_positions"] for l in self.positions if "trained_positions" in l)


def load_study(study):
    """{task: {row: [Run, ...]}} of the finished runs, and the ids of unfinished ones."""
    runs, unfinished = {}, []
    for path in sorted(glob.glob(os.path.join(study, "*", "*", "s*"))):
        task, row = path.split(os.sep)[-3:-1]
        finished = os.path.exists(os.path.join(path, "summary.json"))
        if finished and task == "extrapolation":
            finished = bool(glob.glob(os.path.join(path, "positions_test_*.jsonl")))
        if finished:
            runs.setdefault(task, {}).setdefault(row, []).append(Run(path))
        else:
            unfinished.append(os.path.relpath(path, study))
    return runs, unfinished


def mean_std(values, scale=1.0, digits=3):
    values = [v * scale for v in values if not math.isnan(v)]
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def label(row):
    attention, _, positional = row.partition("-")
    return ATTENTION.get(attention, attention), POSITIONAL.get(positional, positional)


def ordered(rows):
    return [r for r in ROWS if r in rows]


def optimum(config):
    """The best possible loss of the extrapolation task: ln V while the target comes before the
    period, then the entropy of (1 - noise + noise / V, noise / V, ...)."""
    v, period, noise = config["task"]["vocab"], config["task"]["period"], config["task"]["noise"]
    same = 1 - noise + noise / v
    entropy = -(same * math.log(same) + (v - 1) * (noise / v) * math.log(noise / v))
    return lambda begin, end: sum(math.log(v) if p + 1 < period else entropy
                                  for p in range(begin, end)) / (end - begin)


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def extrapolation_table(rows):
    any_run = next(iter(rows.values()))[0]
    n = any_run.trained_length()
    best = optimum(any_run.config)
    header = ["attention", "positional", "seeds", f"loss 0–{n - 1} (trained)",
              f"loss {n}–{2 * n - 1} (2x)", f"loss {2 * n}–{4 * n - 1} (4x)", "val loss",
              "CPU ms/step", "params"]
    body = []
    for row in ordered(rows):
        r = rows[row]
        body.append([*label(row), len(r), mean_std([x.position_loss(0, n) for x in r]),
                     mean_std([x.position_loss(n, 2 * n) for x in r]),
                     mean_std([x.position_loss(2 * n, 4 * n) for x in r]),
                     mean_std([x.summary["val"]["loss"] for x in r]),
                     f"{statistics.median(x.ms_per_step() for x in r):.0f}",
                     r[0].summary["params"]])
    body.append(["best possible", "", "", f"{best(0, n):.3f}", f"{best(n, 2 * n):.3f}",
                 f"{best(2 * n, 4 * n):.3f}", "", "", ""])
    return table(header, body)


def classifier_table(rows):
    header = ["attention", "positional", "seeds", "test accuracy %", "val accuracy %",
              "CPU ms/step", "params"]
    body = []
    for row in ordered(rows):
        r = rows[row]
        body.append([*label(row), len(r), mean_std([x.summary["test"]["accuracy"] for x in r], 100, 1),
                     mean_std([x.summary["val"]["accuracy"] for x in r], 100, 1),
                     f"{statistics.median(x.ms_per_step() for x in r):.0f}",
                     r[0].summary["params"]])
    chance = next(iter(rows.values()))[0].summary["chance"]
    body.append(["majority class", "", "", f"{100 * chance:.1f}", "", "", ""])
    return table(header, body)


def r_rows(rows):
    """{R: runs} of linear SineSPE on the extrapolation task: the main row is R of its config."""
    out = {}
    for row, r in rows.items():
        if row == "linear-sine_spe" or row.startswith("linear-sine_spe-R"):
            out[r[0].config["model"]["spe"]["realizations"]] = r
    return dict(sorted(out.items()))


def r_table(rows):
    by_r = r_rows(rows)
    n = next(iter(by_r.values()))[0].trained_length()
    header = ["R", "seeds", f"loss 0–{n - 1}", f"loss {n}–{2 * n - 1}", f"loss {2 * n}–{4 * n - 1}",
              "val loss", "CPU ms/step"]
    body = [[R, len(r), mean_std([x.position_loss(0, n) for x in r]),
             mean_std([x.position_loss(n, 2 * n) for x in r]),
             mean_std([x.position_loss(2 * n, 4 * n) for x in r]),
             mean_std([x.summary["val"]["loss"] for x in r]),
             f"{statistics.median(x.ms_per_step() for x in r):.0f}"] for R, r in by_r.items()]
    return table(header, body)


def variance_table(lines):
    by_code = {}
    for l in lines:
        by_code.setdefault(l["code"], {})[l["R"]] = l
    codes = sorted(by_code, reverse=True)  # sine, conv
    header = ["R"] + [f"{c}: error" for c in codes] + ["√(8/R) × error at R 8"] + \
             [f"{c}: ms/draw" for c in codes]
    body = []
    for R in sorted(by_code[codes[0]]):
        first = by_code[codes[0]][min(by_code[codes[0]])]
        row = [R] + [f"{by_code[c][R]['rel_error']:.3f} ± {by_code[c][R]['rel_error_std']:.3f}"
                     for c in codes]
        row.append(f"{first['rel_error'] * math.sqrt(first['R'] / R):.3f}")
        row += [f"{by_code[c][R]['ms_per_draw']:.1f}" for c in codes]
        body.append(row)
    return table(header, body)


def time_table(runs, variance_dir):
    body, cpu_total, wall_total = [], 0.0, 0.0
    for task in TASKS:
        rows = runs.get(task, {})
        for part, names in ((task, ordered(rows)),
                            (f"{task}, R", [r for r in rows if r not in ROWS])):
            part_runs = [x for name in names for x in rows[name]]
            if not part_runs:
                continue
            cpu, wall = sum(x.cpu for x in part_runs), sum(x.wall for x in part_runs)
            cpu_total, wall_total = cpu_total + cpu, wall_total + wall
            body.append([part, len(part_runs), f"{cpu / 60:.1f}", f"{wall / 60:.1f}"])
    time_file = os.path.join(variance_dir, "time.txt")
    if os.path.exists(time_file):
        real, user, system = map(float, open(time_file).read().split()[:3])
        cpu_total, wall_total = cpu_total + user + system, wall_total + real
        body.append(["spe_variance", 1, f"{(user + system) / 60:.1f}", f"{real / 60:.1f}"])
    body.append(["**total**", "", f"**{cpu_total / 60:.1f}**", f"**{wall_total / 60:.1f}**"])
    return table(["part", "runs", "CPU minutes", "wall minutes"], body)


# ---- plots ----

def style(row):
    attention = row.partition("-")[0]
    return {"linear": "-", "favor": "--", "softmax": ":"}.get(attention, "-")


def color(row):
    positional = row.partition("-")[2]
    keys = ["none", "sinusoidal", "rope", "sine_spe", "conv_spe", "conv_spe_2d"]
    return f"C{keys.index(positional)}" if positional in keys else "k"


def mean_curve(runs, pick):
    """(x, mean y) over the runs of [(x, y)] lists, on the x values they all share."""
    curves = [dict(pick(x)) for x in runs]
    xs = sorted(set.intersection(*(set(c) for c in curves)))
    return xs, [statistics.mean(c[x] for c in curves) for x in xs]


def plot_curves(plt, task, rows, out):
    classifier = task != "extrapolation"
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(12, 4.5))
    for row in ordered(rows):
        r = rows[row]
        name = " / ".join(label(row)) + f" ({len(r)})"
        x, y = mean_curve(r, lambda run: [(l["step"], l["loss"]) for l in run.metrics
                                          if "split" not in l and l.get("loss") is not None])
        ax_loss.plot(x, y, style(row), color=color(row), label=name)
        key = "accuracy" if classifier else "loss"
        x, y = mean_curve(r, lambda run: [(l["step"], l[key]) for l in run.metrics
                                          if l.get("split") == "val"])
        ax_val.plot(x, [100 * v for v in y] if classifier else y, style(row) + "o",
                    color=color(row), markersize=3, label=name)
    ax_loss.set(xlabel="step", ylabel="training loss (nats)", yscale="log",
                title=f"{task}: training loss, mean over seeds")
    ax_val.set(xlabel="step", ylabel="validation accuracy %" if classifier else
               "validation loss (nats)", title=f"{task}: validation, mean over seeds")
    for ax in (ax_loss, ax_val):
        ax.grid(alpha=0.3)
    ax_val.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, f"curves_{task}.png"), dpi=110)
    plt.close(fig)


def plot_positions(plt, rows, out, bin_size=4):
    n = next(iter(rows.values()))[0].trained_length()
    best = optimum(next(iter(rows.values()))[0].config)
    groups = [[r for r in ordered(rows) if r.startswith("linear")],
              [r for r in ordered(rows) if not r.startswith("linear")]]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
    for ax, group in zip(axes, groups):
        for row in group:
            r = rows[row]
            starts = range(0, 4 * n, bin_size)
            y = [statistics.mean(x.position_loss(s, s + bin_size) for x in r) for s in starts]
            ax.plot(list(starts), y, style(row), color=color(row), drawstyle="steps-post",
                    label=" / ".join(label(row)) + f" ({len(r)})")
        ax.plot(range(4 * n), [best(p, p + 1) for p in range(4 * n)], color="0.5",
                linewidth=0.8, label="best possible")
        for t in (n, 2 * n):
            ax.axvline(t, color="0.3", linestyle="--", linewidth=1)
        ax.set(xlabel="position", title=f"test loss per position (bins of {bin_size}), "
               f"trained on {n}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("cross-entropy (nats)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "positions.png"), dpi=110)
    plt.close(fig)


def plot_variance(plt, lines, out):
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for i, code in enumerate(sorted({l["code"] for l in lines}, reverse=True)):
        pts = sorted((l["R"], l["rel_error"], l["rel_error_std"]) for l in lines
                     if l["code"] == code)
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts], fmt="o-",
                    color=f"C{i}", label=f"{code} SPE", capsize=3)
    r0, e0 = min((l["R"], l["rel_error"]) for l in lines)
    rs = sorted({l["R"] for l in lines})
    ax.plot(rs, [e0 * math.sqrt(r0 / r) for r in rs], "k:", label="∝ 1/√R")
    ax.set(xscale="log", yscale="log", xlabel="realizations R",
           ylabel="|logits − E[logits]| / |E[logits]|",
           title="one draw of SPE's logits against their expectation")
    ax.set_xticks(rs)
    ax.set_xticklabels([str(r) for r in rs])
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "variance.png"), dpi=110)
    plt.close(fig)


def plot_r_tradeoff(plt, rows, out):
    by_r = r_rows(rows)
    n = next(iter(by_r.values()))[0].trained_length()
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for i, (begin, end, name) in enumerate([(0, n, f"loss 0–{n - 1}"),
                                           (2 * n, 4 * n, f"loss {2 * n}–{4 * n - 1}")]):
        xs = [statistics.median(x.ms_per_step() for x in r) for r in by_r.values()]
        ys = [[x.position_loss(begin, end) for x in r] for r in by_r.values()]
        err = [statistics.stdev(y) if len(y) > 1 else 0 for y in ys]
        ax.errorbar(xs, [statistics.mean(y) for y in ys], err, fmt="o-", color=f"C{i}",
                    capsize=3, label=name)
        for R, x, y in zip(by_r, xs, ys):
            ax.annotate(f"R {R}", (x, statistics.mean(y)), xytext=(4, 4),
                        textcoords="offset points", fontsize=7)
    ax.set(xlabel="CPU ms per training step", ylabel="test loss (nats)",
           title="linear attention + gated SineSPE: R on the extrapolation LM")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "r_tradeoff.png"), dpi=110)
    plt.close(fig)


def plot_kernels(runs, out):
    """Seed 0 of every linear-attention SPE row, through scripts/plot_kernels.py."""
    for task in TASKS:
        for row in ("linear-sine_spe", "linear-conv_spe", "linear-conv_spe_2d"):
            seed0 = [x for x in runs.get(task, {}).get(row, []) if x.seed == 0]
            if seed0:
                png = os.path.join(out, f"kernels_{task}_{row.partition('-')[2]}.png")
                lags = 32 if task == "fashion_mnist" else 64
                subprocess.run([sys.executable, os.path.join(HERE, "plot_kernels.py"),
                                seed0[0].path, "--lags", str(lags), "--out", png],
                               check=True, stdout=subprocess.DEVNULL)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study", nargs="?",
                        default=os.path.join(HERE, "..", "build", "runs", "study"))
    parser.add_argument("--out", default=os.path.join(HERE, "..", "docs", "results"))
    args = parser.parse_args()
    if not os.path.isdir(args.study):
        sys.exit(f"results.py: {args.study} is not a directory (run scripts/experiments.sh)")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("results.py: needs matplotlib (Debian: apt-get install python3-matplotlib)")
    os.makedirs(args.out, exist_ok=True)
    runs, unfinished = load_study(args.study)
    variance_dir = os.path.join(args.study, "spe_variance")
    variance_file = os.path.join(variance_dir, "variance.jsonl")
    variance = read_jsonl(variance_file) if os.path.exists(variance_file) else []

    if "extrapolation" in runs:
        main_rows = {k: v for k, v in runs["extrapolation"].items() if k in ROWS}
        print("## extrapolation\n\n" + extrapolation_table(main_rows) + "\n")
        plot_curves(plt, "extrapolation", main_rows, args.out)
        plot_positions(plt, main_rows, args.out)
        if len(r_rows(runs["extrapolation"])) > 1:
            print("## R\n\n" + r_table(runs["extrapolation"]) + "\n")
            plot_r_tradeoff(plt, runs["extrapolation"], args.out)
    for task in ("listops", "fashion_mnist"):
        if task in runs:
            print(f"## {task}\n\n" + classifier_table(runs[task]) + "\n")
            plot_curves(plt, task, runs[task], args.out)
    if variance:
        print("## SPE variance\n\n" + variance_table(variance) + "\n")
        plot_variance(plt, variance, args.out)
    plot_kernels(runs, args.out)
    print("## time\n\n" + time_table(runs, variance_dir) + "\n")
    if unfinished:
        print("unfinished: " + ", ".join(unfinished))


if __name__ == "__main__":
    main()
