"""What a method is to the runner and to the evaluator, and the two methods every family uses.

A method says how to build its network, how to turn a batch of HR patches into a loss, and how
to super-resolve one LR image. The runner owns everything else (devices, DDP, AMP, EMA,
optimisers, checkpoints), and passes the network to call explicitly: the training network may be
wrapped (DDP, ``torch.compile``) and evaluation may use the EMA copy.

* ``Bicubic``: no network; MATLAB-bicubic upscaling. The literature's baseline row.
* ``Supervised``: a network trained on (LR, HR) pairs made on the fly from HR patches with
  MATLAB bicubic downscaling, L1 or MSE loss. The network's declared ``input_convention``
  (``srlab.network``) says what it sees: the LR image bicubic-upscaled to the HR size (VDSR, MZSR
  stage 1) or the LR image itself (MSRResNet, which upsamples inside), RGB or the Y channel (VDSR:
  trained on Y; at test time its Y is combined with the bicubic Cb/Cr).

``AdaptingMethod``: a method that learns from each image before upscaling it (MZSR); it takes the
image's degradation, or estimates it. ``build_card`` writes what a checkpoint says about its
network (``srlab.card``); ``inference_model`` prepares a network for evaluation.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from srlab.card import NetworkCard
from srlab.color import rgb_to_ycbcr, ycbcr_to_rgb
from srlab.config import Config, from_dict
from srlab.degradation import Degradation
from srlab.errors import ConfigError
from srlab.imresize import imresize
from srlab.metrics import quantize


@dataclass
class Output:
    """What a method gives for one LR image: the SR image ``(1, 3, h*scale, w*scale)`` (unclamped)
    and what it reports about it (their means go to the test table: ClassSR's GFLOPs and sub-images
    per class; ``"kernel"``: an estimated blur kernel, scored against the truth on blind benchmarks)."""

    image: torch.Tensor
    extras: dict[str, float | torch.Tensor] = field(default_factory=dict)


@dataclass
class Row:
    """One row of a test table: its name and ``infer(lr, scale, degradation) -> Output``.

    ``sees_true_kernel``: on a blind benchmark the row is handed each image's true kernel (an upper
    bound, "oracle"); every other row gets the benchmark's degradation, which hides it.
    ``is_bicubic``: the row is the bicubic baseline itself, whose image the evaluation makes for
    every row anyway (it is not made twice)."""

    name: str
    infer: Callable[[torch.Tensor, int, Degradation | None], Output]
    sees_true_kernel: bool = False
    is_bicubic: bool = False


class Method:
    """The interface. Subclasses override what they need.

    ``Options``: a dataclass of the method's own settings, read strictly from the config's
    ``options:`` section into ``self.options`` (a method without one rejects that section).
    ``Recommended``: a dataclass of the test-time settings a checkpoint may recommend for its
    weights (``recommended`` / ``use_recommended``); None: the method takes none.
    """

    name = "method"
    trainable = True  # scripts/train.py can train it
    needs_model = True  # it is built with the config's ``model:`` section
    Options: type | None = None
    Recommended: type | None = None
    # The method that runs a network trained with this one, when not this one (a ClassSR branch,
    # trained on its class, runs as a plain supervised network).
    runs_as: str | None = None
    # Options that only touch validation, speed or the first initialisation: they may change when a
    # run is resumed (srlab.resume); every other option defines the run.
    resume_free_options: tuple[str, ...] = ()
    # Under torchrun, how the processes' gradients are averaged: "ddp" wraps the network in
    # DistributedDataParallel (overlaps the reduction with the backward pass); "all_reduce" averages
    # them after backward with one torch.distributed.all_reduce, for losses DDP cannot follow (MZSR's
    # meta-gradient takes inner gradients with torch.func inside the step).
    gradient_sync: str = "ddp"

    def __init__(self, cfg: Config):
        self.cfg = cfg
        if self.Options is not None:
            self.options = from_dict(self.Options, cfg.options, "options")
        elif cfg.options:
            raise ConfigError(f"options: method {cfg.method!r} has no options; remove the section")

    @classmethod
    def for_inference(cls, cfg: Config, model_factory: Callable[[], nn.Module]) -> Method:
        """The method to run a loaded network (``srlab.loading``): ``cfg`` names the network and its
        scales only; every option has its default."""
        return cls(cfg, model_factory)

    def build_model(self) -> nn.Module | None:
        return None

    @property
    def hr_patch_size(self) -> int:
        """Side of the HR patches the loader cuts for ``training_batch`` (after ``build_model``)."""
        return self.cfg.train.patch_size

    @property
    def batch_group(self) -> int:
        """Consecutive patches of a training batch that belong together and must stay in one
        process under torchrun (MZSR: the patches of one task)."""
        return 1

    def training_regions(self, files: list[Path]) -> np.ndarray | None:
        """Optional ``(file index, top, left, size)`` squares of ``files`` to cut the training
        patches from (``None``: anywhere in the images)."""
        return None

    def training_batch(self, hr: torch.Tensor, iteration: int) -> dict[str, torch.Tensor]:
        """uint8 HR patches ``(B, 3, P, P)`` already on the device, for training iteration
        ``iteration`` (0-based) -> the tensors ``loss`` needs."""
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Losses by name; ``"loss"`` is the one to minimise."""
        raise NotImplementedError

    def infer(self, model: nn.Module | None, lr: torch.Tensor, scale: int,
              degradation: Degradation | None = None) -> Output:
        """One LR image ``(1, 3, h, w)`` in [0, 1] -> its ``Output``.

        ``degradation`` is how the LR image was made (zero-shot methods need its kernel)."""
        raise NotImplementedError

    def image_infer(self, model: nn.Module | None, lr: np.ndarray,
                    scale: int) -> Callable[[torch.Tensor], torch.Tensor]:
        """What ``srlab upscale`` runs on every tile of the uint8 LR image ``lr`` (H, W, 3): ``infer``."""
        return lambda tile: self.infer(model, tile, scale).image

    def visuals(self, model: nn.Module | None, lr: torch.Tensor, scale: int) -> dict[str, torch.Tensor]:
        """Pictures of how the method treats one LR image, for TensorBoard (validation during
        training, and ``scripts/test.py``): name -> ``(3, H, W)`` in [0, 1]. ClassSR: its class map."""
        return {}

    @property
    def row_name(self) -> str:
        """What ran, as tables and ``results.json`` name it (``asym_vdsr``, not ``supervised``)."""
        return self.name

    def recommended(self) -> dict:
        """Test-time settings that suit these weights (a ``Recommended`` as plain data), stored in
        every checkpoint's card (MZSR: its adaptation learning rates and steps)."""
        return {}

    def use_recommended(self, settings) -> None:
        """Take the test-time ``settings`` (a ``Recommended``) a checkpoint's card recommends; a
        value the method cannot use is a ``ConfigError`` naming ``recommended.<field>``."""

    def other_weights(self) -> dict[str, dict[str, torch.Tensor]]:
        """More weights for the same network that a checkpoint carries beside ``model``, by name
        (MZSR: ``stage1``, the network before meta-transfer, which self-validation compares
        against). Saved as the checkpoint's ``other_weights``."""
        return {}

    def use_other_weights(self, weights: dict[str, dict[str, torch.Tensor]]) -> None:
        """Take a loaded checkpoint's ``other_weights`` (each already checked to fit the network)."""

    def report(self, records: list, out_dir: Path) -> None:
        """After ``scripts/test.py`` has written results.json: print and write what the method adds
        to the table (ClassSR: its cost over each set and the PSNR-vs-FLOPs curve). Default: nothing."""

    def test_rows(self, model: nn.Module | None) -> list[Row]:
        """What ``srlab test`` evaluates. One row by default; MZSR compares several (pretrained,
        MZSR(0), MZSR(n), ZSSR), ClassSR its routings and the whole-image network."""
        return [Row(self.row_name, lambda lr, scale, degradation: self.infer(model, lr, scale, degradation))]


