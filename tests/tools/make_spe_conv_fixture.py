#!/usr/bin/env python3
"""Writes tests/data/spe/conv_fixture.safetensors: ConvSPE's codes, filter outputs and expected
kernel computed from the formulas of ../shared/reference/spe_reference.md (sections 3.2-3.3) in
numpy, float64, for a 1-D and a 2-D code. test_spe_conv loads the parameters into spear's ConvSPE
and must reproduce every tensor.

Run with Debian's numpy:  /usr/bin/python3 tests/tools/make_spe_conv_fixture.py

The noise is spear's, re-derived here from its definition rather than exported from spear: the
stream seed is splitmix64 applied to (seed, draw, stream) as in spe/spe.cpp, element i of a
stream is Box-Muller of Philox4x32-10 block i as in tensor/random.cpp, and the noise of cell
(t1, t2) (1-D: time t1, t2 = 0), channel c = h*D + d, realization r is element
((t1 * (cols + P2 - 1) + t2) * H*D + c) * R + r as in tensor/kernels/spe.h. The filtering is a
valid cross-correlation over sliding windows (no flip), conv_k making Qbar and conv_q making Kbar
(the reference's swap), scaled by (R D)^(-1/4); the kernel is the filters' cross-correlation.

Contents, for prefix conv1d (H=2, D=3, R=4, P=4, N=7 positions from offset 5) and conv2d (H=1,
D=2, R=3, P=(2, 3), grid 3 x 4, offset 0):
  conv_q, conv_k (H*D, 1, P...)                  parameters
  noise (rows + P1 - 1, cols + P2 - 1, H*D, R)   the noise window of the positions
  qbar, kbar (1, N, H, D, R)                     the codes of draw `draw`
  q, k (B, N, H, D), qhat, khat (B, N, H, R)     the filter's inputs and outputs (B = 2)
  lags (L) or (L, 2) i64, kernel (H, D, L)       P_c(lag) = sum_j Wk[c, j] Wq[c, j + lag]
Metadata: seed, draw, and per prefix the offset, kernel size and grid.
"""
import json
import os
import sys

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

import spear_random
from safetensors_writer import write_safetensors

SEED, DRAW, B = 2021, 3, 2
CASES = {
    "conv1d": dict(H=2, D=3, R=4, P=(4,), grid=(7, 1), offset=5),
    "conv2d": dict(H=1, D=2, R=3, P=(2, 3), grid=(3, 4), offset=0),
}


def stream_seed(stream):
    return spear_random.stream_seed(SEED, DRAW, stream)


def noise(seed, rows, cols, C, R):
    """eps[t1, t2, c, r] for rows 0 .. rows-1 and columns 0 .. cols-1 of the extended grid."""
    out = np.empty((rows, cols, C, R))
    for t1, t2, c, r in np.ndindex(out.shape):
        out[t1, t2, c, r] = spear_random.normal(seed, ((t1 * cols + t2) * C + c) * R + r)
    return out


def build(prefix, H, D, R, P, grid, offset):
    rng = np.random.default_rng(11 if prefix == "conv1d" else 12)
    C, (N1, N2) = H * D, grid
    P1, P2 = P[0], P[1] if len(P) == 2 else 1
    N = N1 * N2
    conv_q = rng.normal(size=(C, 1) + P)
    conv_k = rng.normal(size=(C, 1) + P)
    q, k = rng.normal(size=(B, N, H, D)), rng.normal(size=(B, N, H, D))

    # The rows the positions need: offset .. offset + N1 + P1 - 2, every extended column.
    eps = noise(stream_seed(0), offset + N1 + P1 - 1, N2 + P2 - 1, C, R)[offset:]
    windows = sliding_window_view(eps, (P1, P2), axis=(0, 1))  # (N1, N2, C, R, P1, P2)
    scale = (R * D) ** -0.25

    def code(weight):
        w = weight.reshape(C, P1, P2)
        return scale * np.einsum("ijcrab,cab->ijcr", windows, w).reshape(1, N, H, D, R)

    qbar, kbar = code(conv_k), code(conv_q)
    qhat = np.einsum("bnhd,nhdr->bnhr", q, qbar[0])
    khat = np.einsum("bnhd,nhdr->bnhr", k, kbar[0])

    # P_c(t1, t2) = sum_j Wk[c, j] Wq[c, j + t]: Wq zero-padded by E = P + 1 on each side, so
    # every lag up to P + 1 is a shifted window of it.
    wk, wq = conv_k.reshape(C, P1, P2), conv_q.reshape(C, P1, P2)
    E1, E2 = P1 + 1, P2 + 1
    padded = np.zeros((C, P1 + 2 * E1, P2 + 2 * E2))
    padded[:, E1:E1 + P1, E2:E2 + P2] = wq
    if len(P) == 1:
        lags = np.arange(-P1 - 1, P1 + 2, dtype=np.int64)
        pairs = [(t, 0) for t in lags]
    else:
        lags = np.array([(t1, t2) for t1 in range(-P1, P1 + 1) for t2 in range(-P2, P2 + 1)],
                        dtype=np.int64)
        pairs = [tuple(t) for t in lags]
    kernel = np.stack([
        np.einsum("cab,cab->c", wk, padded[:, E1 + t1:E1 + t1 + P1, E2 + t2:E2 + t2 + P2])
        for t1, t2 in pairs], axis=-1).reshape(H, D, len(pairs))
    tensors = dict(conv_q=conv_q, conv_k=conv_k, noise=eps, qbar=qbar, kbar=kbar, q=q, k=k,
                   qhat=qhat, khat=khat, lags=lags, kernel=kernel)
    return {f"{prefix}.{name}": array for name, array in tensors.items()}


def main(out_path):
    metadata = {"writer": "make_spe_conv_fixture.py", "seed": str(SEED), "draw": str(DRAW)}
    tensors = {}
    for prefix, case in CASES.items():
        tensors.update(build(prefix, **case))
        metadata[f"{prefix}.offset"] = str(case["offset"])
        metadata[f"{prefix}.kernel_size"] = json.dumps(list(case["P"]))
        metadata[f"{prefix}.grid"] = json.dumps(list(case["grid"]))
    write_safetensors(out_path, tensors.items(), metadata)


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    main(sys.argv[1] if len(sys.argv) > 1 else
         os.path.join(here, "..", "data", "spe", "conv_fixture.safetensors"))
