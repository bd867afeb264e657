"""Blur and subsample, batched on any device.

``degrade(hr, kernels, scale, mode)``: blur (correlation with symmetric borders, i.e.
``scipy.ndimage.correlate(..., mode="reflect")``) then subsample: ``"direct"`` keeps pixels
0, s, 2s, ... of each axis; ``"bicubic"`` resizes with MATLAB-bicubic ``imresize``. One grouped
convolution for the whole batch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from srlab.imresize import imresize

MODES = ("direct", "bicubic")


def _mirror_index(n: int, before: int, after: int, device) -> torch.Tensor:
    i = torch.remainder(torch.arange(-before, n + after, device=device), 2 * n)
    return torch.where(i < n, i, 2 * n - 1 - i)


def symmetric_pad(x: torch.Tensor, top: int, bottom: int, left: int, right: int) -> torch.Tensor:
    """Pad the last two axes with ``d c b a | a b c d | d c b a`` (works for pads larger than the image).

    One gather over the flattened image plane: several times faster on CPU than padding each
    axis in turn.
    """
    h, w = x.shape[-2:]
    rows = _mirror_index(h, top, bottom, x.device)
    cols = _mirror_index(w, left, right, x.device)
    flat = (rows[:, None] * w + cols[None, :]).flatten()
    out = x.reshape(-1, h * w).index_select(1, flat)
    return out.view(*x.shape[:-2], rows.numel(), cols.numel())


def blur(x: torch.Tensor, kernels: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """Correlate each image of ``x (B, C, H, W)`` with its kernel (``(B, k, k)`` or one ``(k, k)``).

    Symmetric borders and scipy's centring (``k // 2``), so with ``stride=1`` this equals
    ``scipy.ndimage.correlate(x[b, c], kernels[b], mode="reflect")``; ``stride=s`` keeps output
    pixels 0, s, 2s, ... (computed directly, not by discarding).
    """
    b, c, h, w = x.shape
    if kernels.dim() == 2:
        kernels = kernels.expand(b, *kernels.shape)
    if kernels.shape[0] != b:
        raise ValueError(f"got {kernels.shape[0]} kernels for a batch of {b} images")
    kh, kw = kernels.shape[-2:]
    x = symmetric_pad(x, kh // 2, kh - 1 - kh // 2, kw // 2, kw - 1 - kw // 2)
    weight = kernels.to(x.dtype).repeat_interleave(c, dim=0).unsqueeze(1)  # (B*C, 1, kh, kw)
    # One depthwise convolution over all B*C planes; channels-last is about 2x faster on CPU.
    planes = x.reshape(1, b * c, *x.shape[-2:]).contiguous(memory_format=torch.channels_last)
    out = F.conv2d(planes, weight, stride=stride, groups=b * c)
    return out.reshape(b, c, *out.shape[-2:])


def degrade(
    hr: torch.Tensor,
    kernels: torch.Tensor,
    scale: int,
    mode: str = "direct",
    noise_sigma: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Blur ``hr (B, C, H, W)`` with ``kernels`` and downsample by ``scale``.

    ``noise_sigma`` adds white Gaussian noise of that standard deviation (in [0, 1] intensity
    units) after downsampling. No clamping or rounding.
    """
    if mode not in MODES:
        raise ValueError(f"degradation mode must be one of {MODES}, got {mode!r}")
    if mode == "direct":
        lr = blur(hr, kernels, stride=scale)
    else:
        lr = imresize(blur(hr, kernels), scale=1 / scale)
    if noise_sigma > 0:
        noise = torch.randn(lr.shape, generator=generator, device=lr.device, dtype=lr.dtype)
        lr = lr + noise_sigma * noise
    return lr