class AdaptingMethod(Method):
    """A method that learns from each image before upscaling it (MZSR): it takes the image's
    degradation (``Degradation``: a kernel and a subsampling), or estimates it first."""

    def image_infer(self, model: nn.Module | None, lr: np.ndarray, scale: int,
                    degradation: Degradation | None = None) -> Callable[[torch.Tensor], torch.Tensor]:
        """Adapt to the uint8 LR image ``lr`` (H, W, 3) degraded by ``degradation``; the adapted
        network's inference, for every tile of the image."""
        raise NotImplementedError

    def estimate_kernel(self, lr: np.ndarray, scale: int, estimator: str):
        """The degradation of the uint8 LR image ``lr`` (H, W, 3) read off it by ``estimator``, as
        an estimate whose ``degradation()`` goes to ``image_infer`` (MZSR: ``KernelEstimate``)."""
        raise NotImplementedError


class Bicubic(Method):
    name = "bicubic"
    trainable = False
    needs_model = False

    @torch.no_grad()
    def infer(self, model, lr, scale, degradation=None):
        return Output(imresize(lr, scale=scale))

    def test_rows(self, model):
        return [Row(self.row_name, lambda lr, scale, degradation: self.infer(None, lr, scale), is_bicubic=True)]


class Supervised(Method):
    """Plain supervised SR on bicubic-degraded HR patches (the runner's default job)."""

    name = "supervised"

    def __init__(self, cfg: Config, model_factory: Callable[[], nn.Module]):
        super().__init__(cfg)
        self.model_factory = model_factory
        self.upsampled_input = True
        self.y_channel = False
        self.scales = cfg.train.scales
        self.loss_fn = F.l1_loss if cfg.train.loss == "l1" else F.mse_loss

    @property
    def row_name(self) -> str:
        return self.cfg.model.get("type", self.name)

    def build_model(self) -> nn.Module:
        model = self.model_factory()
        self.upsampled_input = model.input_convention.upsampled
        self.y_channel = model.input_convention.y_channel
        if not self.upsampled_input:
            check_scales(model, self.scales, "train.scales")
            if len(self.scales) > 1:
                raise ConfigError(f"train.scales: {type(model).__name__} takes the LR image itself and "
                                  f"trains at one scale, got {self.scales}")
            if self.cfg.train.patch_size % self.scales[0]:
                raise ConfigError(f"train.patch_size: {type(model).__name__} takes the LR image itself, so the "
                                  f"HR patch must be a multiple of the scale; got {self.cfg.train.patch_size} "
                                  f"for scale {self.scales[0]}")
        return model

    @property
    def hr_patch_size(self) -> int:
        # A network on the upscaled image can train on any patch size (VDSR: 41x41): the loader
        # cuts patches a little larger, each scale group is centre-cropped to the next multiple
        # of its scale, degraded, upscaled, and centre-cropped to the patch size.
        p = self.cfg.train.patch_size
        return max(_round_up(p, s) for s in self.scales) if self.upsampled_input else p

    def training_batch(self, hr, iteration=0):
        hr = hr.float() / 255
        p = self.cfg.train.patch_size
        # Several scales: the batch is cut into equal groups, one per scale (positions are
        # already random), so every batch mixes all scales.
        inputs, targets = [], []
        for scale, group in zip(self.scales, torch.tensor_split(hr, len(self.scales))):
            # For an LR-input network p is already a multiple of the scale: both crops are no-ops.
            group = _centre_crop(group, _round_up(p, scale))
            lr = quantize(imresize(group, scale=1 / scale))  # 8-bit LR, as at test time
            inputs.append(_centre_crop(imresize(lr, scale=scale), p) if self.upsampled_input else lr)
            targets.append(_centre_crop(group, p))
        x, hr = torch.cat(inputs), torch.cat(targets)
        if self.y_channel:
            x, hr = rgb_to_ycbcr(x)[:, :1], rgb_to_ycbcr(hr)[:, :1]
        return {"input": x, "hr": hr}

    def loss(self, model, batch):
        sr = model(batch["input"])
        return {"loss": self.loss_fn(sr.float(), batch["hr"])}

    @torch.no_grad()
    def infer(self, model, lr, scale, degradation=None):
        return Output(self._sr(model, lr, scale))

    def _sr(self, model: nn.Module, lr: torch.Tensor, scale: int) -> torch.Tensor:
        if not self.y_channel:
            return model(imresize(lr, scale=scale) if self.upsampled_input else lr)
        with torch.autocast(lr.device.type, enabled=False):  # colour in fp32 even under AMP
            upscaled = rgb_to_ycbcr(imresize(lr.float(), scale=scale))
            y = upscaled[:, :1] if self.upsampled_input else rgb_to_ycbcr(lr.float())[:, :1]
        y = model(y).float()
        with torch.autocast(lr.device.type, enabled=False):
            return ycbcr_to_rgb(torch.cat([y, upscaled[:, 1:]], dim=1))


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def _centre_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    return x[..., top : top + size, left : left + size]


