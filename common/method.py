"""What a method is to the runner and to the evaluator, and the two methods every family uses.

A method says how to build its network, how to turn a batch of HR patches into a loss, and how
to super-resolve one LR image. The runner owns everything else (devices, DDP, AMP, EMA,
optimisers, checkpoints), and passes the network to call explicitly: the training network may be
wrapped (DDP, ``torch.compile``) and evaluation may use the EMA copy.

* ``Bicubic``: no network; MATLAB-bicubic upscaling. The literature's baseline row.
* ``Supervised``: a network trained on (LR, HR) pairs made on the fly from HR patches with
  MATLAB bicubic downscaling, L1 or MSE loss. By default the network sees the LR image
  bicubic-upscaled to the HR size (VDSR, MZSR stage 1); a network class that sets
  ``upsampled_input = False`` sees the LR image itself and upsamples internally (MSRResNet).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from common.config import Config
from common.errors import ConfigError
from common.imresize import imresize
from common.metrics import quantize


class Method:
    """The interface. Subclasses override what they need."""

    name = "method"
    trainable = True

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def build_model(self) -> nn.Module | None:
        return None

    def training_batch(self, hr: torch.Tensor) -> dict[str, torch.Tensor]:
        """uint8 HR patches ``(B, 3, P, P)`` already on the device -> the tensors ``loss`` needs."""
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Losses by name; ``"loss"`` is the one to minimise."""
        raise NotImplementedError

    def infer(self, model: nn.Module | None, lr: torch.Tensor, scale: int) -> torch.Tensor:
        """One LR image ``(1, 3, h, w)`` in [0, 1] -> SR ``(1, 3, h*scale, w*scale)`` (unclamped)."""
        raise NotImplementedError


class Bicubic(Method):
    name = "bicubic"
    trainable = False

    @torch.no_grad()
    def infer(self, model, lr, scale):
        return imresize(lr, scale=scale)


class Supervised(Method):
    """Plain supervised SR on bicubic-degraded HR patches (the runner's default job)."""

    name = "supervised"

    def __init__(self, cfg: Config, model_factory: Callable[[], nn.Module]):
        super().__init__(cfg)
        self.model_factory = model_factory
        self.upsampled_input = True
        self.scales = cfg.train.scales
        self.loss_fn = F.l1_loss if cfg.train.loss == "l1" else F.mse_loss

    def build_model(self) -> nn.Module:
        model = self.model_factory()
        self.upsampled_input = getattr(model, "upsampled_input", True)
        if not self.upsampled_input and len(self.scales) > 1:
            raise ConfigError(f"train.scales: {type(model).__name__} takes the LR image itself and "
                              f"trains at one scale, got {self.scales}")
        return model

    def training_batch(self, hr):
        hr = hr.float() / 255
        # Several scales: the batch is cut into equal groups, one per scale (positions are
        # already random), so every batch mixes all scales.
        groups = torch.tensor_split(hr, len(self.scales))
        inputs = []
        for scale, group in zip(self.scales, groups):
            lr = quantize(imresize(group, scale=1 / scale))  # 8-bit LR, as at test time
            inputs.append(imresize(lr, scale=scale) if self.upsampled_input else lr)
        return {"input": torch.cat(inputs), "hr": hr}

    def loss(self, model, batch):
        sr = model(batch["input"])
        return {"loss": self.loss_fn(sr.float(), batch["hr"])}

    @torch.no_grad()
    def infer(self, model, lr, scale):
        x = imresize(lr, scale=scale) if self.upsampled_input else lr
        return model(x)
