"""Looking inside a network while it trains: gradient size per layer, and what each layer outputs.

GradientRecorder is a `fit(after_backward=...)` hook; layer_statistics() runs one batch and
describes every layer's output (the "print each layer's output" exercise, as a table).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The convolutions and linear layers in definition order, named conv1, conv2, …, fc1, fc2, …"""
    found, counts = [], {"conv": 0, "fc": 0}
    for module in model.modules():
        kind = "conv" if isinstance(module, nn.Conv2d) else "fc" if isinstance(module, nn.Linear) else None
        if kind:
            counts[kind] += 1
            found.append((f"{kind}{counts[kind]}", module))
    return found


class GradientRecorder:
    """Mean |gradient| of every conv/linear weight after each backward pass.

    Values stay on the training device as one small tensor per update and are read once at the
    end, so recording adds no synchronisation to the training loop.
    """

    def __init__(self, model: nn.Module):
        self.layers = weight_layers(model)
        self.names = [name for name, _ in self.layers]
        self._steps: list[torch.Tensor] = []
        self._epochs: list[int] = []

    def __call__(self, model: nn.Module, epoch: int) -> None:
        with torch.no_grad():
            self._steps.append(torch.stack([m.weight.grad.abs().mean() for _, m in self.layers]))
        self._epochs.append(epoch)

    def per_update(self) -> np.ndarray:
        """(updates, layers)"""
        if not self._steps:
            return np.zeros((0, len(self.layers)))
        return torch.stack(self._steps).cpu().numpy()

    def per_epoch(self) -> dict[int, np.ndarray]:
        """epoch → mean over that epoch's updates, one value per layer."""
        values, epochs = self.per_update(), np.asarray(self._epochs)
        return {int(e): values[epochs == e].mean(0) for e in np.unique(epochs)}


class BatchRecorder:
    """Wraps a loss function and keeps each training batch's loss and accuracy.

    fit() evaluates without gradients, so a call with gradients enabled is a training batch.
    """

    def __init__(self, loss_fn):
        self.loss_fn = loss_fn
        self._rows: list[torch.Tensor] = []

    def __call__(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.loss_fn(out, target)
        if torch.is_grad_enabled():
            with torch.no_grad():
                self._rows.append(torch.stack([loss.detach(), (out.argmax(1) == target).float().mean()]))
        return loss

    def per_update(self) -> np.ndarray:
        """(updates, 2): loss and accuracy of each training batch."""
        return torch.stack(self._rows).cpu().numpy() if self._rows else np.zeros((0, 2))


@torch.no_grad()
def layer_statistics(model: nn.Module, x: torch.Tensor) -> list[dict]:
    """Run one batch and describe every leaf layer's output: shape, mean, std, min, max, zeros."""
    rows: list[dict] = []
    hooks = []
    for name, module in model.named_modules():
        if list(module.children()):
            continue

        def record(mod, _inputs, output, name=name):
            out = output.detach().float()
            rows.append({"layer": name, "type": type(mod).__name__,
                         "output": "×".join(map(str, out.shape)),
                         "mean": float(out.mean()), "std": float(out.std()),
                         "min": float(out.min()), "max": float(out.max()),
                         "zeros": float((out == 0).float().mean())})

        hooks.append(module.register_forward_hook(record))
    was_training = model.training
    model.eval()
    try:
        model(x.to(next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return rows
