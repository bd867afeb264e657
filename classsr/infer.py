"""ClassSR inference: cut the LR image into overlapping sub-images, classify them all at once,
run each SR branch on the batch of its sub-images, stitch, blend the overlaps.

The original code runs the sub-images one at a time and crops the image to the tiling grid
(losing its last rows and columns). Here the last row and column of sub-images are *ragged*:
cut short at the image's edge, so no pixel is lost and no branch works on padding (on BSD100 x4
the sub-images cover the LR image about 1.3 times instead of 1.6 with padding to the grid). The
sub-images come in at most four shapes (full, short at the bottom, at the right, at both), and
each branch runs once per shape on the batch of its sub-images of that shape, in chunks of at most
``max_tiles`` (bounded memory on large images); a branch with no sub-images is not called. The
Class-Module runs once on the whole image where its stride allows (``Classifier.tile_logits``).

``blend`` is how the overlaps are joined: ``"mean"`` averages them, as the original code does;
``"linear"`` weights each sub-image's pixels by their distance from its edge (a ramp across the
overlap, 1 beyond it), so a pixel comes mostly from the sub-image that saw more of its
surroundings. Same FLOPs; on the CPU MSRResNet-O it gives back about three quarters of what tiling
costs (Urban100 x4, first 20 images: -0.024 dB -> -0.005 dB against the whole image).

``bias`` is the test-time quality/cost knob: ``bias x k`` is added to class k's logit, so a
positive bias moves sub-images towards the wider branches (more FLOPs, higher PSNR) and a negative
one towards the narrower, without retraining.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Grid:
    """Where the sub-images of one ``(1, C, height, width)`` image lie: ``rows x cols`` of them,
    ``size`` apart by ``step``, the last row and column cut short at the image's edge."""

    height: int
    width: int
    size: int
    step: int
    rows: int
    cols: int

    @property
    def padded(self) -> tuple[int, int]:
        """The canvas the full-size sub-images span (the image plus what the ragged ones lack)."""
        return (self.rows - 1) * self.step + self.size, (self.cols - 1) * self.step + self.size

    def sides(self) -> tuple[list[int], list[int]]:
        """Height of each row and width of each column of sub-images (the last ones ragged)."""
        last_h = min(self.size, self.height - (self.rows - 1) * self.step)
        last_w = min(self.size, self.width - (self.cols - 1) * self.step)
        return [self.size] * (self.rows - 1) + [last_h], [self.size] * (self.cols - 1) + [last_w]

    def areas(self) -> torch.Tensor:
        """``(rows * cols,)`` LR pixels of each sub-image, row-major."""
        heights, widths = self.sides()
        return (torch.tensor(heights)[:, None] * torch.tensor(widths)[None, :]).flatten()

    def shape_groups(self) -> list[tuple[int, int, torch.Tensor]]:
        """``(height, width, indices)`` of the sub-images of each shape (at most four)."""
        heights, widths = self.sides()
        index = torch.arange(self.rows * self.cols).view(self.rows, self.cols)
        groups = []
        for row_part in (slice(0, self.rows - 1), slice(self.rows - 1, self.rows)):
            for col_part in (slice(0, self.cols - 1), slice(self.cols - 1, self.cols)):
                ids = index[row_part, col_part].flatten()
                if ids.numel():
                    groups.append((heights[row_part.start], widths[col_part.start], ids))
        return groups


def make_grid(height: int, width: int, size: int, step: int) -> Grid:
    if not 0 < step <= size:
        raise ValueError(f"the step must be in [1, size], got step {step} for size {size}")
    rows = max(1, math.ceil((height - size) / step) + 1)
    cols = max(1, math.ceil((width - size) / step) + 1)
    return Grid(height, width, size, step, rows, cols)


def pad_to_grid(lr: torch.Tensor, grid: Grid) -> torch.Tensor:
    """The image on the grid's canvas, edges replicated: what full-size sub-images are cut from
    (the classifier sees them whole, as in the original code; the branches see only the image)."""
    if lr.shape[0] != 1:
        raise ValueError(f"split takes one image, got a batch of {lr.shape[0]}")
    ph, pw = grid.padded
    return F.pad(lr, (0, pw - grid.width, 0, ph - grid.height), mode="replicate")


