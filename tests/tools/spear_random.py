"""spear's random numbers re-derived in Python (tensor/random.h, spe/spe.cpp), so fixtures can
check spear's draws independently of its C++ code.
"""
import math

import numpy as np

M32, M64 = 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def stream_seed(seed, draw, stream):
    """PositionalCode::stream_seed: the seed of one noise stream of one SPE draw."""
    return splitmix64(splitmix64(splitmix64(seed) ^ (draw & M64)) ^ stream)


def philox4x32(c, k):
    c, k = list(c), list(k)
    for rnd in range(10):
        if rnd > 0:
            k = [(k[0] + 0x9E3779B9) & M32, (k[1] + 0xBB67AE85) & M32]
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [((p1 >> 32) ^ c[1] ^ k[0]) & M32, p1 & M32, ((p0 >> 32) ^ c[3] ^ k[1]) & M32,
             p0 & M32]
    return c


def normal(seed, i):
    """Element i of spear::randn(..., f64, &Generator(seed)): Box-Muller of Philox block i."""
    b = philox4x32([i & M32, i >> 32, 0, 0], [seed & M32, seed >> 32])
    u1 = (float(((b[0] << 32) | b[1]) >> 12) + 0.5) * 2.0**-52
    u2 = float(((b[2] << 32) | b[3]) >> 11) * 2.0**-53
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2 * math.pi * u2)


def randn(shape, seed):
    """spear::randn(shape, f64, &Generator(seed))."""
    return np.array([normal(seed, i) for i in range(int(np.prod(shape)))]).reshape(shape)