def build_card(method: Method, model: nn.Module, provenance: dict | None = None) -> NetworkCard:
    """What a checkpoint says about its network: how to build it, how to call it, at which scales,
    how it runs and the test-time settings that suit it (``srlab.card``)."""
    arguments = dict(method.cfg.model)
    architecture = arguments.pop("type")
    return NetworkCard(architecture=architecture, arguments=arguments, input=model.input_convention,
                       scales=tuple(trained_scales(method.cfg, model)), method=method.runs_as or method.name,
                       adapts=isinstance(method, AdaptingMethod), recommended=method.recommended(),
                       provenance=dict(provenance or {}))


def trained_scales(cfg: Config, model: nn.Module | None) -> list[int]:
    """The scales a network serves: its own fixed one, else the ones it was trained at."""
    return [model.scale] if model is not None and model.scale is not None else list(cfg.train.scales)


def check_scales(model: nn.Module | None, scales: list[int], key: str) -> None:
    """A network that takes the LR image itself upscales by its own factor (``model.scale``) only;
    ask for another scale and the run stops now, not with a shape error at iteration 1."""
    if model is None or model.scale is None:
        return
    wrong = [s for s in scales if s != model.scale]
    if wrong:
        raise ConfigError(f"{key}: {type(model).__name__} upscales x{model.scale} only (model.scale), got {scales}; "
                          f"ask for x{model.scale}, or train a network for x{wrong[0]}")


def inference_model(model: nn.Module | None, device: torch.device, channels_last: bool) -> nn.Module | None:
    """A copy of ``model`` set up for evaluation: its fastest equivalent form (``for_inference``),
    on ``device``, in eval mode, channels-last if asked. The model passed in (the training model,
    during validation) is left untouched."""
    if model is None:
        return None
    fast = model.for_inference()
    if fast is model:
        fast = copy.deepcopy(model)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return fast.to(device, memory_format=memory_format).eval()
