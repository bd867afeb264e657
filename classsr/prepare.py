"""ClassSR's data split: cut training HR images into sub-images, score each with an SR network
trained on all the data, and split them into classes by PSNR quantiles.

* ``sub_image_positions(h, w, size, step)``: top-left corners of ``size`` crops every ``step``
  pixels, plus one flush with the bottom/right edge when the grid misses it (every pixel covered).
* ``score_sub_images(model, image, scale, lr_size, step)``: for one HR image, the PSNR_Y of the
  network on each sub-image (LR by MATLAB bicubic, 8-bit, as at test time), batched, and each LR
  sub-image's edge score (for the training-free edge router's thresholds).
* ``class_thresholds(psnrs, n_classes)``: the 1/n, 2/n, ... quantiles of the PSNRs.
* ``assign_classes(psnrs, thresholds)``: 0 = the easiest third (highest PSNR, smallest branch),
  ``n_classes - 1`` = the hardest.
* ``read_split(path)`` / ``class_regions(split, files, scale, cls)``: the saved split, and the
  sub-images of one class as regions for ``srlab.data.PatchSampler``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from srlab.classsr.edge_router import edge_score
from srlab.data import to_tensor
from srlab.errors import ConfigError
from srlab.imresize import imresize
from srlab.metrics import psnr, quantize


def sub_image_positions(h: int, w: int, size: int, step: int) -> list[tuple[int, int]]:
    if min(h, w) < size:
        return []

    def starts(n: int) -> list[int]:
        s = list(range(0, n - size + 1, step))
        return s if s[-1] == n - size else s + [n - size]

    return [(y, x) for y in starts(h) for x in starts(w)]


@torch.no_grad()
def score_sub_images(model: nn.Module, image: np.ndarray, scale: int, lr_size: int, step: int,
                     device: torch.device = torch.device("cpu"), batch: int = 64,
                     ) -> tuple[list[tuple[int, int]], torch.Tensor, torch.Tensor]:
    """HR positions (in HR pixels), the network's PSNR_Y and the edge score (``edge_router.edge_score``)
    of each sub-image of ``image (H, W, 3)``."""
    hr_size, hr_step = lr_size * scale, step * scale
    positions = sub_image_positions(image.shape[0], image.shape[1], hr_size, hr_step)
    hr = to_tensor(image).to(device)
    scores, edges = [], []
    for start in range(0, len(positions), batch):
        chunk = positions[start : start + batch]
        tiles = torch.cat([hr[..., y : y + hr_size, x : x + hr_size] for y, x in chunk])
        lr = quantize(imresize(tiles, scale=1 / scale))
        scores.append(psnr(quantize(model(lr).float()), tiles, scale).cpu())
        edges.append(edge_score(lr).cpu())
    if not scores:
        return positions, torch.empty(0), torch.empty(0)
    return positions, torch.cat(scores), torch.cat(edges)


def class_thresholds(psnrs: torch.Tensor, n_classes: int = 3) -> list[float]:
    if psnrs.numel() < n_classes:
        raise ValueError(f"need at least {n_classes} sub-images to split into {n_classes} classes, got {psnrs.numel()}")
    qs = torch.arange(1, n_classes, dtype=torch.float64) / n_classes
    return torch.quantile(psnrs.double(), qs).tolist()


def assign_classes(psnrs: torch.Tensor, thresholds: list[float]) -> torch.Tensor:
    """Class of each sub-image: the number of thresholds its PSNR lies below (0 = above all)."""
    below = torch.bucketize(psnrs.double(), torch.tensor(thresholds, dtype=torch.float64), right=True)
    return len(thresholds) - below  # highest PSNR -> 0 (simple), lowest -> n - 1 (hard)


def read_split(path: str | Path) -> dict:
    """A split written by ``scripts/prepare_classsr.py``, checked; ``ConfigError`` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: class split not found (make it with scripts/prepare_classsr.py)")
    try:
        split = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not a JSON class split ({exc})") from None
    keys = ("scale", "lr_size", "n_classes", "images", "sub_images")
    if not isinstance(split, dict) or any(k not in split for k in keys):
        raise ConfigError(f"{path}: not a class split (needs {', '.join(keys)})")
    _check_split(split, path)
    return split


def _whole(value, low: int = 0) -> bool:
    return type(value) is int and value >= low


def _check_split(split: dict, path: Path) -> None:
    """Every field and every sub-image row ``[image, top, left, psnr, class]`` of a split has the
    type and range ``prepare_classsr`` writes: a damaged or hand-edited entry would otherwise drop
    its sub-image from every class without a word."""
    for key, low in (("scale", 2), ("lr_size", 1), ("n_classes", 1)):
        if not _whole(split[key], low):
            raise ConfigError(f"{path}: {key} = {split[key]!r}; a whole number >= {low} is allowed")
    images, rows = split["images"], split["sub_images"]
    if not isinstance(images, list) or not all(isinstance(f, str) for f in images):
        raise ConfigError(f"{path}: images must be a list of file paths")
    if not isinstance(rows, list):
        raise ConfigError(f"{path}: sub_images must be a list of [image, top, left, psnr, class] rows")
    for n, row in enumerate(rows):
        fits = isinstance(row, list) and len(row) == 5 and _whole(row[0]) and row[0] < len(images) and \
            _whole(row[1]) and _whole(row[2]) and type(row[3]) in (int, float) and _whole(row[4]) and \
            row[4] < split["n_classes"]
        if not fits:
            raise ConfigError(f"{path}: sub_images[{n}] = {str(row)[:80]}; allowed: [image index < {len(images)}, "
                              f"top >= 0, left >= 0, psnr, class 0 to {split['n_classes'] - 1}]")


def class_regions(split: dict, files: list[Path], scale: int, cls: int, where: str) -> np.ndarray:
    """``(file index, top, left, size)`` rows of the sub-images of class ``cls``, for ``files``."""
    if split["scale"] != scale:
        raise ConfigError(f"{where}: the split was made at x{split['scale']}, the config trains x{scale}")
    if not 0 <= cls < split["n_classes"]:
        raise ConfigError(f"{where}: branch_class must be in [0, {split['n_classes'] - 1}], got {cls}")
    if [Path(f).resolve() for f in split["images"]] != [Path(f).resolve() for f in files]:
        raise ConfigError(f"{where}: the split was made from other images than train.datasets "
                          f"({len(split['images'])} vs {len(files)} files); rerun scripts/prepare_classsr.py")
    size = split["lr_size"] * scale
    rows = [(i, y, x, size) for i, y, x, _, c in split["sub_images"] if c == cls]
    return np.array(rows, dtype=np.int64).reshape(-1, 4)
