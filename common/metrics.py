"""The evaluation protocol of the SR literature, written down once.

Every number this project reports goes through these functions:

1. SR and HR are clamped to [0, 1] and quantised to 8 bits (``quantize``): what would be saved as PNG.
2. Y channel as MATLAB's ``rgb2ycbcr`` computes it on uint8 images:
   ``Y = round(16 + (65.481 R + 128.553 G + 24.966 B) / 255)`` with R, G, B in 0..255.
3. ``crop_border`` pixels are removed at each border (the scale factor, by convention).
4. PSNR on a peak of 255; SSIM of Wang et al. (2004): 11x11 Gaussian window, sigma 1.5,
   K1 = 0.01, K2 = 0.03, L = 255, statistics over the 'valid' region, mean over the map
   (no automatic downsampling). RGB PSNR is available and always labelled as such.

``psnr``, ``ssim`` and ``psnr_rgb`` take ``(B, 3, H, W)`` float tensors in [0, 1] and return a
``(B,)`` float64 tensor of per-image values. Evaluating one SR image against one HR image twice
(PSNR and SSIM) or several SR images against one HR: convert each once with ``y_channel`` and
call ``psnr_of_y`` / ``ssim_of_y``.

Memory stays bounded for any image size: the Y channel is exact integers and is kept as uint8
(one byte a pixel), and everything computed in float64 is computed in strips of ``STRIP_ROWS``
rows (a few MB), so a 12000x8000 image costs no more than its own bytes. The float64 arithmetic is
the same as on the whole image, so the values do not depend on the strip size (PSNR is exact:
it sums integer squares; SSIM's mean differs only in summation order, ~1e-16). On the CPU the
strips run on single-threaded workers (``srlab.parallel``), which keeps evaluation fast when
other programs load the machine.
"""
from __future__ import annotations

import math
from functools import lru_cache

import torch

from srlab.color import RGB_TO_YCBCR
from srlab.parallel import map_pieces

STRIP_ROWS = 32  # SSIM on 32-row strips was fastest on CPU (a 1024-px-wide strip's statistics: 1.3 MB)
SSIM_WINDOW = 11


def quantize(x: torch.Tensor) -> torch.Tensor:
    """Clamp to [0, 1] and round to the 8-bit grid (values stay in [0, 1]). One new tensor: the
    steps after the clamp work in place (an image-sized temporary each would cost memory)."""
    return x.clamp(0, 1).mul_(255).round_().div_(255)


def _strips(height: int, rows: int, overlap: int = 0):
    """``(start, stop)`` of row strips covering ``height - overlap`` output rows, each reading
    ``overlap`` rows past its own (a filter's window)."""
    for top in range(0, max(height - overlap, 0), rows):
        yield top, min(top + rows, height - overlap) + overlap


def y_channel(x: torch.Tensor) -> torch.Tensor:
    """8-bit-quantised RGB in [0, 1], ``(B, 3, H, W)`` -> MATLAB's Y (integers 16..235) as uint8
    ``(B, 1, H, W)``, in strips.

    The 8-bit values are recovered in float32 (exact: ``float32(k / 255) * 255`` rounds to ``k``
    for every ``k``), and ``Y`` is summed from them in float64 in the order R, G, B: for each of
    the 2^24 colours this is the same float64 number as ``(rgb * w).sum()`` (checked once by
    enumerating them), at half the memory traffic."""
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"expected a (B, 3, H, W) RGB tensor, got {tuple(x.shape)}")
    weights = RGB_TO_YCBCR[0]
    y = torch.empty(x.shape[0], 1, *x.shape[2:], dtype=torch.uint8, device=x.device)

    def strip(rows: tuple[int, int]) -> None:
        part = x[..., rows[0] : rows[1], :]
        part = part if part.dtype in (torch.float32, torch.float64) else part.float()
        levels = torch.round(part.clamp(0, 1) * 255)
        total = levels[:, 0:1].double() * weights[0]
        total += levels[:, 1:2].double() * weights[1]
        total += levels[:, 2:3].double() * weights[2]
        y[..., rows[0] : rows[1], :] = torch.round(16 + total / 255)

    map_pieces(strip, _strips(x.shape[-2], STRIP_ROWS), x)
    return y


def rgb_to_y(x: torch.Tensor) -> torch.Tensor:
    """``y_channel`` as float64 (for callers that compute with it)."""
    return y_channel(x).double()


def _crop(x: torch.Tensor, border: int) -> torch.Tensor:
    if border == 0:
        return x
    if x.shape[-1] <= 2 * border or x.shape[-2] <= 2 * border:
        raise ValueError(f"image {tuple(x.shape[-2:])} is too small for a border crop of {border}")
    return x[..., border:-border, border:-border]


