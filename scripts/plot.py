#!/usr/bin/python3
"""Draws the curves of one or more spear-train runs into a PNG.

    scripts/plot.py RUN_DIR [RUN_DIR ...] [--out FILE.png]

Left: the training loss (the mean since the previous metrics line), log scale, with the
validation loss dotted. Right: validation accuracy, and sequence accuracy (dashed) for language
models. Reads RUN_DIR/metrics.jsonl and RUN_DIR/config.json; writes RUN_DIR/curves.png for the
first RUN_DIR unless --out says otherwise. Needs matplotlib (Debian: python3-matplotlib).
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR")
    parser.add_argument("--out", help="the PNG to write (default: RUN_DIR/curves.png)")
    args = parser.parse_args()
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot.py: matplotlib is missing; install it with "
                 "`apt-get install python3-matplotlib` (and run this with /usr/bin/python3)")

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.5))
    for i, run_dir in enumerate(args.runs):
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
    out = args.out or os.path.join(args.runs[0], "curves.png")
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
