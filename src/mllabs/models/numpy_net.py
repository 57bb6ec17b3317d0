"""Regression networks in plain NumPy (float64): forward pass, MSE loss, hand-derived gradients.

Two models, as in the Boston-housing handout and its homework:
  Linear     y = x·w + b
  Quadratic  z1 = x + w1 ⊙ x²  (one w1 per feature),  z2 = z1·w2 + b

Each keeps its parameters in `params` (name -> float64 array, updated in place), so training,
saving and the finite-difference check treat both the same way. `train()` is mini-batch
gradient descent with a fresh seeded shuffle every epoch.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np


class Linear:
    """y = x·w + b: one weight per feature and a bias."""

    def __init__(self, n_features: int, rng: np.random.Generator):
        # the handout's start: standard-normal weights, zero bias
        self.params = {"w": rng.standard_normal(n_features), "b": np.zeros(1)}

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x @ self.params["w"] + self.params["b"][0]

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        return mse(self.forward(x), y)

    def gradient(self, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        # L = mean((ŷ - y)²)  ⇒  dL/dŷ_i = 2 (ŷ_i - y)/n
        g = 2.0 * (self.forward(x) - y) / len(y)
        # ŷ = x·w + b  ⇒  dL/dw = xᵀ·g,  dL/db = Σ g
        return {"w": x.T @ g, "b": np.array([g.sum()])}


class Quadratic:
    """z1 = x + w1 ⊙ x², z2 = z1·w2 + b: each feature may bend before the linear layer."""

    def __init__(self, n_features: int, rng: np.random.Generator):
        # w1 = 0 starts as the linear model; the curvature is learned from there
        self.params = {"w1": np.zeros(n_features), "w2": rng.standard_normal(n_features),
                       "b": np.zeros(1)}

    def hidden(self, x: np.ndarray) -> np.ndarray:
        return x + self.params["w1"] * x ** 2

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.hidden(x) @ self.params["w2"] + self.params["b"][0]

    def loss(self, x: np.ndarray, y: np.ndarray) -> float:
        return mse(self.forward(x), y)

    def gradient(self, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
        z1 = self.hidden(x)
        g = 2.0 * (z1 @ self.params["w2"] + self.params["b"][0] - y) / len(y)  # dL/dz2
        # z2 = z1·w2 + b  ⇒  dL/dw2 = z1ᵀ·g,  dL/db = Σ g,  dL/dz1_ij = g_i·w2_j
        # z1_ij = x_ij + w1_j·x_ij²  ⇒  dL/dw1_j = Σ_i g_i·w2_j·x_ij² = w2_j·(x²ᵀ·g)_j
        return {"w1": self.params["w2"] * ((x ** 2).T @ g), "w2": z1.T @ g,
                "b": np.array([g.sum()])}


Model = Linear | Quadratic


def mse(pred: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((pred - y) ** 2))


def epoch_batches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """One epoch: a new permutation of 0..n-1 cut into batches (the last may be shorter)."""
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def cosine_lr(lr: float, epoch: int, epochs: int) -> float:
    """lr · ½(1 + cos(π·(epoch-1)/epochs)): full size in epoch 1, near zero in the last.

    With a constant step, each batch's noise keeps the weights wandering around the optimum;
    shrinking the step lets mini-batch descent settle on it. PyTorch's CosineAnnealingLR is the
    same schedule.
    """
    return lr * 0.5 * (1.0 + math.cos(math.pi * (epoch - 1) / epochs))


def train(model: Model, x: np.ndarray, y: np.ndarray, *, lr: float, epochs: int,
          batch_size: int, seed: int, schedule: str = "cosine",
          test: tuple[np.ndarray, np.ndarray] | None = None) -> list[dict]:
    """Mini-batch gradient descent; one row per epoch (0: before any step) with the exact
    train (and test) MSE.

    Stops early, with a non-finite last row, if the loss blows up (learning rate too high).
    """
    rng = np.random.default_rng(seed)
    history = [{"epoch": 0, "train_mse": model.loss(x, y)}]  # epoch 0: the starting weights
    if test is not None:
        history[0]["test_mse"] = model.loss(*test)
    for epoch in range(1, epochs + 1):
        step = cosine_lr(lr, epoch, epochs) if schedule == "cosine" else lr
        with np.errstate(over="ignore", invalid="ignore"):  # a blow-up ends the loop below
            for idx in epoch_batches(len(x), batch_size, rng):
                grads = model.gradient(x[idx], y[idx])
                for name, value in model.params.items():
                    value -= step * grads[name]  # in place: params hold the only copy
            row = {"epoch": epoch, "lr": step, "train_mse": model.loss(x, y)}
            if test is not None:
                row["test_mse"] = model.loss(*test)
        history.append(row)
        if not np.isfinite(row["train_mse"]):
            break
    return history


def numerical_gradient(model: Model, x: np.ndarray, y: np.ndarray,
                       h: float = 1e-6) -> dict[str, np.ndarray]:
    """Central differences (L(θ+h) - L(θ-h)) / 2h, one parameter at a time: the check on gradient()."""
    grads = {}
    for name, value in model.params.items():
        grad = np.zeros_like(value)
        for i in range(value.size):
            keep = value.flat[i]
            value.flat[i] = keep + h
            up = model.loss(x, y)
            value.flat[i] = keep - h
            down = model.loss(x, y)
            value.flat[i] = keep
            grad.flat[i] = (up - down) / (2 * h)
        grads[name] = grad
    return grads


def relative_error(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    """‖a - b‖ / (‖a‖ + ‖b‖) over all parameters together (0 when both are zero)."""
    fa = np.concatenate([np.ravel(a[k]) for k in sorted(a)])
    fb = np.concatenate([np.ravel(b[k]) for k in sorted(a)])
    scale = np.linalg.norm(fa) + np.linalg.norm(fb)
    return float(np.linalg.norm(fa - fb) / scale) if scale else 0.0
