"""The blur of each meta-training task: MZSR's distribution, and what photographs actually have.

MZSR meta-trains on Gaussian kernels with variances from 1 to 2.5 x scale HR pixel^2
(``srlab.degradation.random_kernels``). Photographs people super-resolve were mostly shrunk by a
tool (Pillow, MATLAB, area averaging), which blurs less than any of those kernels: a network
meta-trained on the Gaussians alone learns a start that over-sharpens such images (measured, the
CPU-scale models' MZSR(0) was 10-13 dB below bicubic interpolation on photos shrunk by Pillow, and
ten adaptation steps did not recover it). With ``photo_share`` > 0, that share of the tasks draws
instead, half and half:

* a tool's kernel (``srlab.degradation.photo.tool_kernel``: Pillow's bicubic, bilinear and
  Lanczos, area averaging, MATLAB's bicubic), then every s-th pixel, which is the tool exactly;
* a sharp Gaussian, variances U(0.1, 1) HR pixel^2 (the second at most the first), any angle,
  then every s-th pixel: the small-blur corner below MZSR's range.

These tasks always subsample directly (that is what the tools do); the rest keep the model's mode.
With ``photo_share`` = 0 nothing more is drawn from the random stream, so earlier runs resume
exactly.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from srlab.degradation import random_kernels
from srlab.degradation.kernels import _gaussian_kernels
from srlab.degradation.photo import tool_kernel

PHOTO_TOOLS = ("pil_bicubic", "pil_bilinear", "pil_lanczos", "box", "matlab")


def canvas_size(size: int, scales: list[int], photo_share: float) -> int:
    """The side every task's kernel is drawn on: ``size``, or the largest tool kernel if larger."""
    if photo_share <= 0:
        return size
    return max([size, *(tool_kernel(t, s).shape[-1] for t in PHOTO_TOOLS for s in scales)])


def task_kernels(scales: torch.Tensor, size: int, mode: str, photo_share: float) -> tuple[torch.Tensor, list[str]]:
    """One kernel ``(n, K, K)`` and subsampling mode per task (``scales``: one factor per task),
    from the global random stream. ``K`` is ``canvas_size``; kernels smaller than it are centred on
    it with zeros around (a correlation with them is the same)."""
    n = len(scales)
    gaussians = random_kernels(n, scales, size)
    modes = [mode] * n
    if photo_share <= 0:
        return gaussians, modes
    side = canvas_size(size, sorted(set(scales.tolist())), photo_share)
    kernels = _centred(gaussians, side)
    u = torch.rand(4, n, dtype=torch.float64)
    for i in range(n):
        if u[0, i] >= photo_share:
            continue
        modes[i] = "direct"
        scale = int(scales[i])
        if u[1, i] < 0.5:
            kernels[i] = _centred(tool_kernel(PHOTO_TOOLS[int(u[2, i] * len(PHOTO_TOOLS))], scale)[None], side)[0]
        else:
            lambda1 = 0.1 + 0.9 * u[2, i : i + 1]
            lambda2 = 0.1 + (lambda1 - 0.1) * u[3, i : i + 1]
            theta = 2 * math.pi * (u[1, i : i + 1] - 0.5)  # u[1] is uniform on [0.5, 1) here
            kernels[i] = _centred(_gaussian_kernels(side, lambda1, lambda2, theta).float(), side)[0]
    return kernels, modes


def _centred(kernels: torch.Tensor, side: int) -> torch.Tensor:
    """Odd kernels ``(n, k, k)`` centred on a ``side x side`` canvas (``side >= k``, both odd)."""
    pad = (side - kernels.shape[-1]) // 2
    return F.pad(kernels, (pad, pad, pad, pad))
