"""Which device to run on, and the CPU settings the command-line tools use."""
from __future__ import annotations

import ctypes
import os

import torch

from srlab.errors import UserError


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    if preference == "cuda" and not torch.cuda.is_available():
        raise UserError("device: 'cuda' requested but no CUDA GPU is available (use 'auto' or 'cpu')")
    if preference in ("cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def tune_cpu_allocator() -> bool:
    """Keep freed memory in the process (glibc only; elsewhere a no-op returning False).

    glibc serves each large block (a conv output: 16 MB for 64 channels at 256x256) with a fresh
    ``mmap`` and unmaps it on free, so every layer of every forward pass page-faults its output in
    anew: on our 2-core machine that was a third of VDSR's CPU inference time (sys time), and
    it hides the asymmetric convolutions' advantage. With ``mmap`` off for allocations and no
    trimming, freed blocks are reused. The cost: the process keeps its peak memory until it ends,
    so only the command-line scripts call this (on CPU), never the library on its own.
    """
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_max = -1, -4  # from glibc's malloc.h
    return bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, 2**31 - 1))


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_bf16_units() -> str | None:
    """The bf16 units of this CPU (``"AMX"``, ``"AVX512-BF16"``), or None: without them PyTorch
    emulates bf16, which is slower than fp32 (measured: see the top-level README)."""
    cpu = getattr(torch, "cpu", None)
    if cpu is not None and getattr(cpu, "_is_amx_tile_supported", lambda: False)():
        return "AMX"
    if cpu is not None and getattr(cpu, "_is_avx512_bf16_supported", lambda: False)():
        return "AVX512-BF16"
    return None