def cut(canvas: torch.Tensor, grid: Grid) -> torch.Tensor:
    """The grid's canvas (``pad_to_grid``) -> full-size sub-images ``(rows * cols, C, size, size)``,
    row-major; the ragged ones are the top-left part of theirs (the rest is replicated edge)."""
    tiles = canvas.unfold(2, grid.size, grid.step).unfold(3, grid.size, grid.step)
    return tiles.permute(0, 2, 3, 1, 4, 5).reshape(grid.rows * grid.cols, canvas.shape[1], grid.size, grid.size)


def split(lr: torch.Tensor, grid: Grid) -> torch.Tensor:
    """``(1, C, H, W)`` -> full-size sub-images ``(rows * cols, C, size, size)`` (``cut`` of its canvas)."""
    return cut(pad_to_grid(lr, grid), grid)


Blend = Literal["mean", "linear"]
BLENDS = get_args(Blend)


def check_blend(blend: str) -> Blend:
    if blend not in BLENDS:
        raise ValueError(f"blend must be one of {', '.join(BLENDS)}, got {blend!r}")
    return blend


def edge_ramp(side: int, overlap: int, blend: Blend, device=None) -> torch.Tensor:
    """``(side,)`` weights of a sub-image's pixels along one axis: all 1 for ``"mean"``; for
    ``"linear"`` rising from the edge across ``overlap`` pixels ((i + 0.5) / overlap), then 1. Never 0,
    so a pixel only one sub-image covers (at the image's border) keeps its value."""
    if check_blend(blend) == "mean" or overlap == 0:
        return torch.ones(side, device=device)
    distance = torch.arange(side, device=device) + 0.5
    return torch.minimum(distance, side - distance).div(overlap).clamp(max=1.0)


def stitch(tiles: torch.Tensor, grid: Grid, scale: int, blend: Blend = "mean") -> torch.Tensor:
    """SR sub-images ``(rows * cols, C, size * scale, size * scale)`` -> ``(1, C, H * scale, W * scale)``,
    overlaps averaged (``blend="mean"``) or weighted by distance from each sub-image's edge
    (``"linear"``). Only the part of a ragged sub-image inside the image counts."""
    n, c, s, _ = tiles.shape
    ph, pw = grid.padded
    out_size, stride = (ph * scale, pw * scale), grid.step * scale
    heights, widths = grid.sides()
    ramp = edge_ramp(s, (grid.size - grid.step) * scale, blend, tiles.device)
    positions = torch.arange(s, device=tiles.device)[None, :]
    rows = (positions < torch.tensor(heights, device=tiles.device)[:, None] * scale) * ramp  # (grid rows, s)
    cols = (positions < torch.tensor(widths, device=tiles.device)[:, None] * scale) * ramp  # (grid cols, s)
    # At least float32: in fp16 the corner weights of a wide overlap would be subnormal.
    work = torch.promote_types(tiles.dtype, torch.float32)
    weight = (rows[:, None, :, None] * cols[None, :, None, :]).reshape(n, 1, s, s).to(work)
    total = F.fold((tiles.to(work) * weight).reshape(1, n, c * s * s).transpose(1, 2), out_size, kernel_size=s, stride=stride)
    count = F.fold(weight.reshape(1, n, s * s).transpose(1, 2), out_size, kernel_size=s, stride=stride)
    return (total / count)[..., : grid.height * scale, : grid.width * scale].to(tiles.dtype)


class Router(nn.Module):
    """What routes sub-images: ``forward(tiles (N, C, h, w)) -> logits (N, K)``. A router whose
    features are local may also classify every sub-image from one pass over the whole image."""

    def runs_once(self, size: int, step: int) -> bool:
        """Whether ``tile_logits`` classifies ``size`` sub-images ``step`` apart in one pass."""
        return False

    def tile_logits(self, image: torch.Tensor, size: int, step: int) -> torch.Tensor | None:
        """Logits of every sub-image of ``image (1, C, H, W)`` from one pass, or None."""
        return None


