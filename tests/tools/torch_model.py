#!/usr/bin/env python3
"""Writes tests/data/models/models.safetensors: the weights, inputs and float32 outputs of four
small transformers built in PyTorch. test_torch_models builds the same models from spear's nn
(same configs, keep them in step with tests/test_torch_models.cpp), loads the weights with
load_state_dict(strict) and must reproduce the logits, and for the language models the loss and
every parameter gradient.

Run with Debian's python3-torch:  /usr/bin/python3 tests/tools/torch_model.py

Where PyTorch has the layer, the reference is PyTorch's own: nn.TransformerEncoderLayer
(norm_first=True is the pre-LN block) with its nn.MultiheadAttention, whose packed in_proj is
split into spear's q_proj/k_proj/v_proj on export. RoPE has no PyTorch layer, so the models that
use it get a hand-written block with the rotation written the way LLaMA's reference code writes
it (pairs as complex numbers times e^(i theta)), a formulation independent of spear's.

Tensor names: "<model>.state.<spear parameter name>", "<model>.ids", "<model>.mask" (1 = padded),
"<model>.logits", and for the language models "<model>.logits_offset" (positions start at
OFFSET), "<model>.loss" (cross-entropy of the logits against "<model>.targets") and
"<model>.grad.<spear parameter name>".
"""
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

from safetensors_writer import write_safetensors

OFFSET = 3


