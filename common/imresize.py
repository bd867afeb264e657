"""MATLAB-compatible bicubic resizing in PyTorch.

``imresize`` reproduces MATLAB's ``imresize(x, scale, 'bicubic')`` (the resizer behind every
published SR bicubic baseline and LR test set):

* Keys' cubic kernel with a = -0.5;
* when downscaling, the kernel is stretched by 1/scale (antialiasing);
* MATLAB's pixel mapping ``u = x / scale + 0.5 * (1 - 1 / scale)`` (1-based coordinates);
* symmetric padding at the borders (``d c b a | a b c d | d c b a``);
* output size ``ceil(in * scale)`` when a scale is given.

It works on float tensors of shape ``(..., H, W)`` on any device, is differentiable and does no
rounding: quantising to 8 bits is the caller's job (see ``srlab.metrics.quantize``).

Each axis is resampled as a weighted sum over the ``P`` contributing input pixels, one tap at a
time, so the cost is ``O(out * P)`` per row rather than a dense matrix product, and the memory is
the output's (no ``out x P`` gather), whatever the image size. Integer scales and their inverses
take each tap as a strided slice (``_resize_periodic``), others as an ``index_select`` of rows;
both add the same products in the same order, so they give the same bits.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable

import numpy as np
import torch

MAX_PERIOD = 8  # phases tried before falling back to a gather (non-integer scales)


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's ``cubic``)."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1) + (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * (
        (ax > 1) & (ax <= 2)
    )


@lru_cache(maxsize=256)
def _taps(in_length: int, out_length: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """For each output pixel, the 0-based input index of its first tap (before mirroring: it may
    be negative or past the end) and its ``P`` weights ``(out, P)``: MATLAB's ``contributions``."""
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
    # Drop taps whose weight is zero for every output pixel (MATLAB does the same).
    keep = np.flatnonzero(np.any(weights != 0, axis=0))
    return left.astype(np.int64) - 1 + keep[0], weights[:, keep[0] : keep[-1] + 1]


def _mirror(indices: np.ndarray, length: int) -> np.ndarray:
    """Symmetric padding: 0-based index i maps through [0..n-1, n-1..0] periodically."""
    mirror = np.concatenate([np.arange(length), np.arange(length - 1, -1, -1)])
    return mirror[np.mod(indices, 2 * length)]


def contributions(in_length: int, out_length: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(out, P)`` (0-based, borders already mirrored) and weights ``(out, P)``.

    A direct transcription of MATLAB's ``contributions`` for the bicubic kernel.
    """
    first, weights = _taps(in_length, out_length, scale)
    return _mirror(first[:, None] + np.arange(weights.shape[1]), in_length), weights


@lru_cache(maxsize=256)
def _period(in_length: int, out_length: int, scale: float, dtype: torch.dtype) -> tuple[int, int] | None:
    """``(period, step)`` when output pixel ``j + period`` has the same weights (as ``dtype``) as
    pixel ``j``, ``step`` input pixels further on: true of every integer scale and its inverse."""
    first, weights = _taps(in_length, out_length, scale)
    weights = torch.from_numpy(weights).to(dtype)
    for period in range(1, min(MAX_PERIOD, out_length - 1) + 1):
        step = int(first[period] - first[0])
        if (first[period:] - first[:-period] == step).all() and torch.equal(weights[period:], weights[:-period]):
            return period, step
    return None


def _resize_periodic(x: torch.Tensor, dim: int, out_length: int, scale: float, period: int, step: int) -> torch.Tensor:
    """Resample axis ``dim`` phase by phase: the output pixels ``r, r + period, ...`` all weigh
    their taps alike, so each tap is one strided slice of the (mirror-padded) input times one
    number. No gather; the same products, added in the same order, as the gather below."""
    length = x.shape[dim]
    first, weights = _taps(length, out_length, scale)
    taps = weights.shape[1]
    low, high = min(0, int(first.min())), max(length, int(first.max()) + taps)
    if low < 0 or high > length:  # mirror-pad once, so that every tap is a plain slice
        x = x.index_select(dim, torch.from_numpy(_mirror(np.arange(low, high), length)).to(x.device))
    weights = torch.from_numpy(weights).to(x.dtype)
    shape = list(x.shape)
    shape[dim] = out_length
    out = torch.empty(shape, dtype=x.dtype, device=x.device)
    where = [slice(None)] * x.dim()
    for phase in range(min(period, out_length)):
        count = len(range(phase, out_length, period))
        start = int(first[phase]) - low
        total = None
        for p in range(taps):
            where[dim] = slice(start + p, start + p + (count - 1) * step + 1, step)
            term = x[tuple(where)] * weights[phase, p].item()
            total = term if total is None else total.add_(term)
        where[dim] = slice(phase, None, period)
        out[tuple(where)] = total
    return out


def _resize_rows(x: torch.Tensor, out_length: int, scale: float) -> torch.Tensor:
    """Resample the rows (axis -2) of ``x``: a weighted sum over the ``P`` taps, one tap at a time.

    Each tap is one ``index_select`` of whole rows and one multiply-add, so the memory needed is
    the output's, never ``P`` times it, whatever the image size; the taps are added in a fixed
    order, so the result does not depend on the CPU's vector width.
    """
    idx, w = contributions(x.shape[-2], out_length, scale)
    idx_t = torch.from_numpy(idx).to(x.device)
    w_t = torch.from_numpy(w).to(device=x.device, dtype=x.dtype)
    out = x.index_select(-2, idx_t[:, 0]) * w_t[:, 0, None]
    for p in range(1, idx.shape[1]):
        out = out + x.index_select(-2, idx_t[:, p]) * w_t[:, p, None]
    return out


def _on_columns(resize_rows: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    # Gathering columns, or reading every step-th value of a row, is several times slower on CPU
    # than taking whole rows: transpose, resize rows, transpose back (two copies are cheaper).
    return resize_rows(x.transpose(-1, -2).contiguous()).transpose(-1, -2).contiguous()


def _resize_axis(x: torch.Tensor, dim: int, out_length: int, scale: float) -> torch.Tensor:
    periodic = _period(x.shape[dim], out_length, scale, x.dtype)
    if periodic is None:  # a non-integer scale: the gather
        resize_rows = lambda t: _resize_rows(t, out_length, scale)  # noqa: E731
        return resize_rows(x) if dim == -2 else _on_columns(resize_rows, x)
    if dim == -1 and periodic[1] > 1:  # downscaling along rows: strided reads
        return _on_columns(lambda t: _resize_periodic(t, -2, out_length, scale, *periodic), x)
    return _resize_periodic(x, dim, out_length, scale, *periodic)


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
        return t if (out_w == in_w and scale_w == 1) else _resize_axis(t, -1, out_w, scale_w)

    def resize_h(t: torch.Tensor) -> torch.Tensor:
        return t if (out_h == in_h and scale_h == 1) else _resize_axis(t, -2, out_h, scale_h)

    if scale_h <= scale_w:
        return resize_w(resize_h(x))
    return resize_h(resize_w(x))
