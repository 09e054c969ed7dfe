#!/usr/bin/python3
"""Draws the positional kernels an SPE model learned, one panel per layer and head.

    scripts/plot_kernels.py RUN_DIR [--lags L] [--out FILE.png]

Reads RUN_DIR/model.safetensors and, for every SPE filter in it, computes the expected kernel
E[qhat_m . khat_n] per feature as a function of the lag tau = m - n (spe/spe.h, spec sections
2.4, 3.3, 4.2):
  sine: P_d(tau) = sum_k softplus(G_dk)^2 / (2K) cos(2 pi sigmoid(F_dk) / 2 tau + theta_dk)
  conv: P_d(tau) = sum_j conv_k[d, j] conv_q[d, j + tau]
  gate: (1 - gamma_d) P_d(tau) + gamma_d, gamma = sigmoid(gate)
Each panel shows the kernel of every feature of one head (thin lines) and their mean (thick),
for lags -L..L (default 64). Writes RUN_DIR/kernels.png unless --out says otherwise. 2-D
convolutional codes are drawn along their first axis.

Needs numpy and matplotlib (Debian: python3-numpy, python3-matplotlib).
"""
import argparse
import json
import os
import re
import struct
import sys

import numpy as np

DTYPES = {"F32": "<f4", "F64": "<f8", "I64": "<i8"}


def load_safetensors(path):
    """{name: numpy array} of a safetensors file."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        sys.exit(f"plot_kernels.py: cannot read {path}: {e.strerror}")
    (size,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + size])
    data = blob[8 + size:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        out[name] = np.frombuffer(data[begin:end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
    return out


def softplus(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def sine_kernel(freqs, offsets, gains, lags):
    """(H, D, K) parameters -> (H, D, L)."""
    f = sigmoid(freqs.astype(np.float64)) / 2
    amplitude = softplus(gains.astype(np.float64)) ** 2 / (2 * freqs.shape[-1])
    angle = 2 * np.pi * f[..., None] * lags + offsets[..., None]
    return (amplitude[..., None] * np.cos(angle)).sum(axis=2)


def conv_kernel(conv_q, conv_k, heads, lags):
    """(H*D, 1, P...) filters -> (H, D, L), along the first axis of 2-D filters."""
    wq = conv_q.reshape(conv_q.shape[0], conv_q.shape[2], -1).astype(np.float64)
    wk = conv_k.reshape(conv_k.shape[0], conv_k.shape[2], -1).astype(np.float64)
    p = wq.shape[1]
    out = np.zeros((wq.shape[0], len(lags)))
    for i, tau in enumerate(lags):
        lo, hi = max(0, -tau), min(p, p - tau)
        if lo < hi:  # sum_j wk[j] wq[j + tau], and over the second axis at lag 0
            out[:, i] = (wk[:, lo:hi] * wq[:, lo + tau:hi + tau]).sum(axis=(1, 2))
    return out.reshape(heads, -1, len(lags))


def find_filters(state):
    """[(label, kernel function of lags)] for every SPE filter of a state dict, by layer."""
    filters = []
    codes = {}
    for name in state:
        m = re.match(r"(.*)\.qk_encoding\.code\.(freqs|conv_q)$", name)
        if m:
            codes[m.group(1)] = m.group(1) + ".qk_encoding.code."
    shared = next(iter(codes.values()), None)
    for name in sorted(state, key=lambda n: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)]):
        m = re.match(r"(.*)\.qk_encoding\.gate$", name) or re.match(r"(.*)\.qk_encoding\.code\.(?:freqs|conv_q)$", name)
        if not m or any(label == m.group(1) for label, _ in filters):
            continue
        layer = m.group(1)
        prefix = codes.get(layer, shared)  # a layer without its own code shares layer 0's
        if prefix is None:
            continue
        gate = state.get(layer + ".qk_encoding.gate")

        def kernel(lags, prefix=prefix, gate=gate):
            if prefix + "freqs" in state:
                p = sine_kernel(state[prefix + "freqs"], state[prefix + "offsets"], state[prefix + "gains"], lags)
            else:
                heads = gate.shape[0] if gate is not None else 1
                p = conv_kernel(state[prefix + "conv_q"], state[prefix + "conv_k"], heads, lags)
            if gate is not None:
                g = sigmoid(gate.astype(np.float64))[..., None]
                p = (1 - g) * p + g
            return p

        filters.append((layer, kernel))
    return filters


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--lags", type=int, default=64)
    parser.add_argument("--out")
    args = parser.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("plot_kernels.py: needs matplotlib (Debian: apt-get install python3-matplotlib)")
    state = load_safetensors(os.path.join(args.run_dir, "model.safetensors"))
    filters = find_filters(state)
    if not filters:
        sys.exit(f"plot_kernels.py: {args.run_dir}/model.safetensors has no SPE filter "
                 "(train with model.positional = sine_spe or conv_spe)")
    lags = np.arange(-args.lags, args.lags + 1)
    kernels = [(label, fn(lags)) for label, fn in filters]
    heads = kernels[0][1].shape[0]
    fig, axes = plt.subplots(len(kernels), heads, figsize=(3 * heads, 2.2 * len(kernels)),
                             squeeze=False, sharex=True)
    for row, (label, k) in enumerate(kernels):
        for h in range(heads):
            ax = axes[row][h]
            ax.plot(lags, k[h].T, color="0.75", linewidth=0.5)
            ax.plot(lags, k[h].mean(axis=0), color="C0", linewidth=1.5)
            ax.axvline(0, color="0.5", linewidth=0.5)
            ax.set_title(f"{label.replace('.attn', '')} head {h}", fontsize=8)
            ax.tick_params(labelsize=7)
    for ax in axes[-1]:
        ax.set_xlabel("lag m - n (query - key)", fontsize=8)
    fig.tight_layout()
    out = args.out or os.path.join(args.run_dir, "kernels.png")
    fig.savefig(out, dpi=110)
    print(out)


if __name__ == "__main__":
    main()
