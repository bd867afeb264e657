"""RGB <-> YCbCr as MATLAB's ``rgb2ycbcr`` / ``ycbcr2rgb`` define them (ITU-R BT.601, studio swing).

Y-channel networks (VDSR) see ``Y / 255`` of the bicubic-upscaled image; Cb and Cr are carried
over from bicubic. Float tensors in [0, 1], ``(B, 3, H, W)``; no rounding here (the metrics
round, see ``srlab.metrics.rgb_to_y``).
"""
from __future__ import annotations

import torch

# Rows: Y, Cb, Cr; columns: R, G, B. MATLAB's coefficients for RGB in [0, 1] and YCbCr in 0..255;
# the functions divide by 255 to stay in [0, 1].
RGB_TO_YCBCR = (
    (65.481, 128.553, 24.966),
    (-37.797, -74.203, 112.0),
    (112.0, -93.786, -18.214),
)
YCBCR_OFFSET = (16.0, 128.0, 128.0)


def _matrix(x: torch.Tensor) -> torch.Tensor:
    return torch.tensor(RGB_TO_YCBCR, dtype=x.dtype, device=x.device) / 255


def _offset(x: torch.Tensor) -> torch.Tensor:
    return torch.tensor(YCBCR_OFFSET, dtype=x.dtype, device=x.device).view(1, 3, 1, 1) / 255


def rgb_to_ycbcr(x: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] -> YCbCr in [0, 1] (Y in [16, 235] / 255)."""
    return torch.einsum("yc,bchw->byhw", _matrix(x), x) + _offset(x)


def ycbcr_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """The exact inverse of ``rgb_to_ycbcr`` (not clamped)."""
    inverse = torch.linalg.inv(_matrix(x).double()).to(x.dtype)
    return torch.einsum("cy,byhw->bchw", inverse, x - _offset(x))
