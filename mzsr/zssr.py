"""ZSSR (Shocher, Cohen, Irani, CVPR 2018), the zero-shot baseline: train the network from
scratch on one test image, then super-resolve that image.

``zssr(..., augment="official")`` follows the official code's configuration for a known kernel
(assafshocher/ZSSR, ``configs.X2_GIVEN_KERNEL_CONF``):

* Each iteration's "father" is a ``crop x crop`` window of the LR image made as the official
  ``random_augment`` makes it: with probability 0.05 a plain crop, 0.45 a crop at a whole-pixel
  shift, 0.5 an affine warp (bicubic, zeros outside the image) that scales by U[0.5, 1] with an
  aspect jitter N(0, 0.25) and shears by N(0, 0.1) on each axis. No rotations and no flips: the
  kernel may be non-symmetric (and a flip does not commute with direct subsampling).
* The son is the father degraded with the known kernel; one Adam step on
  L1(net(bicubic-upscaled son), father). ZSSR's learning-rate policy: every 50 iterations the
  reconstruction error of the whole image (its son -> the image) is recorded; every 60, once
  256 have passed since the last change, a line is fitted to the recent errors and the lr is
  divided by 10 when the error no longer falls clearly (-1.5 x slope < the slope's standard
  deviation). Training stops after ``iters`` iterations or when the lr falls below 9e-6.
* The output, clipped to [0, 1], is back-projected 2 + 2 times (the configuration's 2 iterations,
  once per output and once after the median of the outputs, of which there is one here: the
  geometric self-ensemble is off for a given kernel): SR += bicubic-up(LR - degrade(SR)).

The network is the caller's (MZSR's network, with biases and its own initialisation; the
official ZSSR's convolutions have no biases). ``augment="dihedral"`` is this project's earlier
variant: random crops with one of the 8 flips/rotations and no back-projection. It is not ZSSR's
known-kernel setting: a rotated image degraded and rotated back is not the image degraded (about
33 dB apart with direct subsampling), which costs about 1 dB at g^d_0.2.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from srlab.degradation import Degradation
from srlab.imresize import imresize
from srlab.mzsr.zeroshot import son_pair


@dataclass
class ZSSRSchedule:
    """ZSSR's learning-rate policy constants (its configs.py)."""

    min_lr: float = 9e-6
    test_every: int = 50
    check_every: int = 60
    min_iters: int = 256
    slope_range: int = 256
    change_ratio: float = 1.5


def lr_should_drop(errors: list[tuple[int, float]], schedule: ZSSRSchedule) -> bool:
    """ZSSR's test: fit a line to recent (iteration, error) points; drop the lr when the error
    is not falling clearly, i.e. -ratio x slope < the slope's standard deviation."""
    steps, values = zip(*errors)
    (slope, _), cov = np.polyfit(steps, values, 1, cov=True)
    return -schedule.change_ratio * slope < np.sqrt(cov[0, 0])


