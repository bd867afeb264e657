"""The evaluation protocol of the SR literature, written down once.

Every number this project reports goes through these functions:

1. SR and HR are clamped to [0, 1] and quantised to 8 bits (``quantize``): what would be saved as PNG.
2. Y channel as MATLAB's ``rgb2ycbcr`` computes it on uint8 images:
   ``Y = round(16 + (65.481 R + 128.553 G + 24.966 B) / 255)`` with R, G, B in 0..255.
3. ``crop_border`` pixels are removed at each border (the scale factor, by convention).
4. PSNR on a peak of 255; SSIM of Wang et al. (2004): 11x11 Gaussian window, sigma 1.5,
   K1 = 0.01, K2 = 0.03, L = 255, statistics over the 'valid' region, mean over the map
   (no automatic downsampling). RGB PSNR is available and always labelled as such.

All functions take ``(B, 3, H, W)`` float tensors in [0, 1] and return a ``(B,)`` tensor of
per-image values (computed in float64).
"""
from __future__ import annotations

import math

import torch

from common.color import RGB_TO_YCBCR


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to the 8-bit grid (values stay in [0, 1])."""
    return torch.round(x.clamp(0, 1) * 255) / 255


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """8-bit-quantised RGB in [0, 1], ``(B, 3, H, W)`` -> Y in 16..235 as float64 ``(B, 1, H, W)``."""
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected a (B, 3, H, W) RGB tensor, got {tuple(x.shape)}")
    rgb = torch.round(x.double().clamp(0, 1) * 255)
    w = torch.tensor(RGB_TO_YCBCR[0], dtype=torch.float64, device=x.device).view(1, 3, 1, 1)
    return torch.round(16 + (rgb * w).sum(dim=1, keepdim=True) / 255)


def _crop(x: torch.Tensor, border: int) -> torch.Tensor:
    if border == 0:
        return x
    if x.shape[-1] <= 2 * border or x.shape[-2] <= 2 * border:
        raise ValueError(f"image {tuple(x.shape[-2:])} is too small for a border crop of {border}")
    return x[..., border:-border, border:-border]


def _psnr_255(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mse = ((a - b) ** 2).flatten(1).mean(dim=1)
    return 10 * torch.log10(255.0**2 / mse.clamp_min(1e-10))


def psnr(sr: torch.Tensor, hr: torch.Tensor, crop_border: int) -> torch.Tensor:
    """Per-image PSNR on the Y channel (dB), the literature's protocol."""
    return _psnr_255(_crop(rgb_to_y(sr), crop_border), _crop(rgb_to_y(hr), crop_border))


def psnr_rgb(sr: torch.Tensor, hr: torch.Tensor, crop_border: int) -> torch.Tensor:
    """Per-image PSNR over the three 8-bit RGB channels (dB). Report it labelled 'RGB'."""
    a = torch.round(sr.double().clamp(0, 1) * 255)
    b = torch.round(hr.double().clamp(0, 1) * 255)
    return _psnr_255(_crop(a, crop_border), _crop(b, crop_border))


def _gaussian_1d(size: int = 11, sigma: float = 1.5, device=None) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def _gaussian_filter_valid(x: torch.Tensor) -> torch.Tensor:
    """11x11 Gaussian (sigma 1.5) filter over the last two axes, 'valid' region, as two 1-D passes.

    Written with ``unfold`` + ``matmul`` because float64 convolutions are slow on CPU.
    """
    g = _gaussian_1d(device=x.device).to(x.dtype)
    x = x.unfold(-2, g.numel(), 1).matmul(g)
    return x.unfold(-1, g.numel(), 1).matmul(g)


def ssim_map_mean(x: torch.Tensor, y: torch.Tensor, data_range: float = 255.0) -> torch.Tensor:
    """Mean SSIM of single-channel images ``(B, 1, H, W)`` (float64), 'valid' statistics."""
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    stats = _gaussian_filter_valid(torch.cat([x, y, x * x, y * y, x * y], dim=1))
    mu_x, mu_y, exx, eyy, exy = stats.unbind(dim=1)
    sxx = exx - mu_x**2
    syy = eyy - mu_y**2
    sxy = exy - mu_x * mu_y
    ssim = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return ssim.flatten(1).mean(dim=1)


def ssim(sr: torch.Tensor, hr: torch.Tensor, crop_border: int) -> torch.Tensor:
    """Per-image SSIM on the Y channel, the literature's protocol."""
    a = _crop(rgb_to_y(sr), crop_border)
    b = _crop(rgb_to_y(hr), crop_border)
    if min(a.shape[-2:]) < 11:
        raise ValueError(f"image {tuple(a.shape[-2:])} (after the border crop) is smaller than the 11x11 SSIM window")
    return ssim_map_mean(a, b)


def mean(values: list[float]) -> float:
    """Dataset mean of per-image values, as papers report (mean of per-image PSNR, not of MSE)."""
    return math.fsum(values) / len(values) if values else float("nan")
