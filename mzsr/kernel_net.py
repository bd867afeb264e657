"""KernelNet: a small CNN that reads the blur kernel off an LR image, for blind MZSR.

MZSR adapts to an image in a few steps *given its kernel*; a real photograph comes without one.
MZSR's meta-training already samples kernels from a stated distribution (``random_kernels``) and
degrades HR patches with them on the fly: the same pipeline, with the kernel as the target
instead of the HR patch, trains a regressor from the LR image to its kernel: the ``net``
estimator of ``srlab.mzsr.estimate`` (one forward pass over the image). Measured, it is weaker than the
``edges`` estimator (README, blind MZSR), so no weights are shipped.

The network (``KernelNet``: the local contrast of the grey image, 5 convolutions, two of them
strided, and a 1x1 head; 37,444 parameters at the config's 32 channels) predicts at every location of the LR image the Cholesky factor of the kernel's covariance and a
weight; the image's estimate is the weighted mean (softmax over locations), so flat regions, which
say nothing about blur, can be ignored. The kernel is the centred Gaussian of that covariance:
the family MZSR trains on. Trained per scale with ``method: kernel_net``
(configs/mzsr/kernel_net_x2_cpu.yaml): the loss is the L1 distance between the predicted and the
true kernel's covariance (second moments of the taps).

As a test row, ``kernel_net`` returns the bicubic image (it does not super-resolve) and its kernel
estimate, which the evaluator scores against the truth on blind benchmarks (``kernel_l2``,
``kernel_psnr``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from srlab.config import Config
from srlab.degradation import degrade, gaussian_from_precision, random_kernels
from srlab.errors import ConfigError
from srlab.imresize import imresize
from srlab.method import Method, Output, check_scales
from srlab.metrics import quantize
from srlab.mzsr.kernels import kernel_covariance
from srlab.network import InputConvention, Network


class KernelNet(Network):
    """Reads the RGB LR image itself, at one scale (``scale``), and predicts its blur kernel."""

    def __init__(self, channels: int = 64, scale: int = 2, kernel_size: int = 15):
        super().__init__()
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and >= 3, got {kernel_size}")
        self.scale = scale
        self.input_convention = InputConvention.RGB_LR
        self.kernel_size = kernel_size
        c = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, stride=2, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c, c, 3, stride=2, padding=1), nn.ReLU(inplace=True),
        )
        self.head = nn.Conv2d(c, 4, 1)  # 3 Cholesky parameters + 1 pooling logit per location
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """LR images ``(B, 3, h, w)`` in [0, 1] -> ``(B, 4, h/4, w/4)``: at each location, three
        Cholesky parameters (``cholesky_kernels``) and a pooling logit."""
        return self.head(self.features(local_contrast(lr)))

    @torch.no_grad()
    def estimate(self, lr: torch.Tensor) -> torch.Tensor:
        """The ``(k, k)`` kernel of one LR image ``(1, 3, h, w)``."""
        return cholesky_kernels(pooled(self(lr)), self.kernel_size)[0]


def local_contrast(lr: torch.Tensor, size: int = 7, eps: float = 0.01) -> torch.Tensor:
    """The grey level minus its local mean, over its local standard deviation (``size`` box): blur
    shows as the shape of edges, whatever their contrast or colour (measured: the network learns
    faster from this than from RGB)."""
    grey = lr.mean(dim=1, keepdim=True)
    mean = F.avg_pool2d(grey, size, 1, size // 2, count_include_pad=False)
    var = F.avg_pool2d(grey * grey, size, 1, size // 2, count_include_pad=False) - mean**2
    return (grey - mean) / (var.clamp(min=0).sqrt() + eps)


def pooled(out: torch.Tensor, group: int = 1) -> torch.Tensor:
    """``(B, 4, h, w)`` network outputs -> ``(B / group, 3)`` parameters: each run of ``group``
    images (one kernel) pooled over all their locations, weighted by the softmax of the logits."""
    out = out.reshape(out.shape[0] // group, group, 4, -1).transpose(1, 2).flatten(2)  # (B/g, 4, g*h*w)
    return (out[:, :3] * torch.softmax(out[:, 3], dim=-1)[:, None]).sum(-1)


def cholesky_kernels(params: torch.Tensor, size: int) -> torch.Tensor:
    """``(B, 3)`` parameters -> ``(B, size, size)`` kernels. Covariance = L L^T with
    L = [[exp(a), 0], [b, exp(c)]] (x, y order): positive definite for any parameters."""
    a, b, c = params.double().unbind(-1)
    l11, l22 = torch.exp(a), torch.exp(c)
    det = (l11 * l22) ** 2
    sxx, sxy, syy = l11**2, l11 * b, b**2 + l22**2
    precision = torch.stack([torch.stack([syy, -sxy], -1), torch.stack([-sxy, sxx], -1)], -2) / det[:, None, None]
    return gaussian_from_precision(size, precision).to(params.dtype)


@dataclass
class KernelNetOptions:
    # Patches that share one kernel and are pooled into one estimate, as a test image's locations
    # are: one patch alone often cannot tell a blurred sharp scene from a sharp blurry one.
    patches_per_kernel: int = 8


class KernelPrediction(Method):
    """Train ``KernelNet`` on HR patches degraded with kernels of MZSR's training distribution."""

    name = "kernel_net"
    Options = KernelNetOptions

    def __init__(self, cfg: Config, model_factory: Callable[[], nn.Module]):
        super().__init__(cfg)
        self.model_factory = model_factory
        if len(cfg.train.scales) != 1:
            raise ConfigError(f"train.scales: a kernel_net learns one scale's kernels, got {cfg.train.scales}")
        self.scale = cfg.train.scales[0]
        self.group = self.options.patches_per_kernel
        if self.group < 1 or cfg.train.batch_size % self.group:
            raise ConfigError(f"options.patches_per_kernel: must be >= 1 and divide train.batch_size "
                              f"({cfg.train.batch_size}), got {self.group}")
        if cfg.train.patch_size % self.scale:
            raise ConfigError(f"train.patch_size: must be a multiple of the scale {self.scale}, "
                              f"got {cfg.train.patch_size}")

    def build_model(self) -> nn.Module:
        model = self.model_factory()
        if not isinstance(model, KernelNet):
            raise ConfigError(f"model.type: method kernel_net trains a kernel_net, got {type(model).__name__}")
        check_scales(model, self.cfg.train.scales, "train.scales")
        self.kernel_size = model.kernel_size
        return model

    @property
    def batch_group(self) -> int:
        return self.group  # the patches of one kernel stay in one process under torchrun

    def training_batch(self, hr, iteration):
        hr = hr.float() / 255
        # One kernel per group of patches from the global RNG (seeded and checkpointed by the
        # runner), then MZSR's direct subsampling and the 8-bit rounding every test LR image has.
        kernels = random_kernels(hr.shape[0] // self.group, self.scale, self.kernel_size).to(hr.device)
        lr = quantize(degrade(hr, kernels.repeat_interleave(self.group, dim=0), self.scale, "direct").clamp(0, 1))
        return {"lr": lr, "kernels": kernels}

    def loss(self, model, batch):
        # model may be wrapped (DDP, torch.compile): call it, and make the kernels outside it.
        predicted = cholesky_kernels(pooled(model(batch["lr"]).float(), self.group), self.kernel_size)
        # The kernels' covariances (in pixels^2, entries of order 1) give a far better-conditioned
        # signal than the taps themselves (of order 0.01): measured, the squared tap error alone
        # did not get below the error of always answering the mean kernel in 1,000 iterations.
        cov_error = (kernel_covariance(predicted) - kernel_covariance(batch["kernels"])).abs().mean()
        return {"loss": cov_error, "kernel_l2": (predicted - batch["kernels"]).detach().flatten(1).norm(dim=1).mean()}

    @torch.no_grad()
    def infer(self, model, lr, scale, degradation=None):
        """The bicubic image (a kernel_net does not super-resolve) and the kernel estimate."""
        kernel = cholesky_kernels(pooled(model(lr).float()), self.kernel_size)[0]
        return Output(imresize(lr, scale=scale), {"kernel": kernel})
