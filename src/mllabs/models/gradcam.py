"""Grad-CAM (Selvaraju et al. 2017): where in a photo the evidence for a class lies.

Take the feature maps A_k of a late convolutional layer and the gradient of the class score with
respect to them. Each map's weight is its gradient averaged over the positions; the heatmap is
ReLU(sum_k weight_k · A_k), upsampled to the photo and scaled so its peak is 1.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def cam_layer(model: nn.Module) -> nn.Module:
    """The layer to explain: the model's own `cam_layer` if it names one, else its last Conv2d."""
    layer = getattr(model, "cam_layer", None)
    if isinstance(layer, nn.Module):
        return layer
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"{type(model).__name__} has no convolution for Grad-CAM to look at")
    return convs[-1]


def grad_cam(model: nn.Module, layer: nn.Module, images: torch.Tensor,
             target: int | list[int] | torch.Tensor | None = None) -> np.ndarray:
    """Heatmaps (N, H, W) in [0, 1] at the input's size, one per image of the batch (N, C, H, W).

    target: the class explained, one for all or one per image; None explains each image's
    predicted class. The model is put in eval mode (batch norm uses its running statistics) and
    stays there; the hook is removed and no parameter gradient is accumulated.
    """
    model.eval()
    device = next(model.parameters()).device
    x = images.detach().to(device=device, dtype=torch.float32).requires_grad_(True)
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        with torch.enable_grad():
            scores = model(x)
            if not captured:
                raise ValueError("the Grad-CAM layer was not used by the model's forward pass")
            acts = captured[-1]
            if target is None:
                classes = scores.argmax(1)
            else:
                classes = torch.as_tensor(target, device=device).long().expand(len(x))
            chosen = scores.gather(1, classes[:, None]).sum()
            # gradients to the feature maps only: parameters' .grad stay untouched
            (grads,) = torch.autograd.grad(chosen, acts)
    finally:
        handle.remove()
    acts = acts.detach()
    weights = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * acts).sum(1, keepdim=True))
    cam = F.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    peak = cam.flatten(1).amax(1).clamp(min=1e-12)[:, None, None]
    cam = (cam / peak).clamp(0.0, 1.0)
    return cam.cpu().numpy().astype(np.float32)


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.45, cmap: str = "jet") -> np.ndarray:
    """A photo (H, W, 3) or (H, W) uint8 with `heat` (any size, values in [0, 1]) drawn over it
    in a matplotlib colormap; returns uint8 RGB (H, W, 3)."""
    from matplotlib import colormaps

    img = np.asarray(image)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = img[:, :, :3].astype(np.float32)
    heat = np.asarray(heat, dtype=np.float32)
    if heat.shape != img.shape[:2]:
        heat = F.interpolate(torch.from_numpy(heat)[None, None], size=img.shape[:2],
                             mode="bilinear", align_corners=False)[0, 0].numpy()
    colour = colormaps[cmap](np.clip(heat, 0.0, 1.0))[:, :, :3] * 255.0
    blend = (1.0 - alpha) * img + alpha * colour
    return np.clip(np.rint(blend), 0, 255).astype(np.uint8)
