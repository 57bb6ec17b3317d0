"""Networks written in the project (no torchvision), and a per-layer summary of any of them."""

from __future__ import annotations

from torch import nn

from mllabs.models.ops import trace

COUNT_COLUMNS = ("multiplications", "additions", "comparisons")


def summary(model: nn.Module, input_shape: tuple[int, ...]) -> list[dict]:
    """One row per leaf-layer call (one dry forward pass of one sample of `input_shape`):
    layer, type, output shape, parameters, multiplications, additions, comparisons; then a
    total row. The counting conventions are in `mllabs.models.ops` (also `ops.CONVENTIONS`).

    A module called twice (a block's shared ReLU) has a row per call and its parameters in the
    first, so the parameter column sums to the model's count; ResNet shortcut additions get a
    row of their own ("layer1.0.add").
    """
    rows = [{"layer": r["layer"], "type": r["type"], "output": r["output"],
             "parameters": r["parameters"],
             **{c: getattr(r["counts"], c) for c in COUNT_COLUMNS}}
            for r in trace(model, input_shape)]
    rows.append({"layer": "total", "type": "", "output": "",
                 "parameters": sum(p.numel() for p in model.parameters()),
                 **{c: sum(r[c] for r in rows) for c in COUNT_COLUMNS}})
    return rows


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates of one forward pass for one sample of `input_shape` (C, H, W).

    The multiplications of the convolutions and linear layers, which hold nearly all of the
    arithmetic: a convolution costs (output elements) × (input channels / groups) × kernel area,
    a linear layer (input features) × (output features) per position. Batch norm, activations,
    pooling and additions are left out, as in the figures usually quoted (ResNet-50: 4.1 G).
    """
    return sum(r["counts"].multiplications for r in trace(model, input_shape)
               if isinstance(r["module"], (nn.modules.conv._ConvNd, nn.Linear)))
