"""PyTorch twins of the models spear-train builds (examples/train/model.cpp), for
bench/compare_torch.py: the same blocks, widths and parameter count from the same resolved config.

Written the way a PyTorch user writes them: pre-LN blocks with separate q/k/v projections (as
spear names them), softmax attention as two batched matmuls, linear attention and FAVOR+ as
einsums. SPE comes in two formulations (`spe`, "reference" or "einsum"):
* "reference" is the reference implementation (aliutkus/spe, spe_reference.md 2-4) as written:
  per draw, codes Qbar, Kbar of shape (N, H, D, R) shared over the batch, gated, then applied
  as (qbar * q[..., None]).sum(-2), which materialises a (B, N, H, D, R) product; ConvSPE draws
  4P extra noise samples per axis and keeps positions P .. P + N - 1 of the filtered noise.
* "einsum" is what a PyTorch user would write for speed: the same codes, contracted with one
  einsum (no (B, N, H, D, R) product), and ConvSPE noise only as long as the filters reach.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class SineSPE(nn.Module):
    """Spec 2: freqs, offsets, gains (H, D, K)."""

    def __init__(self, heads, dim, realizations, sines):
        super().__init__()
        self.heads, self.dim, self.realizations = heads, dim, realizations
        self.freqs = nn.Parameter(torch.randn(heads, dim, sines) - 4)
        self.offsets = nn.Parameter(torch.randn(heads, dim, sines))
        self.gains = nn.Parameter(torch.randn(heads, dim, sines))

    def codes(self, n):
        """-> Qbar, Kbar: (N, H, D, R), without the (R D)^(-1/4) scale."""
        H, D, K = self.freqs.shape
        f = torch.sigmoid(self.freqs) / 2
        angle = 2 * math.pi * f[:, :, None, :] * torch.arange(n)[None, None, :, None]
        theta = self.offsets[:, :, None, :]
        om_q = torch.stack([torch.cos(angle + theta), torch.sin(angle + theta)], -1).flatten(-2)
        om_k = torch.stack([torch.cos(angle), torch.sin(angle)], -1).flatten(-2)
        gain = F.softplus(self.gains).repeat_interleave(2, -1)  # g0, g0, g1, g1, ...
        z = gain[..., None] * torch.randn(H, D, 2 * K, self.realizations) / math.sqrt(2 * K)
        return (torch.einsum("hdnc,hdcr->nhdr", om_q, z),
                torch.einsum("hdnc,hdcr->nhdr", om_k, z))


class ConvSPE(nn.Module):
    """Spec 3: depthwise filters conv_q, conv_k (H*D, 1, *P); conv_k makes Qbar, as in the
    reference. `grid` (N1, N2) for 2-D codes over a row-major grid, else None."""

    def __init__(self, heads, dim, realizations, kernel_size, grid, spe="reference"):
        super().__init__()
        self.heads, self.dim, self.realizations, self.grid = heads, dim, realizations, grid
        self.reference = spe == "reference"
        shape = (heads * dim, 1) + (kernel_size,) * (2 if grid else 1)
        bound = math.sqrt(math.prod(shape[2:]) / 2)
        self.conv_q = nn.Parameter(torch.rand(shape) / bound)
        self.conv_k = nn.Parameter(torch.rand(shape) / bound)

    def codes(self, n):
        C, R = self.heads * self.dim, self.realizations
        P = self.conv_q.shape[2:]
        sizes = self.grid or (n,)
        pad = [4 * p if self.reference else p - 1 for p in P]
        noise = torch.randn(R, C, *(s + e for s, e in zip(sizes, pad)))
        conv = F.conv2d if self.grid else F.conv1d
        qbar, kbar = conv(noise, self.conv_k, groups=C), conv(noise, self.conv_q, groups=C)
        if self.reference:  # the filtered noise at positions P .. P + N - 1 of each axis
            window = (slice(None), slice(None), *(slice(p, p + s) for s, p in zip(sizes, P)))
            qbar, kbar = qbar[window], kbar[window]
        to_codes = lambda x: x.reshape(R, self.heads, self.dim, n).permute(3, 1, 2, 0)
        return to_codes(qbar), to_codes(kbar)


class SPEFilter(nn.Module):
    """Spec 4.1-4.2: (q, k) (B, N, H, D) -> (B, N, H, R). The code is registered only by the
    filter that owns it (one shared code: layer 0's); the draw of a shared code is made once per
    forward pass by the model and handed to every layer as `codes`."""

    def __init__(self, code, gated, owns_code, spe="reference"):
        super().__init__()
        self.reference = spe == "reference"
        if owns_code:
            self.code = code
        self.gate = nn.Parameter(torch.randn(code.heads, code.dim)) if gated else None

    def forward(self, q, k, codes=None):
        qbar, kbar = codes if codes is not None else self.code.codes(q.shape[1])
        H, D, R = q.shape[2], q.shape[3], qbar.shape[-1]
        scale = (R * D) ** -0.25
        qbar, kbar = qbar * scale, kbar * scale
        if self.gate is not None:
            gamma = torch.sigmoid(self.gate)[..., None]  # (H, D, 1)
            eta = torch.randn(H, D, R) * scale
            qbar = torch.sqrt(1 - gamma) * qbar + torch.sqrt(gamma) * eta
            kbar = torch.sqrt(1 - gamma) * kbar + torch.sqrt(gamma) * eta
        if self.reference:
            return (qbar * q[..., None]).sum(-2), (kbar * k[..., None]).sum(-2)
        return (torch.einsum("bnhd,nhdr->bnhr", q, qbar),
                torch.einsum("bnhd,nhdr->bnhr", k, kbar))


class Rotary(nn.Module):
    """RoPE: pair (2i, 2i+1) turned by p * 10000^(-2i/D)."""

    def forward(self, q, k, codes=None):
        N, D = q.shape[1], q.shape[3]
        freq = 10000.0 ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
        angle = (torch.arange(N, dtype=torch.float64)[:, None] * freq).repeat_interleave(2, -1)
        cos, sin = angle.cos().float()[:, None, :], angle.sin().float()[:, None, :]

        def rotate(x):
            pairs = x.reshape(*x.shape[:-1], D // 2, 2)
            turned = torch.stack([-pairs[..., 1], pairs[..., 0]], -1).reshape(x.shape)
            return x * cos + turned * sin

        return rotate(q), rotate(k)


def feature_map(name, width, features):
    if name == "elu":
        return lambda x, is_query: F.elu(x) + 1
    if name == "relu":
        return lambda x, is_query: F.relu(x) + 1e-3
    return Favor(width, features)


class Favor(nn.Module):
    """FAVOR+ positive orthogonal random features, projection (m, D) a buffer."""

    def __init__(self, width, features):
        super().__init__()
        # Orthonormal blocks of `width` rows, each row scaled by a chi(width) length.
        blocks = [torch.linalg.qr(torch.randn(width, width))[0]
                  for _ in range(-(-features // width))]
        lengths = torch.randn(features, width).norm(dim=1, keepdim=True)
        rows = torch.cat(blocks)[:features] * lengths
        self.register_buffer("projection", rows)

    def forward(self, x, is_query):
        d, m = self.projection.shape[1], self.projection.shape[0]
        xh = x * d ** -0.25
        logits = xh @ self.projection.T - (xh * xh).sum(-1, keepdim=True) / 2
        if is_query:
            logits = logits - logits.amax(-1, keepdim=True).detach()
        return torch.exp(logits) / math.sqrt(m)


def softmax_attention(q, k, v, causal):
    """(B, N, H, W), (B, N, H, W), (B, N, H, M) -> (B, N, H, M); scale 1/sqrt(W) as spear's."""
    scores = q.transpose(1, 2) @ k.permute(0, 2, 3, 1) / math.sqrt(q.shape[-1])
    if causal:
        N = q.shape[1]
        scores = scores.masked_fill(torch.ones(N, N, dtype=torch.bool).triu(1), float("-inf"))
    return (torch.softmax(scores, -1) @ v.transpose(1, 2)).transpose(1, 2)


def linear_attention(fq, fk, v, causal, eps=1e-6):
    """Features (B, N, H, F), values (B, N, H, M) -> (B, N, H, M). Causal: a cumsum of outer
    products, the way it is written without a custom kernel."""
    if causal:
        kv = torch.cumsum(torch.einsum("bnhf,bnhm->bnhfm", fk, v), dim=1)
        num = torch.einsum("bnhf,bnhfm->bnhm", fq, kv)
        den = torch.einsum("bnhf,bnhf->bnh", fq, torch.cumsum(fk, dim=1))
    else:
        kv = torch.einsum("bnhf,bnhm->bhfm", fk, v)
        num = torch.einsum("bnhf,bhfm->bnhm", fq, kv)
        den = torch.einsum("bnhf,bhf->bnh", fq, fk.sum(1))
    return num / (den[..., None] + eps)


class Attention(nn.Module):
    def __init__(self, m, qk_encoding):
        super().__init__()
        C, H = m["dim"], m["heads"]
        self.heads, self.kind, self.eps = H, m["attention"]["kind"], m["attention"]["eps"]
        self.q_proj, self.k_proj = nn.Linear(C, C), nn.Linear(C, C)
        self.v_proj, self.out_proj = nn.Linear(C, C), nn.Linear(C, C)
        self.qk_encoding = qk_encoding
        if self.kind != "softmax":
            width = m["spe"]["realizations"] if isinstance(qk_encoding, SPEFilter) else C // H
            name = "favor" if self.kind == "favor" else m["attention"]["feature_map"]
            self.phi = feature_map(name, width, m["attention"]["features"] or width)

    def forward(self, x, causal, codes):
        B, N, C = x.shape
        split = lambda t: t.reshape(B, N, self.heads, C // self.heads)
        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        if self.qk_encoding is not None:
            q, k = self.qk_encoding(q, k, codes)
        if self.kind == "softmax":
            out = softmax_attention(q, k, v, causal)
        else:
            out = linear_attention(self.phi(q, True), self.phi(k, False), v, causal, self.eps)
        return self.out_proj(out.reshape(B, N, C))


class Block(nn.Module):
    """Pre-LN: x + attn(ln1(x)), then x + ffn(ln2(x)); dropout on each sublayer's output."""

    def __init__(self, m, qk_encoding):
        super().__init__()
        C, p = m["dim"], m["dropout"]
        self.ln1, self.attn = nn.LayerNorm(C), Attention(m, qk_encoding)
        self.ln2 = nn.LayerNorm(C)
        self.ffn = nn.Sequential(nn.Linear(C, m["ffn_hidden"]),
                                 nn.GELU() if m["activation"] == "gelu" else nn.ReLU(),
                                 nn.Dropout(p), nn.Linear(m["ffn_hidden"], C))
        self.drop = nn.Dropout(p)

    def forward(self, x, causal, codes):
        x = x + self.drop(self.attn(self.ln1(x), causal, codes))
        return x + self.drop(self.ffn(self.ln2(x)))


def sinusoidal(n, dim):
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    freq = 10000.0 ** (-(torch.arange(dim) - torch.arange(dim) % 2).double() / dim)
    angle = pos * freq
    return torch.where(torch.arange(dim) % 2 == 0, angle.sin(), angle.cos()).float()


class Model(nn.Module):
    """EncoderClassifier or CausalLM, from a spear-bench train row: row["model"] is the resolved
    model config, row["task"] the head, vocabulary, classes, N and grid; row["torch_spe"] the SPE
    formulation (default "reference")."""

    def __init__(self, row):
        super().__init__()
        m, task = row["model"], row["task"]
        C, H, n = m["dim"], m["heads"], task["n"]
        self.lm, self.pooling, self.positional = task["head"] == "lm", m["pooling"], m["positional"]
        self.embed = nn.Embedding(task["vocab"], C)
        if self.positional == "learned":
            self.pos = nn.Parameter(torch.randn(m["max_len"] or n, C) * 0.02)
        spe = m["spe"]
        shared = spe["share_across_layers"]
        formulation = row.get("torch_spe", "reference")

        def make_code():
            if self.positional == "sine_spe":
                return SineSPE(H, C // H, spe["realizations"], spe["sines"])
            grid = tuple(task["grid"]) if spe["ndim"] == 2 else None
            return ConvSPE(H, C // H, spe["realizations"], spe["kernel_size"], grid, formulation)

        made = []  # the codes made so far: a shared one is made once, by layer 0

        def encoding():
            if self.positional == "rope":
                return Rotary()
            if self.positional not in ("sine_spe", "conv_spe"):
                return None
            if shared and made:
                return SPEFilter(made[0], spe["gated"], False, formulation)
            made.append(make_code())
            return SPEFilter(made[-1], spe["gated"], True, formulation)

        self.blocks = nn.ModuleList(Block(m, encoding()) for _ in range(m["layers"]))
        self.shared = shared and self.positional in ("sine_spe", "conv_spe")
        self.ln_f = nn.LayerNorm(C)
        if self.lm:
            self.tied = m["tie_embeddings"]
            if not self.tied:
                self.head = nn.Linear(C, task["vocab"], bias=False)
        else:
            self.head = nn.Linear(C, task["classes"])

    def forward(self, ids):
        N = ids.shape[1]
        x = self.embed(ids)
        if self.positional == "sinusoidal":
            x = x + sinusoidal(N, x.shape[-1])
        elif self.positional == "learned":
            x = x + self.pos[:N]
        # One draw of a shared code per forward pass, for every layer (spec 4.5).
        codes = self.blocks[0].attn.qk_encoding.code.codes(N) if self.shared else None
        for block in self.blocks:
            x = block(x, self.lm, codes)
        h = self.ln_f(x)
        if self.lm:
            return h @ self.embed.weight.T if self.tied else self.head(h)
        return self.head(h[:, 0] if self.pooling == "cls" else h.mean(1))


def optimizer(model, t):
    """AdamW with spear's two groups: weight decay on parameters of 2+ dims only."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": t["weight_decay"]},
                              {"params": rest, "weight_decay": 0.0}],
                             lr=t["lr"], betas=(t["beta1"], t["beta2"]), eps=t["eps"])


def training_step(model, opt, ids, targets, grad_clip):
    """One step as spear-bench train takes it; returns the loss."""
    opt.zero_grad(set_to_none=True)
    logits = model(ids)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
    loss.backward()
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return loss.item()
