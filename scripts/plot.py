#!/usr/bin/python3
"""Draws the curves of spear-train runs, or spear-eval's per-position losses, into a PNG.

    scripts/plot.py RUN_DIR [RUN_DIR ...] [--out FILE.png]
    scripts/plot.py --positions EVAL.jsonl [EVAL.jsonl ...] [--bin K] [--out FILE.png]

Runs. Left: the training loss (the mean since the previous metrics line), log scale, with the
validation loss dotted. Right: validation accuracy, and sequence accuracy (dashed) for language
models. Reads RUN_DIR/metrics.jsonl and RUN_DIR/config.json; writes RUN_DIR/curves.png for the
first RUN_DIR unless --out says otherwise.

--positions: the loss at each position of the files `spear-eval --run DIR` writes, one curve per
file, averaged over bins of K positions, with a vertical line at the trained length: how a
language model fares beyond the length it was trained at. Writes the first file with .png for
.jsonl unless --out says otherwise.

Needs matplotlib (Debian: python3-matplotlib).
"""
import argparse
import json
import os
import sys


def read_run(run_dir):
    """(train lines, {split: eval lines}, config) of a run directory."""
    path = os.path.join(run_dir, "metrics.jsonl")
    try:
        with open(path) as f:
            lines = [json.loads(line) for line in f if line.strip()]
    except OSError as e:
        sys.exit(f"plot.py: cannot read {path}: {e.strerror}")
    except json.JSONDecodeError as e:
        sys.exit(f"plot.py: {path} is not JSON lines: {e}")
    config = {}
    config_path = os.path.join(run_dir, "config.json")
    if os.path.exists(config_path):
        with open(config_path) as f:
            config = json.load(f)
    train = [l for l in lines if "split" not in l and l.get("loss") is not None]
    evals = {}
    for l in lines:
        if "split" in l:
            evals.setdefault(l["split"], []).append(l)
    return train, evals, config


def label_of(run_dir, config):
    name = os.path.basename(os.path.normpath(run_dir))
    task = config.get("task", {}).get("name")
    model = config.get("model", {})
    if not task:
        return name
    return f"{name} ({task}, dim {model.get('dim')}, {model.get('positional')})"


def read_positions(path):
    """(position lines, summary line) of a spear-eval JSONL file."""
    try:
        with open(path) as f:
            lines = [json.loads(line) for line in f if line.strip()]
    except OSError as e:
        sys.exit(f"plot.py: cannot read {path}: {e.strerror}")
    except json.JSONDecodeError as e:
        sys.exit(f"plot.py: {path} is not JSON lines: {e}")
    positions = [l for l in lines if "position" in l]
    summaries = [l for l in lines if "trained_positions" in l]
    if not positions or not summaries:
        sys.exit(f"plot.py: {path} is not a spear-eval per-position file "
                 "(no position lines or no summary line)")
    return positions, summaries[-1]


def binned(positions, k):
    """(first position of each bin, count-weighted mean loss of the bin)."""
    starts, losses = [], []
    for i in range(0, len(positions), k):
        chunk = positions[i:i + k]
        count = sum(l["count"] for l in chunk)
        starts.append(chunk[0]["position"])
        losses.append(sum(l["loss"] * l["count"] for l in chunk) / count)
    return starts, losses


def plot_positions(plt, paths, k, out):
    fig, ax = plt.subplots(figsize=(8, 4.5))
    trained = set()
    for i, path in enumerate(paths):
        positions, summary = read_positions(path)
        x, y = binned(positions, k)
        name = os.path.basename(os.path.normpath(summary.get("run", path)))
        beyond = summary.get("loss_beyond")
        label = f"{name} ({summary.get('task')}, {summary.get('split')}): " \
                f"within {summary['loss_within']:.3f}" + \
                (f", beyond {beyond:.3f}" if beyond is not None else "")
        ax.plot(x, y, color=f"C{i}", label=label, drawstyle="steps-post" if k > 1 else "default")
        trained.add(summary["trained_positions"])
    for t in sorted(trained):
        ax.axvline(t, color="0.3", linestyle="--", linewidth=1)
        ax.annotate(f"trained length {t}", (t, 1), xycoords=("data", "axes fraction"),
                    xytext=(4, -12), textcoords="offset points", fontsize=8, color="0.3")
    ax.set(xlabel="position", ylabel="cross-entropy (nats)",
           title="loss per position" + (f" (bins of {k})" if k > 1 else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = out or os.path.splitext(paths[0])[0] + ".png"
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


def plot_runs(plt, runs, out):
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, run_dir in enumerate(runs):
        train, evals, config = read_run(run_dir)
        color = f"C{i}"
        label = label_of(run_dir, config)
        ax_loss.plot([l["step"] for l in train], [l["loss"] for l in train], color=color,
                     label=f"{label} train")
        val = [l for l in evals.get("val", []) if l.get("loss") is not None]
        if val:
            ax_loss.plot([l["step"] for l in val], [l["loss"] for l in val], ":o", color=color,
                         markersize=3, label=f"{label} val")
            ax_acc.plot([l["step"] for l in val], [l["accuracy"] for l in val], "-o",
                         color=color, markersize=3, label=f"{label} accuracy")
            if "seq_accuracy" in val[0]:
                ax_acc.plot([l["step"] for l in val], [l["seq_accuracy"] for l in val], "--",
                            color=color, label=f"{label} seq_accuracy")
        for test in evals.get("test", [])[-1:]:
            ax_acc.plot([test["step"]], [test["accuracy"]], "*", color=color, markersize=10,
                        label=f"{label} test {test['accuracy']:.3f}")

    ax_loss.set(xlabel="step", ylabel="cross-entropy", yscale="log", title="loss")
    ax_acc.set(xlabel="step", ylabel="accuracy", ylim=(0, 1.02), title="validation")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    out = out or os.path.join(runs[0], "curves.png")
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", metavar="RUN_DIR|EVAL.jsonl")
    parser.add_argument("--positions", action="store_true",
                        help="the inputs are spear-eval per-position files")
    parser.add_argument("--bin", type=int, default=1, metavar="K",
                        help="--positions: average over bins of K positions (default 1)")
    parser.add_argument("--out", help="the PNG to write")
    args = parser.parse_args()
    if args.bin < 1:
        parser.error("--bin must be >= 1")
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot.py: matplotlib is missing; install it with "
                 "`apt-get install python3-matplotlib` (and run this with /usr/bin/python3)")
    if args.positions:
        plot_positions(plt, args.inputs, args.bin, args.out)
    else:
        plot_runs(plt, args.inputs, args.out)


if __name__ == "__main__":
    main()