def _random_dihedral(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One of the 8 flips/rotations, uniformly (the flip is the parity of a draw from 0..3)."""
    k, flip = torch.randint(0, 4, (2,), generator=generator).tolist()
    x = torch.rot90(x, k, dims=(-2, -1))
    return x.flip(-1) if flip % 2 else x


AUGMENTS = ("official", "dihedral")


def official_father(image: torch.Tensor, crop: int, rng: np.random.Generator) -> torch.Tensor:
    """A ``crop x crop`` father of ``image (1, C, H, W)`` as the official ``random_augment`` makes it
    with rotations off and one source image (see the module docstring)."""
    h, w = image.shape[-2:]
    chooser = rng.random()
    mode = "as_is" if chooser < 0.05 else "no_interp" if chooser < 0.5 else "affine"
    scale, scale_diff, shear_x, shear_y = 1.0, 0.0, 0.0, 0.0
    if mode == "affine":
        scale = rng.uniform(0.5, 1.0)
        scale_diff = rng.normal() * 0.25
        shear_x, shear_y = rng.normal() * 0.1, rng.normal() * 0.1
    shift_x = rng.random() * max(scale * w - crop, 0)
    shift_y = rng.random() * max(scale * h - crop, 0)
    centre = np.array([w / 2, h / 2])
    if mode != "affine":  # whole pixels: a plain crop, no interpolation
        shift_x, shift_y, centre = round(shift_x), round(shift_y), np.round(centre)

    def translate(x, y):
        return np.array([[1, 0, x], [0, 1, y], [0, 0, 1.0]])

    warp = (translate(*centre) @ translate(-shift_x, -shift_y) @ np.array([[1, shear_x, 0], [shear_y, 1, 0], [0, 0, 1]])
            @ np.diag([scale + scale_diff / 2, scale - scale_diff / 2, 1]) @ translate(*-centre))
    # The warp maps image pixels to father pixels (OpenCV's warpPerspective convention, pixel
    # centres at integers); sample the image where each father pixel comes from.
    u, v = np.meshgrid(np.arange(crop), np.arange(crop))
    src = np.linalg.inv(warp) @ np.stack([u.ravel(), v.ravel(), np.ones(u.size)])
    x, y = src[0] / src[2], src[1] / src[2]
    grid = np.stack([2 * x / max(w - 1, 1) - 1, 2 * y / max(h - 1, 1) - 1], axis=-1).reshape(1, crop, crop, 2)
    grid = torch.from_numpy(grid).to(image.dtype).to(image.device)
    father = F.grid_sample(image, grid, mode="bicubic", padding_mode="zeros", align_corners=True)
    return father.clamp(0, 1)


def back_project(sr: torch.Tensor, lr: torch.Tensor, scale: int, degradation: Degradation) -> torch.Tensor:
    """One back-projection step: SR + bicubic-up(LR - degrade(SR)), clipped to [0, 1]."""
    residual = lr - degradation.apply(sr, scale)
    return (sr + imresize(residual, size=tuple(sr.shape[-2:]))).clamp(0, 1)


def zssr(model: nn.Module, lr: torch.Tensor, scale: int, degradation: Degradation, iters: int,
         learning_rate: float, crop: int, seed: int = 0, schedule: ZSSRSchedule = ZSSRSchedule(),
         augment: str = "official", back_projection: int = 2) -> torch.Tensor:
    """Train ``model`` (fresh weights, modified in place) on ``lr (1, 3, h, w)``; return its SR.

    ``augment``: "official" (ZSSR's known-kernel fathers, then ``back_projection`` + ``back_projection``
    back-projection steps) or "dihedral" (crops with flips/rotations, no back-projection)."""
    if augment not in AUGMENTS:
        raise ValueError(f"augment must be one of {AUGMENTS}, got {augment!r}")
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    full_input, full_target = son_pair(lr, scale, degradation)
    h, w = full_target.shape[-2:]
    size = min(crop, h, w) // scale * scale
    errors: list[tuple[int, float]] = []
    last_change = 0
    model.train()
    for it in range(iters):
        if augment == "official":
            father = official_father(lr, crop // scale * scale, rng)
        else:
            top = int(torch.randint(0, (h - size) // scale + 1, (1,), generator=generator)) * scale
            left = int(torch.randint(0, (w - size) // scale + 1, (1,), generator=generator)) * scale
            father = _random_dihedral(full_target[..., top : top + size, left : left + size], generator)
        x, y = son_pair(father, scale, degradation)
        loss = F.l1_loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

        if it % schedule.test_every == 0:
            with torch.no_grad():
                errors.append((it, F.mse_loss(model(full_input), full_target).item()))
        if (it + 1) % schedule.check_every == 0 and it - last_change > schedule.min_iters:
            if lr_should_drop(errors[-(schedule.slope_range // schedule.test_every):], schedule):
                for group in optimizer.param_groups:
                    group["lr"] /= 10
                last_change = it
        if optimizer.param_groups[0]["lr"] < schedule.min_lr:
            break
    model.eval()
    with torch.no_grad():
        sr = model(imresize(lr, scale=scale))
        if augment == "official":
            sr = sr.clamp(0, 1)
            for _ in range(2 * back_projection):  # per output, then after the (one-output) median
                sr = back_project(sr, lr, scale, degradation)
        return sr
