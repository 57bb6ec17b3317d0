"""Fully connected networks: input -> hidden layers -> output."""

from __future__ import annotations

from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "gelu": nn.GELU}


class MLP(nn.Sequential):
    def __init__(self, in_features: int, hidden: tuple[int, ...], out_features: int,
                 activation: str = "relu", dropout: float = 0.0):
        layers: list[nn.Module] = [nn.Flatten()]  # images (N, 1, 28, 28) and tables (N, F) alike
        width = in_features
        for size in hidden:
            layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
            if dropout:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, out_features))
        super().__init__(*layers)

    def layer_names(self) -> dict[str, str]:
        """The handouts' names for the layer table: "hidden 1", "hidden 2", …, "output"."""
        linear = [str(k) for k, m in enumerate(self) if isinstance(m, nn.Linear)]
        return {k: f"hidden {i + 1}" for i, k in enumerate(linear[:-1])} | {linear[-1]: "output"}
