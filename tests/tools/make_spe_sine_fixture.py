#!/usr/bin/env python3
"""Writes tests/data/spe/sine_fixture.safetensors: SineSPE and a gated SPEFilter computed from the
formulas of ../shared/reference/spe_reference.md (sections 2.2-2.4 and 4.2) in numpy, float64.
test_spe_sine loads the parameters into spear's modules and must reproduce every tensor.

Run with Debian's numpy:  /usr/bin/python3 tests/tools/make_spe_sine_fixture.py

The noise is spear's, re-derived here from its definition rather than exported from spear: the
stream seed is splitmix64 applied to (seed, draw, stream) as in spe/spe.cpp, and element i of a
stream is Box-Muller of Philox4x32-10 block i, as in tensor/random.cpp. So the fixture checks the
whole chain (seeding, noise layout, interleaving, gains, scaling, gate) against an independent
implementation, and a change to any of them (which would change what a seed means) fails it.

Contents (H=2 heads, D=3 features, K=2 sines, R=4 realizations, N=6 positions from offset 5):
  freqs, offsets, gains (H, D, K), gate (H, D)   parameters (raw, before sigmoid/softplus)
  qbar, kbar (1, N, H, D, R)                      the codes of draw `draw`
  lags (L) i64, kernel (H, D, L)                  P_hd(lag), and gated_kernel = (1-g) P + g
  eta (H, D, R)                                   the gate noise of layer `layer`
  q, k (B, N, H, D), qhat, khat (B, N, H, R)      the gated filter's inputs and outputs
Metadata: seed, draw, offset, layer.
"""
import math
import os
import sys

import numpy as np

import spear_random
from safetensors_writer import write_safetensors

H, D, K, R, N, B = 2, 3, 2, 4, 6, 2
SEED, DRAW, OFFSET, LAYER = 2021, 3, 5, 1


def stream_seed(stream):
    return spear_random.stream_seed(SEED, DRAW, stream)


def softplus(x):
    return np.log1p(np.exp(x))


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def build():
    rng = np.random.default_rng(7)
    freqs = rng.normal(size=(H, D, K)) - 2.0  # faster than the init's -4, to see the sines turn
    offsets = rng.normal(size=(H, D, K))
    gains = rng.normal(size=(H, D, K))
    gate = rng.normal(size=(H, D))
    q = rng.normal(size=(B, N, H, D))
    k = rng.normal(size=(B, N, H, D))

    f = sigmoid(freqs) / 2
    scale = (R * D) ** -0.25
    eps = spear_random.randn((H, D, 2 * K, R), stream_seed(0))
    lam = np.repeat(softplus(gains), 2, axis=-1)  # g0, g0, g1, g1, ...
    z = lam[..., None] * eps / math.sqrt(2 * K)  # (H, D, 2K, R)

    pos = OFFSET + np.arange(N)
    alpha_k = 2 * np.pi * f[None] * pos[:, None, None, None]  # (N, H, D, K)
    alpha_q = alpha_k + offsets[None]

    def bases(alpha):  # (N, H, D, 2K): [cos_0, sin_0, cos_1, sin_1, ...]
        return np.stack([np.cos(alpha), np.sin(alpha)], axis=-1).reshape(N, H, D, 2 * K)

    qbar = scale * np.einsum("nhdc,hdcr->nhdr", bases(alpha_q), z)[None]
    kbar = scale * np.einsum("nhdc,hdcr->nhdr", bases(alpha_k), z)[None]

    lags = np.arange(-9, 10, dtype=np.int64)
    power = softplus(gains) ** 2 / (2 * K)
    kernel = np.einsum("hdk,hdkl->hdl", power,
                       np.cos(2 * np.pi * f[..., None] * lags + offsets[..., None]))
    gamma = sigmoid(gate)
    gated_kernel = (1 - gamma[..., None]) * kernel + gamma[..., None]

    eta = spear_random.randn((H, D, R), stream_seed(1 + LAYER)) * (D * R) ** -0.25
    qbar_g = np.sqrt(1 - gamma)[..., None] * qbar[0] + np.sqrt(gamma)[..., None] * eta
    kbar_g = np.sqrt(1 - gamma)[..., None] * kbar[0] + np.sqrt(gamma)[..., None] * eta
    qhat = np.einsum("bnhd,nhdr->bnhr", q, qbar_g)
    khat = np.einsum("bnhd,nhdr->bnhr", k, kbar_g)
    return dict(freqs=freqs, offsets=offsets, gains=gains, gate=gate, qbar=qbar, kbar=kbar,
                lags=lags, kernel=kernel, gated_kernel=gated_kernel, eta=eta, q=q, k=k,
                qhat=qhat, khat=khat)


def main(out_path):
    write_safetensors(out_path, build().items(),
                      {"writer": "make_spe_sine_fixture.py", "seed": str(SEED), "draw": str(DRAW),
                       "offset": str(OFFSET), "layer": str(LAYER)})


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    main(sys.argv[1] if len(sys.argv) > 1 else
         os.path.join(here, "..", "data", "spe", "sine_fixture.safetensors"))
