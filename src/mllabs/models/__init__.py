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


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass for one sample of `input_shape` (C, H, W).

    Counted on the convolutions and linear layers, which hold nearly all of the arithmetic:
    a convolution costs (output elements) × (input channels / groups) × kernel area, a linear
    layer (input features) × (output features) per position. Batch norm, activations, pooling
    and additions are left out, as in the figures usually quoted (ResNet-50: 4.1 G).
    """
    total = 0
    hooks = []

    def conv(mod: nn.Conv2d, _inputs, output):
        nonlocal total
        kh, kw = mod.kernel_size
        total += output[0].numel() * (mod.in_channels // mod.groups) * kh * kw

    def linear(mod: nn.Linear, _inputs, output):
        nonlocal total
        total += output[0].numel() * mod.in_features

    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            hooks.append(module.register_forward_hook(conv))
        elif isinstance(module, nn.Linear):
            hooks.append(module.register_forward_hook(linear))
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
    return int(total)
