"""Stage 3 of MZSR: adapt the meta-learned network to one test image, then super-resolve it.

The image's own degradation gives a training pair without any HR: the "son" is the LR image
degraded once more with the known kernel, and the network learns son -> LR for a few plain SGD
steps (MZSR(n) takes n steps, MZSR(0) none). Then SR = network(imresize(LR, scale)).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from common.degradation import Degradation
from common.imresize import imresize
from mzsr.meta import finetune

# The paper's test-time learning rates (from its code): 2e-2 for step 0, 1e-2 for steps 1-3,
# then 5e-3. Step i uses entry min(i, len - 1).
PAPER_ADAPT_LRS = (2e-2, 1e-2, 1e-2, 1e-2, 5e-3)


def step_lrs(steps: int, schedule: list[float] | tuple[float, ...]) -> list[float]:
    """The learning rate of each of ``steps`` steps: ``schedule[i]``, its last entry repeated."""
    return [schedule[min(i, len(schedule) - 1)] for i in range(steps)]


def son_pair(lr: torch.Tensor, scale: int, degradation: Degradation) -> tuple[torch.Tensor, torch.Tensor]:
    """(network input, target) for test-time training: the LR image's own degradation.

    The LR image is cropped to a multiple of ``scale`` (top-left), degraded with the same kernel
    and subsampling to the son, and the son is bicubic-upscaled back to the cropped LR's size.
    """
    h, w = lr.shape[-2:]
    if min(h, w) < scale:
        raise ValueError(f"the LR image ({w}x{h}) is smaller than the scale {scale}")
    target = lr[..., : h - h % scale, : w - w % scale]
    with torch.no_grad():
        son = degradation.apply(target, scale)
        return imresize(son, size=tuple(target.shape[-2:])), target


def adapt_and_upscale(model: nn.Module, lr: torch.Tensor, scale: int, degradation: Degradation,
                      lrs: list[float]) -> torch.Tensor:
    """MZSR(len(lrs)): fine-tune a copy of ``model``'s weights on the son pair, then SR of ``lr``."""
    params = {name: p.detach() for name, p in model.named_parameters()}
    channels_last = params[next(iter(params))].is_contiguous(memory_format=torch.channels_last)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if lrs:
        x, y = son_pair(lr, scale, degradation)
        params = finetune(model, params, x.contiguous(memory_format=fmt), y, lrs)
    with torch.no_grad():
        return functional_call(model, params, (imresize(lr, scale=scale).contiguous(memory_format=fmt),))
