#!/usr/bin/env python3
"""Writes tests/data/optim/fixtures.safetensors: five steps of PyTorch's SGD, Adam and AdamW on
three float64 parameters with fixed gradients. test_optim replays the same steps with spear's
optimisers and must match every parameter and state tensor to 1e-12.

Run with Debian's python3-torch:  /usr/bin/python3 tests/tools/make_optim_fixtures.py

Layout (keep in step with tests/test_optim.cpp):
  init.<p>                   the parameters before the first step (p = w, b, u)
  grad.<k>.<p>               the gradient given at step k = 1..5
  <run>.step<k>.<p>          the parameter after step k
  <run>.state.<p>.<slot>     the optimiser state after step 5
Groups: 0 = {w, u} with the run's weight decay, 1 = {b} with none and lr * 0.5.
Runs:
  sgd             lr 0.1, momentum 0.9, weight decay 0.01
  sgd_nesterov    lr 0.1, momentum 0.9, nesterov, weight decay 0.01
  sgd_dampening   lr 0.1, momentum 0.9, dampening 0.1, no weight decay
  adam            lr 0.01, weight decay 0.1 (L2, added to the gradient)
  adamw           lr 0.01 * k / 5 at step k (set before each step), weight decay 0.01 (decoupled)
"""
import os
import sys

import torch

from safetensors_writer import write_safetensors

torch.manual_seed(0)
DT = torch.float64
SHAPES = {"w": (3, 4), "b": (4,), "u": (2, 3)}
STEPS = 5
INIT = {name: torch.randn(*shape, dtype=DT) for name, shape in SHAPES.items()}
GRADS = [{name: torch.randn(*shape, dtype=DT) for name, shape in SHAPES.items()}
         for _ in range(STEPS)]

RUNS = {
    "sgd": (torch.optim.SGD, dict(lr=0.1, momentum=0.9), 0.01, None),
    "sgd_nesterov": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True), 0.01, None),
    "sgd_dampening": (torch.optim.SGD, dict(lr=0.1, momentum=0.9, dampening=0.1), 0.0, None),
    "adam": (torch.optim.Adam, dict(lr=0.01), 0.1, None),
    "adamw": (torch.optim.AdamW, dict(lr=0.01), 0.01, lambda k: 0.01 * k / STEPS),
}


def run(make, options, weight_decay, lr_at):
    params = {name: t.clone().requires_grad_() for name, t in INIT.items()}
    base_lr = options["lr"]
    groups = [{"params": [params["w"], params["u"]], "weight_decay": weight_decay,
               "lr": base_lr},
              {"params": [params["b"]], "weight_decay": 0.0, "lr": base_lr * 0.5}]
    opt = make(groups, **options)
    out = {}
    for k in range(1, STEPS + 1):
        if lr_at:
            groups = opt.param_groups
            groups[0]["lr"], groups[1]["lr"] = lr_at(k), lr_at(k) * 0.5
        for name, p in params.items():
            p.grad = GRADS[k - 1][name].clone()
        opt.step()
        for name, p in params.items():
            out[f"step{k}.{name}"] = p.detach().clone()
    for name, p in params.items():
        for slot, value in opt.state[p].items():
            if torch.is_tensor(value) and value.dim() > 0:
                out[f"state.{name}.{slot}"] = value.clone()
    return out


def main(out_path):
    tensors = [(f"init.{n}", t) for n, t in INIT.items()]
    for k, grads in enumerate(GRADS, start=1):
        tensors += [(f"grad.{k}.{n}", t) for n, t in grads.items()]
    for run_name, spec in RUNS.items():
        tensors += [(f"{run_name}.{key}", t) for key, t in run(*spec).items()]
    write_safetensors(out_path, [(name, t.numpy().astype("<f8")) for name, t in tensors],
                      {"writer": "make_optim_fixtures.py", "torch": torch.__version__})


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    main(sys.argv[1] if len(sys.argv) > 1 else
         os.path.join(here, "..", "data", "optim", "fixtures.safetensors"))
