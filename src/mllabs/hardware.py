"""What this machine computes with: CPU vector features, native bfloat16, accelerators.

Speed on a CPU depends less on its clock than on its vector units: the same lab runs 2-5x slower
on a laptop with AVX2 only than on a server with AVX-512 and native bfloat16 (AVX512_BF16 or
AMX). PyTorch and oneDNN can be held below what the CPU has (ATEN_CPU_CAPABILITY,
ONEDNN_MAX_CPU_ISA); what counts is what they will use, so both limits are honoured here.
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache
from pathlib import Path

import torch

WATCHED = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")


@lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty where that file does not exist."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def _capped_below_avx512() -> bool:
    """PyTorch's kernels or oneDNN's were told to stay at AVX2 or lower for this process."""
    aten = os.environ.get("ATEN_CPU_CAPABILITY", "").lower()
    onednn = os.environ.get("ONEDNN_MAX_CPU_ISA", os.environ.get("DNNL_MAX_CPU_ISA", "")).upper()
    return aten in ("default", "avx2") or (onednn != "" and not onednn.startswith(("AVX512", "AMX", "ALL")))


def native_bf16() -> bool:
    """True where bfloat16 matrix products run in hardware on this CPU (AVX512_BF16 or AMX), not
    emulated: only then is bfloat16 faster than float32 (emulated, it was 1.33x slower per step
    on an AVX-512 CPU without it). Without /proc/cpuinfo, oneDNN's own check decides."""
    if _capped_below_avx512():
        return False
    try:
        onednn = torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    except (AttributeError, RuntimeError):  # older or unusual builds
        return False
    flags = cpu_flags()
    return bool(onednn) and (not flags or bool(flags & {"avx512_bf16", "amx_bf16"}))


@lru_cache(maxsize=1)
def cpu_name() -> str:
    """The CPU's model name ("AMD EPYC 9B14"), or the architecture where the OS does not say."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_features() -> dict[str, bool | str]:
    """The features that decide the labs' speed, as PyTorch will use them in this process."""
    capability = torch.backends.cpu.get_cpu_capability()
    return {"capability": capability, "avx512": capability.startswith("AVX512"),
            "native_bf16": native_bf16(), "cuda": torch.cuda.is_available(),
            "mps": bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())}


def describe() -> str:
    """One line for the user: the CPU, its vector level, bfloat16, accelerators and threads."""
    f = cpu_features()
    parts = [cpu_name(), f"vector level {f['capability']}",
             "native bfloat16" if f["native_bf16"] else "no native bfloat16 (float32 is used)",
             f"{torch.get_num_threads()} threads"]
    if f["cuda"]:
        parts.append(f"CUDA: {torch.cuda.get_device_name(0)}")
    if f["mps"]:
        parts.append("Apple MPS")
    return ", ".join(parts)
