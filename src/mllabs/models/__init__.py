"""Networks written in the project (no torchvision), and a per-layer summary of any of them."""

from __future__ import annotations

import torch
from torch import nn


def summary(model: nn.Module, input_shape: tuple[int, ...]) -> list[dict]:
    """One row per leaf layer: name, type, output shape and parameter count (one dry forward pass)."""
    rows: list[dict] = []
    hooks = []
    for name, module in model.named_modules():
        if list(module.children()):
            continue

        def record(mod, _inputs, output, name=name):
            rows.append({"layer": name, "type": type(mod).__name__,
                         "output": "×".join(map(str, output.shape[1:])),
                         "parameters": sum(p.numel() for p in mod.parameters(recurse=False))})

        hooks.append(module.register_forward_hook(record))
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    rows.append({"layer": "total", "type": "", "output": "",
                 "parameters": sum(p.numel() for p in model.parameters())})
    return rows