def tile_logits(classifier: Router, canvas: torch.Tensor, grid: Grid, max_tiles: int = 256) -> torch.Tensor:
    """Class logits ``(rows * cols, K)`` of the full-size sub-images of the grid's ``canvas``
    (``pad_to_grid``): once over the whole canvas when the classifier can (``tile_logits`` method),
    else sub-image by sub-image in chunks."""
    logits = classifier.tile_logits(canvas, grid.size, grid.step)
    if logits is not None:
        return logits
    return torch.cat([classifier(chunk) for chunk in cut(canvas, grid).split(max_tiles)])


def biased(logits: torch.Tensor, bias: float) -> torch.Tensor:
    """The quality/cost knob: ``bias x k`` added to class k's logit (> 0 favours the wider branches)."""
    return logits + bias * torch.arange(logits.shape[-1], device=logits.device, dtype=logits.dtype) if bias else logits


@torch.no_grad()
def route_and_upscale(classifier: Router, branches: list[nn.Module] | nn.ModuleList, lr: torch.Tensor,
                      scale: int, size: int = 32, step: int = 28, max_tiles: int = 256, bias: float = 0.0,
                      blend: Blend = "mean") -> tuple[torch.Tensor, torch.Tensor, Grid]:
    """SR of ``lr (1, C, H, W)``, the class of every sub-image ``(rows * cols,)``, and the grid."""
    grid = make_grid(lr.shape[-2], lr.shape[-1], size, step)
    canvas = pad_to_grid(lr, grid)  # once: the classifier and the branches both take from it
    classes = biased(tile_logits(classifier, canvas, grid, max_tiles), bias).argmax(dim=1)
    tiles = cut(canvas, grid)
    out = tiles.new_zeros(tiles.shape[0], tiles.shape[1], size * scale, size * scale)
    groups = [(h, w, ids.to(classes.device)) for h, w, ids in grid.shape_groups()]
    for k, branch in enumerate(branches):
        for h, w, ids in groups:
            chosen = ids[classes[ids] == k]
            for chunk in chosen.split(max_tiles) if chosen.numel() else ():  # no call for no sub-images
                out[chunk, :, : h * scale, : w * scale] = branch(tiles[chunk, :, :h, :w]).to(out.dtype)
    return stitch(out, grid, scale, blend), classes, grid


def routed_flops(per_pixel: list[float], classes: torch.Tensor, grid: Grid) -> float:
    """FLOPs of the branches on one routed image: each sub-image's branch on its own pixels
    (``per_pixel[k]``: branch k's FLOPs per LR pixel; convolutions with 'same' padding cost the
    same per pixel at any size). The router's cost is the caller's to add."""
    areas = grid.areas().to(classes.device, torch.float64)
    cost = torch.tensor(per_pixel, dtype=torch.float64, device=classes.device)[classes]
    return float((cost * areas).sum())


def classifier_flops(classifier: Router, grid: Grid, per_tile: float) -> float:
    """FLOPs of ``tile_logits`` for one image: ``per_tile`` for every sub-image, or its per-pixel
    share over the grid's canvas when the classifier runs once on the whole image."""
    tiles = grid.rows * grid.cols
    if not classifier.runs_once(grid.size, grid.step):
        return per_tile * tiles
    head = 2 * classifier.fc.in_features * classifier.fc.out_features  # the linear layer: still once per sub-image
    return (per_tile - head) / grid.size**2 * grid.padded[0] * grid.padded[1] + head * tiles


def upscale_tiled(network: nn.Module, lr: torch.Tensor, scale: int, size: int = 32, step: int = 28,
                  max_tiles: int = 256, blend: Blend = "mean") -> torch.Tensor:
    """One network on every sub-image, stitched as ClassSR stitches: what the tiling alone costs."""
    return route_and_upscale(OneClass(), [network], lr, scale, size, step, max_tiles, blend=blend)[0]


class OneClass(Router):
    """Every sub-image to class 0."""

    def forward(self, tiles: torch.Tensor) -> torch.Tensor:
        return tiles.new_ones(tiles.shape[0], 1)


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
