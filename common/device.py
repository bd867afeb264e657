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


PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device`` (None: fp32), or one line saying why it
    cannot run there: fp16 is for CUDA GPUs, bf16 for CUDA and CPUs with bf16 units."""
    if precision not in PRECISIONS:
        raise UserError(f"precision {precision!r}: allowed: {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise UserError(f"precision fp16: half precision is for CUDA GPUs; on {device.type} use fp32 (or bf16 on a "
                        f"CPU with bf16 units)")
    if precision == "bf16" and device.type == "cpu" and cpu_bf16_units() is None:
        raise UserError(f"precision bf16: this CPU ({torch.backends.cpu.get_cpu_capability()}) has no bf16 units "
                        f"(AVX512-BF16 or AMX), and emulated bf16 is slower than fp32 here: use fp32")
    return PRECISIONS[precision]


def cpu_bf16_units() -> str | None:
    """The bf16 units of this CPU (``"AMX"``, ``"AVX512-BF16"``), or None: without them PyTorch
    emulates bf16, which is slower than fp32 (measured: see the top-level README)."""
    cpu = getattr(torch, "cpu", None)
    if cpu is not None and getattr(cpu, "_is_amx_tile_supported", lambda: False)():
        return "AMX"
    if cpu is not None and getattr(cpu, "_is_avx512_bf16_supported", lambda: False)():
        return "AVX512-BF16"
    return None
