"""MATLAB-compatible bicubic resizing in PyTorch.

``imresize`` reproduces MATLAB's ``imresize(x, scale, 'bicubic')`` (the resizer behind every
published SR bicubic baseline and LR test set):

* Keys' cubic kernel with a = -0.5;
* when downscaling, the kernel is stretched by 1/scale (antialiasing);
* MATLAB's pixel mapping ``u = x / scale + 0.5 * (1 - 1 / scale)`` (1-based coordinates);
* symmetric padding at the borders (``d c b a | a b c d | d c b a``);
* output size ``ceil(in * scale)`` when a scale is given.

It works on float tensors of shape ``(..., H, W)`` on any device, is differentiable and does no
rounding: quantising to 8 bits is the caller's job (see ``common.metrics.quantize``).

Each axis is resampled with a gather of the ``P`` contributing input pixels followed by a
weighted sum, so the cost is ``O(out * P)`` per row rather than a dense matrix product.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * (
        (ax > 1) & (ax <= 2)
    )


@lru_cache(maxsize=256)
def contributions(in_length: int, out_length: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(out, P)`` (0-based, borders already mirrored) and weights ``(out, P)``.

    A direct transcription of MATLAB's ``contributions`` for the bicubic kernel.
    """
    kernel_width = 4.0
    if scale < 1:  # antialiasing: a wider, flatter kernel
        kernel = lambda t: scale * cubic(scale * t)  # noqa: E731
        kernel_width /= scale
    else:
        kernel = cubic
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    taps = int(math.ceil(kernel_width)) + 2
    indices = left[:, None] + np.arange(taps)[None, :]  # 1-based, may fall outside the image
    weights = kernel(u[:, None] - indices)
    weights /= weights.sum(axis=1, keepdims=True)
    # Symmetric padding: index i (1-based) maps through [1..n, n..1] periodically.
    mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    indices = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_length)]
    # Drop taps whose weight is zero for every output pixel (MATLAB does the same).
    keep = np.any(weights != 0, axis=0)
    return indices[:, keep], weights[:, keep]


def _resize_last_axis(x: torch.Tensor, out_length: int, scale: float) -> torch.Tensor:
    idx, w = contributions(x.shape[-1], out_length, scale)
    idx_t = torch.from_numpy(idx).to(x.device)
    w_t = torch.from_numpy(w).to(device=x.device, dtype=x.dtype)
    gathered = x[..., idx_t]  # (..., out, P)
    return (gathered * w_t).sum(dim=-1)


def output_size(in_size: tuple[int, int], scale: float) -> tuple[int, int]:
    """MATLAB's output size for a scale factor: ``ceil(in * scale)`` per axis."""
    return tuple(int(math.ceil(n * scale)) for n in in_size)  # type: ignore[return-value]


def imresize(
    x: torch.Tensor,
    scale: float | None = None,
    size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Resize the last two axes of ``x`` like MATLAB's ``imresize(x, scale, 'bicubic')``.

    Give ``scale`` (the same for both axes; the output size is ``ceil(in * scale)``) or
    ``size = (H_out, W_out)`` (each axis then uses scale ``out / in``, as MATLAB does).
    """
    if not torch.is_floating_point(x):
        raise TypeError(f"imresize expects a float tensor, got {x.dtype}")
    if x.dim() < 2:
        raise ValueError(f"imresize expects a tensor of shape (..., H, W), got {tuple(x.shape)}")
    in_h, in_w = x.shape[-2:]
    if size is not None:
        out_h, out_w = int(size[0]), int(size[1])
        scale_h, scale_w = out_h / in_h, out_w / in_w
    elif scale is not None:
        if scale <= 0:
            raise ValueError(f"imresize scale must be > 0, got {scale}")
        out_h, out_w = output_size((in_h, in_w), scale)
        scale_h = scale_w = float(scale)
    else:
        raise ValueError("imresize needs scale or size")
    if out_h <= 0 or out_w <= 0:
        raise ValueError(f"imresize output size must be positive, got {(out_h, out_w)}")

    # MATLAB resizes the axis with the smaller scale first; without rounding in between the
    # two orders agree up to float error, but we keep MATLAB's order for fidelity.
    def resize_w(t: torch.Tensor) -> torch.Tensor:
        return t if (out_w == in_w and scale_w == 1) else _resize_last_axis(t, out_w, scale_w)

    def resize_h(t: torch.Tensor) -> torch.Tensor:
        if out_h == in_h and scale_h == 1:
            return t
        return _resize_last_axis(t.transpose(-1, -2), out_h, scale_h).transpose(-1, -2)

    if scale_h <= scale_w:
        return resize_w(resize_h(x))
    return resize_h(resize_w(x))
