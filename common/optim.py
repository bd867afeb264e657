"""The optimiser, its learning-rate schedule, gradient clipping and the EMA of the weights.

The schedule is a function of the iteration and the config (``lr_factor``), never state of its own:
a resumed run rebuilds it at the resumed iteration (``make_scheduler(..., start)``) and takes the
optimiser's hyperparameters from the config (``apply_optimizer_config``), so a changed lr or
schedule applies consistently (see ``srlab.resume``).
"""
from __future__ import annotations

import bisect
import copy
import math

import torch
from torch import nn

from srlab.config import Config, SchedulerConfig


def make_optimizer(params, cfg: Config) -> torch.optim.Optimizer:
    o = cfg.train.optimizer
    if o.type == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    cls = torch.optim.AdamW if o.type == "adamw" else torch.optim.Adam
    return cls(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)


def lr_factor(step: int, s: SchedulerConfig, total_iters: int, base_lr: float) -> float:
    """Multiplier of the base lr for the step after ``step`` completed iterations."""
    if step < s.warmup_iters:
        return (step + 1) / s.warmup_iters
    if s.type == "multistep":  # min_lr: a floor (MZSR's stage 1 halves its lr down to 1e-4)
        return max(s.gamma ** bisect.bisect_right(s.milestones, step), s.min_lr / base_lr)
    if s.type == "cosine":
        progress = (step - s.warmup_iters) / max(1, total_iters - s.warmup_iters)
        floor = s.min_lr / base_lr
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return 1.0


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: Config, start: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    """The lr schedule of ``cfg`` positioned after ``start`` completed iterations.

    The schedule is a function of the iteration and the config, so a resumed run rebuilds it
    rather than loading it: a changed lr or schedule applies consistently (see srlab.resume).
    """
    s, total, base = cfg.train.scheduler, cfg.train.total_iters, cfg.train.optimizer.lr
    for group in optimizer.param_groups:
        group["initial_lr"] = base
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, s, total, base),
                                             last_epoch=start - 1)


def apply_optimizer_config(optimizer: torch.optim.Optimizer, cfg: Config) -> None:
    """After loading a checkpoint's optimizer state: the hyperparameters are the config's."""
    o = cfg.train.optimizer
    for group in optimizer.param_groups:
        group["weight_decay"] = o.weight_decay
        if "betas" in group:
            group["betas"] = tuple(o.betas)
        if "momentum" in group:
            group["momentum"] = o.momentum


def clip_adjustable_(params, theta: float, lr: float) -> None:
    """VDSR's adjustable gradient clipping (Kim et al. 2016): each element to [-θ/lr, θ/lr]."""
    nn.utils.clip_grad_value_(params, theta / lr)


def clip_gradients_(model: nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                    max_norm: float, theta: float) -> None:
    """``train.grad_clip_norm`` (the gradients' global norm) and ``train.grad_clip_theta`` (VDSR's
    adjustable clipping at the current lr), each when above 0; on the gradients without AMP's scale."""
    if max_norm <= 0 and theta <= 0:
        return
    scaler.unscale_(optimizer)
    if max_norm > 0:
        nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    if theta > 0:
        clip_adjustable_(model.parameters(), theta, optimizer.param_groups[0]["lr"])


class EMA:
    """Exponential moving average of the weights (buffers are copied)."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        ema_params = list(self.model.parameters())
        params = [p.detach() for p in model.parameters()]
        torch._foreach_lerp_(ema_params, params, 1 - self.decay)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)


def weights_nonfinite(model: nn.Module) -> torch.Tensor:
    """True if any weight is NaN/inf (a finite loss can still come with non-finite gradients)."""
    flags = [~torch.isfinite(p.detach()).all() for p in model.parameters()]
    return torch.stack(flags).any() if flags else torch.zeros((), dtype=torch.bool)
