"""ClassSR inference: cut the LR image into overlapping sub-images, classify them all in one
batch, run each SR branch once on the batch of its sub-images, stitch, average the overlaps.

The original code runs the sub-images one at a time and crops the output when the image size is
not a multiple of the step; here the LR image is padded (edge replication) up to the tiling grid
and the output is cropped back to exactly ``scale`` times the input. ``max_tiles`` bounds how many
sub-images go through a network at once, so memory stays bounded on large images.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Grid:
    """Where the sub-images of one ``(1, C, height, width)`` image lie, after padding."""

    height: int
    width: int
    size: int
    step: int
    rows: int
    cols: int

    @property
    def padded(self) -> tuple[int, int]:
        return (self.rows - 1) * self.step + self.size, (self.cols - 1) * self.step + self.size


def make_grid(height: int, width: int, size: int, step: int) -> Grid:
    if not 0 < step <= size:
        raise ValueError(f"the step must be in [1, size], got step {step} for size {size}")
    rows = max(1, math.ceil((height - size) / step) + 1)
    cols = max(1, math.ceil((width - size) / step) + 1)
    return Grid(height, width, size, step, rows, cols)


def split(lr: torch.Tensor, grid: Grid) -> torch.Tensor:
    """``(1, C, H, W)`` -> sub-images ``(rows * cols, C, size, size)``, row-major."""
    if lr.shape[0] != 1:
        raise ValueError(f"split takes one image, got a batch of {lr.shape[0]}")
    ph, pw = grid.padded
    padded = F.pad(lr, (0, pw - grid.width, 0, ph - grid.height), mode="replicate")
    tiles = padded.unfold(2, grid.size, grid.step).unfold(3, grid.size, grid.step)  # (1, C, r, c, s, s)
    return tiles.permute(0, 2, 3, 1, 4, 5).reshape(grid.rows * grid.cols, lr.shape[1], grid.size, grid.size)


def stitch(tiles: torch.Tensor, grid: Grid, scale: int) -> torch.Tensor:
    """SR sub-images ``(rows * cols, C, size * scale, size * scale)`` -> ``(1, C, H * scale, W * scale)``,
    overlaps averaged, padding cropped away."""
    n, c, s, _ = tiles.shape
    ph, pw = grid.padded
    out_size, stride = (ph * scale, pw * scale), grid.step * scale
    columns = tiles.reshape(1, n, c * s * s).transpose(1, 2)
    total = F.fold(columns, out_size, kernel_size=s, stride=stride)
    count = F.fold(torch.ones_like(columns[:, :s * s]), out_size, kernel_size=s, stride=stride)
    return (total / count)[..., : grid.height * scale, : grid.width * scale]


@torch.no_grad()
def route_and_upscale(classifier: nn.Module, branches: list[nn.Module] | nn.ModuleList, lr: torch.Tensor,
                      scale: int, size: int = 32, step: int = 28, max_tiles: int = 256,
                      ) -> tuple[torch.Tensor, torch.Tensor, Grid]:
    """SR of ``lr (1, C, H, W)``, the class of every sub-image ``(rows * cols,)``, and the grid."""
    grid = make_grid(lr.shape[-2], lr.shape[-1], size, step)
    tiles = split(lr, grid)
    logits = torch.cat([classifier(chunk) for chunk in tiles.split(max_tiles)])
    classes = logits.argmax(dim=1)
    out = tiles.new_empty(tiles.shape[0], tiles.shape[1], size * scale, size * scale)
    for k, branch in enumerate(branches):
        chosen = (classes == k).nonzero().squeeze(1)
        for chunk in chosen.split(max_tiles):
            out[chunk] = branch(tiles[chunk]).to(out.dtype)
    return stitch(out, grid, scale), classes, grid


def upscale_tiled(network: nn.Module, lr: torch.Tensor, scale: int, size: int = 32, step: int = 28,
                  max_tiles: int = 256) -> torch.Tensor:
    """One network on every sub-image, stitched as ClassSR stitches: what the tiling alone costs."""
    def one_class(tiles: torch.Tensor) -> torch.Tensor:
        return tiles.new_ones(tiles.shape[0], 1)

    return route_and_upscale(one_class, [network], lr, scale, size, step, max_tiles)[0]


def class_colours(num_classes: int) -> torch.Tensor:
    """``(num_classes, 3)`` RGB in [0, 1], green (class 0, simplest) through yellow to red (hardest)."""
    t = torch.linspace(0, 1, num_classes)
    return torch.stack([(2 * t).clamp(max=1), (2 * (1 - t)).clamp(max=1), torch.zeros_like(t)], dim=1)


def class_map(sr: torch.Tensor, classes: torch.Tensor, grid: Grid, scale: int, num_classes: int,
              opacity: float = 0.4) -> torch.Tensor:
    """The SR image ``(1, 3, H, W)`` tinted by the class of each sub-image -> ``(3, H, W)`` in [0, 1]
    (overlaps take the mean colour, as the SR pixels take the mean value)."""
    colours = class_colours(num_classes).to(sr.device)[classes]  # (n, 3)
    side = grid.size * scale
    tint = stitch(colours[:, :, None, None].expand(-1, -1, side, side), grid, scale)
    return ((1 - opacity) * sr.float().clamp(0, 1) + opacity * tint)[0]