def _psnr_of_integers(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR (peak 255) of integer-valued ``(B, C, H, W)`` images: the squared errors are summed
    exactly in int64, strip by strip."""
    def strip(rows: tuple[int, int]) -> torch.Tensor:
        top, stop = rows
        diff = a[..., top:stop, :].to(torch.int64) - b[..., top:stop, :].to(torch.int64)
        return (diff * diff).flatten(1).sum(dim=1)

    squared = sum(map_pieces(strip, _strips(a.shape[-2], STRIP_ROWS), a))
    mse = squared.double() / a[0].numel()
    return 10 * torch.log10(255.0**2 / mse.clamp_min(1e-10))


def psnr_of_y(sr_y: torch.Tensor, hr_y: torch.Tensor, crop_border: int) -> torch.Tensor:
    """Per-image PSNR (dB) of two ``y_channel`` images."""
    return _psnr_of_integers(_crop(sr_y, crop_border), _crop(hr_y, crop_border))


def psnr(sr: torch.Tensor, hr: torch.Tensor, crop_border: int) -> torch.Tensor:
    """Per-image PSNR on the Y channel (dB), the literature's protocol."""
    return psnr_of_y(y_channel(sr), y_channel(hr), crop_border)


def psnr_rgb(sr: torch.Tensor, hr: torch.Tensor, crop_border: int) -> torch.Tensor:
    """Per-image PSNR over the three 8-bit RGB channels (dB). Report it labelled 'RGB'."""
    to_8bit = lambda x: torch.round(x.clamp(0, 1) * 255).to(torch.uint8)  # noqa: E731
    return _psnr_of_integers(_crop(to_8bit(sr), crop_border), _crop(to_8bit(hr), crop_border))


@lru_cache(maxsize=None)
def _gaussian_1d(size: int = SSIM_WINDOW, sigma: float = 1.5) -> tuple[float, ...]:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return tuple((g / g.sum()).tolist())


def _gaussian_filter_valid(x: torch.Tensor, axis: int) -> torch.Tensor:
    """The 11-tap Gaussian (sigma 1.5) along ``axis``, 'valid' region: a sum of shifted slices.

    The window is symmetric, so taps ``k`` and ``10 - k`` are added before their one multiply;
    in-place adds into one scratch buffer keep the memory traffic (the cost here) low, and there
    is no 11x copy as ``unfold`` would make.
    """
    g = _gaussian_1d()
    half = len(g) // 2
    n = x.shape[axis] - 2 * half
    tap = lambda k: x.narrow(axis, k, n)  # noqa: E731
    out = tap(half) * g[half]
    pair = torch.empty_like(out)
    for k in range(half):
        torch.add(tap(k), tap(2 * half - k), out=pair)
        out.add_(pair, alpha=g[k])
    return out


def _ssim_sum(x: torch.Tensor, y: torch.Tensor, data_range: float) -> torch.Tensor:
    """Sum of the SSIM map of ``(B, 1, h, W)`` float64 rows ('valid': ``h - 10`` rows of output).

    SSIM needs only ``sigma_x^2 + sigma_y^2``, so x^2 + y^2 is filtered as one statistic (four
    filtered images, not five)."""
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    stats = torch.cat([x, y, x * x + y * y, x * y], dim=1)
    stats = _gaussian_filter_valid(_gaussian_filter_valid(stats, -2), -1)
    mu_x, mu_y, e_squares, e_xy = stats.unbind(dim=1)
    mu_xy = mu_x * mu_y
    mu_squares = mu_x * mu_x + mu_y * mu_y
    ssim = ((2 * mu_xy + c1) * (2 * (e_xy - mu_xy) + c2)) / ((mu_squares + c1) * (e_squares - mu_squares + c2))
    return ssim.flatten(1).sum(dim=1)


def ssim_map_mean(x: torch.Tensor, y: torch.Tensor, data_range: float = 255.0) -> torch.Tensor:
    """Mean SSIM of single-channel images ``(B, 1, H, W)``, 'valid' statistics, in float64 strips."""
    border = SSIM_WINDOW - 1

    def strip(rows: tuple[int, int]) -> torch.Tensor:
        top, stop = rows
        return _ssim_sum(x[..., top:stop, :].double(), y[..., top:stop, :].double(), data_range)

    sums = map_pieces(strip, _strips(x.shape[-2], STRIP_ROWS, overlap=border), x)
    return torch.stack(sums).sum(dim=0) / ((x.shape[-2] - border) * (x.shape[-1] - border))


def ssim_of_y(sr_y: torch.Tensor, hr_y: torch.Tensor, crop_border: int) -> torch.Tensor:
    """Per-image SSIM of two ``y_channel`` images."""
    a, b = _crop(sr_y, crop_border), _crop(hr_y, crop_border)
    if min(a.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"image {tuple(a.shape[-2:])} (after the border crop) is smaller than the 11x11 SSIM window")
    return ssim_map_mean(a, b)


def ssim(sr: torch.Tensor, hr: torch.Tensor, crop_border: int) -> torch.Tensor:
    """Per-image SSIM on the Y channel, the literature's protocol."""
    return ssim_of_y(y_channel(sr), y_channel(hr), crop_border)


def mean(values: list[float]) -> float:
    """Dataset mean of per-image values, as papers report (mean of per-image PSNR, not of MSE)."""
    return math.fsum(values) / len(values) if values else float("nan")
