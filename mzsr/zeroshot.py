"""Stage 3 of MZSR: adapt the meta-learned network to one test image, then super-resolve it.

The image's own degradation gives a training pair without any HR: the "son" is the LR image
degraded once more with the known kernel, and the network learns son -> LR for a few plain SGD
steps (MZSR(n) takes n steps, MZSR(0) none). Then SR = network(imresize(LR, scale)).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from srlab.degradation import Degradation
from srlab.errors import ConfigError, DataError
from srlab.imresize import imresize
from srlab.mzsr.meta import finetune, memory_format_of
from srlab.network import InputConvention

# The test-time learning rates of MZSR's code for its direct-subsampling x2 model: 2e-2 for step
# 0, 1e-2 for steps 1-3, then 5e-3. (Its code uses 1e-2 x3 then 1e-3 for the bicubic-subsampling
# model, and 1e-2, 5e-3 x4, then 1e-3 at x4.) Step i uses entry min(i, len - 1).
PAPER_ADAPT_LRS = (2e-2, 1e-2, 1e-2, 1e-2, 5e-3)


# A progress bar for adaptation appears only once it has run this long: quick runs and early
# errors print nothing but their result or their one line.
PROGRESS_AFTER_S = 1.0


def progress_bar(steps: int):
    """A tqdm bar over ``steps`` adaptation steps (``bar.update(1)`` after each)."""
    from tqdm import tqdm

    return tqdm(total=steps, desc="adapting", unit="step", disable=steps == 0, leave=False, delay=PROGRESS_AFTER_S)


def check_network(model: nn.Module, where: str) -> nn.Module:
    """MZSR adapts networks that take the bicubic-upscaled RGB image (like ``mzsr_net``)."""
    if model.input_convention is not InputConvention.RGB_BICUBIC_UPSCALE:
        raise ConfigError(f"{where}: {type(model).__name__} does not take the bicubic-upscaled RGB image; "
                          "MZSR needs such a network (model.type: mzsr_net)")
    return model


def step_lrs(steps: int, schedule: list[float] | tuple[float, ...]) -> list[float]:
    """The learning rate of each of ``steps`` steps: ``schedule[i]``, its last entry repeated."""
    return [schedule[min(i, len(schedule) - 1)] for i in range(steps)]


def son_pair(lr: torch.Tensor, scale: int, degradation: Degradation) -> tuple[torch.Tensor, torch.Tensor]:
    """(network input, target) for test-time training: the LR image's own degradation.

    The LR image is cropped to a multiple of ``scale`` (top-left), degraded with the same kernel
    and subsampling to the son, and the son is bicubic-upscaled back to the cropped LR's size.
    """
    h, w = lr.shape[-2:]
    if min(h, w) < 2 * scale:
        raise DataError(f"the LR image ({w}x{h}) is too small to degrade once more at scale {scale}")
    target = lr[..., : h - h % scale, : w - w % scale]
    with torch.no_grad():
        son = degradation.apply(target, scale).clamp(0, 1)  # bicubic subsampling can overshoot
        return imresize(son, size=tuple(target.shape[-2:])), target


@dataclass
class Adaptation:
    """Weights adapted to one image, and their L1 on its son pair before and after (None: no steps)."""

    params: dict[str, torch.Tensor]
    son_l1_before: float | None = None
    son_l1_after: float | None = None

    @property
    def diverged(self) -> bool:
        """The network got an order of magnitude worse on the only pair it learned from: the learning
        rates are far too large for these weights, and a black or white image follows (not a NaN, so
        a check for NaN alone would not see it). Not 1x: a first step of the paper's schedule can
        overshoot 3x on the shipped CPU weights (Set5 butterfly) and the next steps recover."""
        if self.son_l1_before is None:
            return False
        return not self.son_l1_after <= 10 * self.son_l1_before  # written so that NaN counts too

    def divergence(self) -> str:
        return (f"the adaptation diverged (L1 on the image's own son pair went from {self.son_l1_before:.4g} "
                f"to {self.son_l1_after:.4g})")


def adapt_to_image(model: nn.Module, lr: torch.Tensor, scale: int, degradation: Degradation,
                   lrs: list[float], on_step: Callable[[], None] | None = None,
                   params: dict[str, torch.Tensor] | None = None, backtrack: bool = False) -> Adaptation:
    """Fine-tune a copy of ``model``'s weights (or of ``params``, other weights for the same
    network) on ``lr``'s son pair, one step per entry of ``lrs`` (``backtrack``: a step that
    raises the son's loss is undone, ``srlab.mzsr.meta.finetune``). ``on_step`` is called after
    each step (a progress bar)."""
    params = {name: p.detach() for name, p in (params or dict(model.named_parameters())).items()}
    if not lrs:
        return Adaptation(params)
    fmt = memory_format_of(params)
    x, y = son_pair(lr, scale, degradation)
    x = x.contiguous(memory_format=fmt)

    def son_l1(weights) -> float:
        with torch.no_grad():
            return F.l1_loss(functional_call(model, weights, (x,)), y).item()

    before = son_l1(params)
    params = finetune(model, params, x, y, lrs, on_step, backtrack)
    return Adaptation(params, before, son_l1(params))


def upscale(model: nn.Module, params: dict[str, torch.Tensor], lr: torch.Tensor, scale: int) -> torch.Tensor:
    """SR of ``lr`` by ``model`` with ``params``: the network on the bicubic-upscaled image."""
    fmt = memory_format_of(params)
    with torch.no_grad():
        return functional_call(model, params, (imresize(lr, scale=scale).contiguous(memory_format=fmt),))


def adapt_and_upscale(model: nn.Module, lr: torch.Tensor, scale: int, degradation: Degradation,
                      lrs: list[float], on_step: Callable[[], None] | None = None,
                      backtrack: bool = False) -> torch.Tensor:
    """MZSR(len(lrs)): fine-tune a copy of ``model``'s weights on the son pair, then SR of ``lr``."""
    adapted = adapt_to_image(model, lr, scale, degradation, lrs, on_step, backtrack=backtrack)
    return upscale(model, adapted.params, lr, scale)
