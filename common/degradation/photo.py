"""How people and tools shrink photographs: the downscalers of the photo benchmark.

A photograph someone super-resolves was rarely made by MATLAB's ``imresize``: it was shrunk by an
image library, a phone or an editor, and often saved as JPEG. ``shrink(hr, scale, tool, jpeg)``
makes such an LR image exactly as the tool does (Pillow itself, not an imitation):

==============  =================================================================================
``pil_bicubic``   Pillow ``resize(BICUBIC)``: Keys cubic (a = -0.5) with antialiasing (the kernel
                  stretched by the scale) — Pillow's default for shrinking, and what most Python
                  code, thumbnails and many web tools do
``pil_bilinear``  Pillow ``resize(BILINEAR)``: the triangle filter, stretched (torchvision's
                  antialiased bilinear)
``pil_lanczos``   Pillow ``resize(LANCZOS)``: Lanczos-3, stretched (ImageMagick's and many editors' choice)
``box``           Pillow ``resize(BOX)``: each LR pixel the mean of its s x s HR pixels; at whole
                  factors this is also OpenCV's ``INTER_AREA`` and "area averaging"
``matlab``        MATLAB ``imresize`` (bicubic, antialiased): the benchmarks' LR (``srlab.imresize``)
``gauss``         a mild Gaussian blur (variance 1 HR pixel^2) then every s-th pixel: an optical blur
==============  =================================================================================

``jpeg``: the LR image is then saved as JPEG at that quality (4:2:0 chroma, Pillow's default) and
read back, as a photo saved by a phone or an editor is.

``blockiness``, ``jpeg_quality_like``: whether an image was saved as JPEG, read off its 8x8
blocks, and a quality that compresses a comparable image as much.

``tool_kernel(tool, scale)``: the same downscaler as a blur kernel followed by keeping every s-th
pixel (``srlab.degradation.degrade(..., "direct")``). At whole factors every tool here is exactly
that, apart from the image border and Pillow's 8-bit intermediate rounding, so a method that
adapts to a kernel (MZSR) can adapt to a tool, and meta-training can draw tools as tasks.
"""
from __future__ import annotations

import io
import math

import numpy as np
import torch
from PIL import Image

from srlab.degradation.blur import degrade
from srlab.imresize import imresize

TOOLS = ("pil_bicubic", "pil_bilinear", "pil_lanczos", "box", "matlab", "gauss")
PIL_FILTERS = {"pil_bicubic": Image.BICUBIC, "pil_bilinear": Image.BILINEAR, "pil_lanczos": Image.LANCZOS,
               "box": Image.BOX}
GAUSS_VARIANCE = 1.0  # "mild": within MZSR's training range at x2 (variances 1 to 5)


def _filter(tool: str, x: np.ndarray) -> np.ndarray:
    """The 1-D filter of a tool, Pillow's definitions (support: box 0.5, triangle 1, cubic 2, lanczos 3)."""
    ax = np.abs(x)
    if tool == "box":
        return ((x > -0.5) & (x <= 0.5)).astype(float)
    if tool == "pil_bilinear":
        return np.clip(1 - ax, 0, None)
    if tool in ("pil_bicubic", "matlab"):
        a = -0.5
        return np.where(ax < 1, (a + 2) * ax**3 - (a + 3) * ax**2 + 1,
                        np.where(ax < 2, a * ax**3 - 5 * a * ax**2 + 8 * a * ax - 4 * a, 0.0))
    if tool == "pil_lanczos":
        return np.where(ax < 3, np.sinc(x) * np.sinc(x / 3), 0.0)
    raise ValueError(f"unknown tool {tool!r}")


