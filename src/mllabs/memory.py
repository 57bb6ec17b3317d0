"""Will a training step fit in memory? A rough estimate, said before the first update."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn


def memory_estimate(model: nn.Module, sample: torch.Tensor, batch_size: int) -> int:
    """Rough bytes one training step needs: every layer's output for one sample (one dry forward
    pass) × batch × 3 (the outputs kept for backward, their gradients, workspace), plus weights,
    gradients and two optimizer moments. The stored data is not counted: it is already loaded."""
    sizes: list[int] = []

    def record(_module, _inputs, output):
        if isinstance(output, torch.Tensor):
            sizes.append(output.numel() * 4)  # float32; bfloat16 autocast needs less

    hooks = [m.register_forward_hook(record) for m in model.modules() if not list(m.children())]
    was_training = model.training
    try:
        # an eval-mode pass draws no random numbers; forking the CPU stream makes sure of it
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            model.eval()
            model(sample)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    weights = sum(p.numel() for p in model.parameters()) * 4
    return (sum(sizes) + sample.numel() * 4) * batch_size * 3 + 4 * weights


def available_memory(device: torch.device) -> int | None:
    """Free bytes where training runs: the GPU's free memory, or the system's available memory."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    if device.type != "cpu":
        return None
    try:
        import psutil

        return psutil.virtual_memory().available
    except ImportError:
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def warn_if_too_big(model: nn.Module, sample: torch.Tensor, batch_size: int, device: torch.device,
                    label: str = "") -> bool:
    """One line on stderr when a training step would not fit in memory (estimated); True if so.
    `sample` is one model input, as the model gets it (after any batch_transform)."""
    try:
        need, have = memory_estimate(model, sample, batch_size), available_memory(device)
    except Exception:  # an estimate must never be what stops a run; training will say what fails
        return False
    if have is None or need <= have:
        return False
    shape = "×".join(map(str, sample.shape[1:]))
    print(f"mllabs: warning: {label or 'training'} may not fit in memory: about {_size(need)} for "
          f"batches of {batch_size} × {shape} (estimated), {_size(have)} available on "
          f"{device.type}; lower batch_size or image_size if it fails", file=sys.stderr, flush=True)
    return True


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"
