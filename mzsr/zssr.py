"""ZSSR (Shocher, Cohen, Irani, CVPR 2018), the zero-shot baseline: train the network from
scratch on one test image, then super-resolve that image.

Each iteration cuts a random crop of the LR image (the "father"), applies a random flip /
90-degree rotation, degrades it with the known kernel to the "son", and takes an Adam step on
L1(net(imresize(son)), father). The learning rate follows ZSSR's policy: every 50 iterations the
reconstruction error of the whole image (son -> LR) is recorded; every 60 iterations, once 256
have passed since the last change, a line is fitted to the recent errors and the lr is divided
by 10 when the error no longer falls clearly (-1.5 x slope < the slope's standard deviation).
Training stops after ``iters`` iterations or when the lr drops below 9e-6.

Not reproduced from ZSSR: fathers from downscaled copies of the image, shear augmentation,
back-projection and the geometric self-ensemble at the end (so our ZSSR is a little weaker).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from common.degradation import Degradation
from common.imresize import imresize
from mzsr.zeroshot import son_pair


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


def zssr(model: nn.Module, lr: torch.Tensor, scale: int, degradation: Degradation, iters: int,
         learning_rate: float, crop: int, seed: int = 0, schedule: ZSSRSchedule = ZSSRSchedule()) -> torch.Tensor:
    """Train ``model`` (fresh weights, modified in place) on ``lr (1, 3, h, w)``; return its SR."""
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    full_input, full_target = son_pair(lr, scale, degradation)
    h, w = full_target.shape[-2:]
    size = min(crop, h, w) // scale * scale
    errors: list[tuple[int, float]] = []
    last_change = 0
    model.train()
    for it in range(iters):
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
        return model(imresize(lr, scale=scale))