def tool_kernel(tool: str, scale: int) -> torch.Tensor:
    """An odd ``(k, k)`` kernel: correlating with it and keeping pixels 0, s, 2s, ... shrinks an image
    by the whole factor ``scale`` as ``tool`` does (away from the border)."""
    if tool == "gauss":
        size = 2 * math.ceil(3 * math.sqrt(GAUSS_VARIANCE)) + 1
        x = np.arange(size) - size // 2
        k1 = np.exp(-(x**2) / (2 * GAUSS_VARIANCE))
        return torch.from_numpy(np.outer(k1, k1) / np.outer(k1, k1).sum()).float()
    support = {"box": 0.5, "pil_bilinear": 1, "pil_bicubic": 2, "matlab": 2, "pil_lanczos": 3}[tool] * scale
    # Output pixel i covers input pixels i*s + m; its centre is at i*s + (s - 1) / 2 (Pillow's and
    # MATLAB's pixel mapping), so tap m has weight filter((m + 0.5 - s / 2) / s).
    reach = math.ceil(support + (scale - 1) / 2)  # the taps' centre is (s - 1) / 2 right of tap 0
    m = np.arange(-reach, reach + 1)
    k1 = _filter(tool, (m + 0.5 - scale / 2) / scale)
    k1 = k1 / k1.sum()
    return torch.from_numpy(np.outer(k1, k1)).float()  # centre tap m = 0: the kernel's middle


def shrink(hr: np.ndarray, scale: int, tool: str, jpeg: int | None = None) -> np.ndarray:
    """The uint8 HR image ``(H, W, 3)`` shrunk by ``scale`` with ``tool`` (``TOOLS``), then saved as
    JPEG at quality ``jpeg`` and read back if given. ``H`` and ``W`` must be multiples of ``scale``."""
    h, w = hr.shape[:2]
    if h % scale or w % scale:
        raise ValueError(f"the HR image ({w}x{h}) must be a multiple of the scale {scale} (modcrop it)")
    if tool in PIL_FILTERS:
        lr = np.array(Image.fromarray(hr).resize((w // scale, h // scale), PIL_FILTERS[tool]))  # writable
    else:
        x = torch.from_numpy(hr).permute(2, 0, 1)[None].double() / 255
        if tool == "matlab":
            y = imresize(x, scale=1 / scale)
        elif tool == "gauss":
            y = degrade(x, tool_kernel("gauss", scale).double(), scale, "direct")
        else:
            raise ValueError(f"unknown tool {tool!r}; allowed: {', '.join(TOOLS)}")
        lr = (y[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return jpeg_round_trip(lr, jpeg) if jpeg else lr


def jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    """``image`` saved as JPEG at ``quality`` (Pillow: 4:2:0 chroma) and decoded again."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.array(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))  # writable: torch takes it as it is


# A decoded JPEG shows its 8x8 blocks: pixel differences across block boundaries are larger than
# inside blocks. Measured on the photographs bundled with scikit-image shrunk x2 by Pillow: 0.97-1.06
# without JPEG, 1.00-1.08 after quality 90, 1.02-1.28 after quality 75, 1.16-2.34 after quality 50.
JPEG_BLOCKINESS = 1.06
JPEG_QUALITIES = (95, 90, 85, 80, 75, 65, 50, 35)


def blockiness(image: np.ndarray) -> float:
    """Mean luma difference across the 8x8 grid's boundaries over the mean difference inside the
    blocks, for a uint8 ``(H, W, 3)`` image: about 1 without JPEG, more the harder it was compressed."""
    y = image[: image.shape[0] // 8 * 8, : image.shape[1] // 8 * 8].astype(np.float64) @ [0.299, 0.587, 0.114]
    if min(y.shape) < 16:
        return 1.0
    dx, dy = np.abs(np.diff(y, axis=1)), np.abs(np.diff(y, axis=0))
    across = dx[:, 7::8].mean() + dy[7::8, :].mean()
    inside = np.delete(dx, np.s_[7::8], axis=1).mean() + np.delete(dy, np.s_[7::8], axis=0).mean()
    return float(across / max(inside, 1e-9))


def jpeg_quality_like(image: np.ndarray, other: np.ndarray) -> int | None:
    """The JPEG quality that gives ``other`` (a smaller copy of ``image``) the blockiness ``image``
    has, or None when ``image`` shows no JPEG blocks."""
    target = blockiness(image)
    if target < JPEG_BLOCKINESS:
        return None
    return min(JPEG_QUALITIES, key=lambda q: abs(blockiness(jpeg_round_trip(other, q)) - target))
