#!/usr/bin/env python3
"""Writes tests/data/autograd/fixtures.safetensors: inputs, outputs and gradients of three
composite functions computed by PyTorch in float64. test_torch_fixtures rebuilds the same
functions from spear's ops and must match every tensor to 1e-10.

Run with Debian's python3-torch:  /usr/bin/python3 tests/tools/make_autograd_fixtures.py

The functions (keep them in step with tests/test_torch_fixtures.cpp):
  mlp:       2-layer MLP with layer norm, GELU and cross-entropy (label smoothing, ignore_index)
  attention: one causal softmax self-attention block, 2 heads, loss = mean(out^2)
  causal:    a cumsum-based causal linear attention with elu+1 features, loss = sum(out * w)
"""
import os
import sys

import torch
import torch.nn.functional as F

from safetensors_writer import write_safetensors

torch.manual_seed(0)
DT = torch.float64


def leaf(*shape):
    return torch.randn(*shape, dtype=DT, requires_grad=True)


def mlp():
    x, w1, b1 = leaf(4, 6), leaf(8, 6), leaf(8)
    ln_w, ln_b, w2, b2 = leaf(8), leaf(8), leaf(3, 8), leaf(3)
    targets = torch.tensor([2, 0, -100, 1])
    h = F.gelu(F.layer_norm(x @ w1.T + b1, (8,), ln_w, ln_b, eps=1e-5))
    loss = F.cross_entropy(h @ w2.T + b2, targets, ignore_index=-100, label_smoothing=0.1)
    inputs = dict(x=x, w1=w1, b1=b1, ln_w=ln_w, ln_b=ln_b, w2=w2, b2=b2)
    return inputs, {"targets": targets}, loss


def attention():
    x, wq, wk, wv = leaf(2, 5, 8), leaf(8, 8), leaf(8, 8), leaf(8, 8)
    heads = lambda t: t.reshape(2, 5, 2, 4).transpose(1, 2)  # (B, H, N, D)
    q, k, v = heads(x @ wq.T), heads(x @ wk.T), heads(x @ wv.T)
    scores = q @ k.transpose(-1, -2) / 2.0  # sqrt(D) = 2
    future = torch.triu(torch.ones(5, 5), diagonal=1)
    att = torch.softmax(scores.masked_fill(future.bool(), -1e9), dim=-1)
    out = (att @ v).transpose(1, 2).reshape(2, 5, 8)
    return dict(x=x, wq=wq, wk=wk, wv=wv), {}, (out**2).mean()


def causal():
    q, k, v = leaf(2, 6, 4), leaf(2, 6, 4), leaf(2, 6, 3)
    w = torch.randn(2, 6, 3, dtype=DT)
    phi_q, phi_k = F.elu(q) + 1, F.elu(k) + 1
    kv = torch.cumsum(phi_k[..., :, None] * v[..., None, :], dim=1)  # (B, N, D, M)
    num = (phi_q[..., None] * kv).sum(-2)
    den = (phi_q * torch.cumsum(phi_k, dim=1)).sum(-1, keepdim=True)
    out = num / den
    return dict(q=q, k=k, v=v), {"w": w}, (out * w).sum()


def main(out_path):
    tensors = []
    for name, build in [("mlp", mlp), ("attention", attention), ("causal", causal)]:
        inputs, constants, loss = build()
        loss.backward()
        for key, t in inputs.items():
            tensors.append((f"{name}.input.{key}", t.detach().numpy()))
            tensors.append((f"{name}.grad.{key}", t.grad.numpy()))
        for key, t in constants.items():
            tensors.append((f"{name}.const.{key}", t.numpy()))
        tensors.append((f"{name}.loss", loss.detach().numpy()))
    write_safetensors(out_path, tensors,
                      {"writer": "make_autograd_fixtures.py", "torch": torch.__version__})


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    main(sys.argv[1] if len(sys.argv) > 1 else
         os.path.join(here, "..", "data", "autograd", "fixtures.safetensors"))
