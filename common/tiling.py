"""Super-resolve an image of any size in bounded memory: overlapping tiles, seams cropped away.

The LR image is cut into ``tile x tile`` cores; each core is run with ``margin`` LR pixels of its
real neighbours around it (fewer at the image's border, as untiled inference has), and only the
core's part of the result is kept. Where ``margin`` covers the network's receptive field and the
bicubic kernel, a tile's core sees exactly the pixels it would see untiled, so the result equals
untiled inference (``tests/test_upscale.py`` checks it; no blending is needed and none can blur).
Memory: the uint8 output plus one tile's float work, whatever the image size.

``self_ensemble(infer)``: the x8 geometric self-ensemble (flips and transposes, averaged).
"""
from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch

from srlab.data import to_tensor, to_uint8
from srlab.errors import DataError

Infer = Callable[[torch.Tensor], torch.Tensor]  # LR (1, 3, h, w) in [0, 1] -> SR (1, 3, h*s, w*s)


def tiles(height: int, width: int, tile: int, margin: int) -> Iterator[tuple[slice, slice, slice, slice]]:
    """``(core_y, core_x, padded_y, padded_x)`` slices of LR pixels, row by row."""
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            core_y, core_x = slice(top, min(top + tile, height)), slice(left, min(left + tile, width))
            padded_y = slice(max(0, top - margin), min(height, core_y.stop + margin))
            padded_x = slice(max(0, left - margin), min(width, core_x.stop + margin))
            yield core_y, core_x, padded_y, padded_x


def upscale_tiled(infer: Infer, lr: np.ndarray, scale: int, tile: int = 256, margin: int = 24,
                  device: torch.device | str = "cpu", on_tile: Callable[[], None] | None = None) -> np.ndarray:
    """SR of the uint8 image ``lr`` (H, W, 3) as uint8 (H*scale, W*scale, 3), one tile at a time."""
    height, width = lr.shape[:2]
    out = np.empty((height * scale, width * scale, 3), dtype=np.uint8)
    for core_y, core_x, padded_y, padded_x in tiles(height, width, tile, margin):
        x = to_tensor(lr[padded_y, padded_x].copy()).to(device)  # a copy: PIL arrays are read-only
        with torch.no_grad():
            sr = infer(x)
        if not torch.isfinite(sr).all():
            raise DataError("the network gave NaN or infinity; nothing written")
        top, left = (core_y.start - padded_y.start) * scale, (core_x.start - padded_x.start) * scale
        height_sr, width_sr = (core_y.stop - core_y.start) * scale, (core_x.stop - core_x.start) * scale
        core = sr[0, :, top : top + height_sr, left : left + width_sr]
        rows, cols = slice(core_y.start * scale, core_y.stop * scale), slice(core_x.start * scale, core_x.stop * scale)
        out[rows, cols] = to_uint8(core.float())
        if on_tile is not None:
            on_tile()
    return out


def self_ensemble(infer: Infer) -> Infer:
    """The x8 self-ensemble (Lim et al., EDSR): the mean of ``infer`` over the 8 flips/transposes,
    each turned back. Eight times the work, usually +0.1 dB or so."""

    def ensembled(lr: torch.Tensor) -> torch.Tensor:
        total = None
        for transpose in (False, True):
            for flips in ((), (-1,), (-2,), (-2, -1)):
                x = lr.transpose(-2, -1) if transpose else lr
                x = x.flip(flips) if flips else x
                y = infer(x).float()
                y = y.flip(flips) if flips else y
                y = y.transpose(-2, -1) if transpose else y
                total = y if total is None else total + y
        return total / 8

    return ensembled