def sinusoidal_table(n, dim, offset=0):
    pos = torch.arange(offset, offset + n, dtype=torch.float64)[:, None]
    freq = 10000.0 ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    pe = torch.zeros(n, dim, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return pe.float()


def rope(x, offset, base=10000.0):
    """x: (B, N, H, D) -> each pair (2i, 2i+1) turned by (offset + p) * base^(-2i/D)."""
    B, N, H, D = x.shape
    freq = base ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
    angles = torch.outer(torch.arange(offset, offset + N, dtype=torch.float64), freq)
    turn = torch.polar(torch.ones_like(angles), angles)[None, :, None, :]  # (1, N, 1, D/2)
    pairs = torch.view_as_complex(x.double().reshape(B, N, H, D // 2, 2).contiguous())
    return torch.view_as_real(pairs * turn).reshape(B, N, H, D).to(x.dtype)


class RopeAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.v_proj, self.out_proj = nn.Linear(dim, dim), nn.Linear(dim, dim)

    def forward(self, x, offset):
        B, N, C = x.shape
        split = lambda t: t.reshape(B, N, self.heads, C // self.heads)
        q, k = rope(split(self.q_proj(x)), offset), rope(split(self.k_proj(x)), offset)
        v = split(self.v_proj(x))
        scores = q.transpose(1, 2) @ k.permute(0, 2, 3, 1) / math.sqrt(C // self.heads)
        future = torch.triu(torch.ones(N, N, dtype=torch.bool), diagonal=1)
        weights = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
        return self.out_proj((weights @ v.transpose(1, 2)).transpose(1, 2).reshape(B, N, C))


class FeedForward(nn.Module):
    def __init__(self, dim, hidden, activation):
        super().__init__()
        self.fc1, self.fc2, self.act = nn.Linear(dim, hidden), nn.Linear(hidden, dim), activation

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class RopeBlock(nn.Module):
    """Pre-LN block with causal RoPE attention, named as spear names it."""

    def __init__(self, dim, heads, hidden, activation):
        super().__init__()
        self.ln1, self.attn = nn.LayerNorm(dim), RopeAttention(dim, heads)
        self.ln2, self.ffn = nn.LayerNorm(dim), FeedForward(dim, hidden, activation)

    def forward(self, x, offset):
        x = x + self.attn(self.ln1(x), offset)
        return x + self.ffn(self.ln2(x))


class Learned(nn.Module):
    def __init__(self, max_len, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(max_len, dim) * 0.02)


class Trunk(nn.Module):
    """embed -> (+ pos) -> blocks -> ln_f. Blocks are nn.TransformerEncoderLayer unless rope."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        self.embed = nn.Embedding(c["vocab"], c["dim"])
        if c["pos"] == "learned":
            self.pos = Learned(c["max_len"], c["dim"])
        act = {"gelu": F.gelu, "relu": F.relu}[c["activation"]]
        make = (lambda: RopeBlock(c["dim"], c["heads"], c["hidden"], act)) if c["rope"] else (
            lambda: nn.TransformerEncoderLayer(c["dim"], c["heads"], c["hidden"], dropout=0.0,
                                               activation=c["activation"], batch_first=True,
                                               norm_first=True))
        self.blocks = nn.ModuleList(make() for _ in range(c["layers"]))
        self.ln_f = nn.LayerNorm(c["dim"])

    def forward(self, ids, pad, causal, offset=0):
        x = self.embed(ids)
        N = ids.shape[1]
        if self.c["pos"] == "sinusoidal":
            x = x + sinusoidal_table(N, self.c["dim"], offset)
        elif self.c["pos"] == "learned":
            x = x + self.pos.weight[offset:offset + N]
        future = torch.triu(torch.full((N, N), float("-inf")), diagonal=1) if causal else None
        for block in self.blocks:
            x = block(x, offset) if self.c["rope"] else block(x, src_mask=future,
                                                              src_key_padding_mask=pad)
        return self.ln_f(x)


class Classifier(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c, self.trunk, self.head = c, Trunk(c), nn.Linear(c["dim"], c["classes"])

    def forward(self, ids, pad):
        h = self.trunk(ids, pad, causal=False)
        if self.c["pooling"] == "cls":
            return self.head(h[:, 0])
        kept = (~pad).sum(1, keepdim=True).to(h.dtype)
        return self.head(h.masked_fill(pad[..., None], 0.0).sum(1) / kept)


class LM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c, self.trunk = c, Trunk(c)
        if not c["tied"]:
            self.head = nn.Linear(c["dim"], c["vocab"], bias=False)

    def forward(self, ids, offset=0):
        h = self.trunk(ids, None, causal=True, offset=offset)
        return h @ self.trunk.embed.weight.T if self.c["tied"] else self.head(h)


BASE = dict(pos="none", rope=False, layers=2, max_len=16, activation="gelu")
MODELS = {
    # name: config (dim, heads, hidden = ffn width, vocab, ...), batch, length
    "classifier_mean": dict(BASE, vocab=20, dim=16, heads=2, hidden=40, classes=3,
                            pos="sinusoidal", pooling="mean"),
    "classifier_cls": dict(BASE, vocab=20, dim=16, heads=4, hidden=64, classes=5, rope=False,
                           pos="learned", pooling="cls", activation="relu"),
    "lm_rope_tied": dict(BASE, vocab=23, dim=16, heads=4, hidden=64, rope=True, tied=True),
    "lm_learned": dict(BASE, vocab=23, dim=16, heads=2, hidden=24, pos="learned", tied=False,
                       activation="relu"),
}


def spear_names(state):
    """PyTorch encoder-layer names -> spear's (the packed in_proj split in q, k, v)."""
    out = {}
    rename = {"norm1": "ln1", "norm2": "ln2", "linear1": "ffn.fc1", "linear2": "ffn.fc2",
              "self_attn.out_proj": "attn.out_proj"}
    for name, t in state.items():
        if ".self_attn.in_proj_" in name:
            prefix, kind = name.split(".self_attn.in_proj_")
            for part, chunk in zip("qkv", t.chunk(3)):
                out[f"{prefix}.attn.{part}_proj.{kind}"] = chunk
            continue
        for old, new in rename.items():
            name = name.replace(f".{old}.", f".{new}.")
        out[name] = t
    return out


def perturb_norms(model, gen):
    """LayerNorm starts at weight 1, bias 0; random values make the test see both."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(k in name for k in ("ln", "norm")):
                p.add_(0.2 * torch.randn(p.shape, generator=gen))


def build(name, c, gen):
    torch.manual_seed(sum(map(ord, name)))
    model = Classifier(c) if "classes" in c else LM(c)
    perturb_norms(model, gen)
    if c.get("tied"):  # a tied table is kept small, as spear initialises it
        with torch.no_grad():
            model.trunk.embed.weight.normal_(0.0, 0.3, generator=gen)
    return model


def main(out_path):
    gen = torch.Generator().manual_seed(0)
    tensors = []
    for name, c in MODELS.items():
        model = build(name, c, gen)
        model.train()  # dropout is 0; train mode keeps PyTorch off its fused inference path
        for key, t in spear_names(model.state_dict()).items():
            tensors.append((f"{name}.state.{key}", t))
        if "classes" in c:
            B, N = 3, 7
            ids = torch.randint(0, c["vocab"], (B, N), generator=gen)
            lengths = torch.tensor([7, 5, 2])
            pad = torch.arange(N)[None, :] >= lengths[:, None]
            with torch.no_grad():
                logits = model(ids, pad)
            tensors += [(f"{name}.ids", ids), (f"{name}.mask", pad.long()),
                        (f"{name}.logits", logits)]
            continue
        B, N = 2, 9
        ids = torch.randint(0, c["vocab"], (B, N), generator=gen)
        targets = torch.randint(0, c["vocab"], (B, N), generator=gen)
        logits = model(ids)
        loss = F.cross_entropy(logits.reshape(B * N, -1), targets.reshape(-1))
        loss.backward()
        with torch.no_grad():
            shifted = model(ids, OFFSET)
        grads = {n: p.grad for n, p in model.named_parameters()}
        tensors += [(f"{name}.ids", ids), (f"{name}.targets", targets),
                    (f"{name}.logits", logits.detach()), (f"{name}.logits_offset", shifted),
                    (f"{name}.loss", loss.detach())]
        tensors += [(f"{name}.grad.{k}", g) for k, g in spear_names(grads).items()]
    write_safetensors(out_path, [(name, t.detach().numpy()) for name, t in tensors],
                      {"writer": "torch_model.py", "torch": torch.__version__})


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    main(sys.argv[1] if len(sys.argv) > 1 else
         os.path.join(here, "..", "data", "models", "models.safetensors"))
