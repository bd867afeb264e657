"""What a config may hold: the dataclasses (``Config`` and its sections) with their defaults, and
``validate``, which refuses values of the right type that cannot work (a batch of 0, a scale of 1,
a floor above the learning rate). Types are checked earlier, by ``srlab.config.convert``."""
from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from srlab.degradation import expand_suites, named_degradation
from srlab.errors import ConfigError, UserError

# A string option that names a file or folder. Written in a config file, a relative one is
# relative to that file's folder (so a config works from any current directory); given with
# --opt on the command line, relative to the current directory, like every other argument.
FilePath = typing.NewType("FilePath", str)


@dataclass
class DatasetSpec:
    """A dataset by name: embedded (``skimage_train``/``skimage_test``), ``<root>/train/<name>``,
    ``<root>/benchmarks/<name>/HR``, or an explicit ``hr`` folder. ``lr``: optional folder of
    official LR images (may contain ``{scale}``). A plain string is shorthand for ``{name: ...}``."""

    name: str
    hr: FilePath | None = None
    lr: FilePath | None = None


@dataclass
class OptimizerConfig:
    type: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    momentum: float = 0.9  # SGD only


@dataclass
class SchedulerConfig:
    type: Literal["constant", "multistep", "cosine"] = "constant"
    milestones: list[int] = field(default_factory=list)  # multistep: iterations where lr *= gamma
    gamma: float = 0.5
    min_lr: float = 0.0  # cosine: final lr; multistep: the floor
    warmup_iters: int = 0  # linear warm-up from 0, any scheduler


@dataclass
class TrainConfig:
    datasets: list[DatasetSpec] = field(default_factory=lambda: [DatasetSpec("skimage_train")])
    total_iters: int = 1000
    batch_size: int = 16  # global batch; split across DDP processes
    patch_size: int = 96  # HR patch side
    scales: list[int] = field(default_factory=lambda: [2])  # several = each batch is split across them
    augment: bool = True  # random flips and 90-degree rotations
    loss: Literal["l1", "mse"] = "l1"
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    grad_clip_norm: float = 0.0  # 0 = off
    # VDSR's adjustable clipping: each gradient element is clipped to [-θ/lr, θ/lr] with the
    # current lr (so lr * gradient stays within ±θ; momentum can add to it). θ here; 0 = off.
    grad_clip_theta: float = 0.0
    ema_decay: float = 0.0  # 0 = off; e.g. 0.999. Validation and test then use the EMA weights
    amp: Literal["off", "bf16", "fp16"] = "off"  # CUDA; bf16 also on a CPU with bf16 units
    channels_last: bool = False
    compile: bool = False  # torch.compile the training model
    num_workers: int = 2  # data-loader processes cutting patches
    log_every: int = 50
    val_every: int = 500  # 0 = only at the end
    checkpoint_every: int = 500


@dataclass
class EvalConfig:
    datasets: list[DatasetSpec] = field(default_factory=lambda: [DatasetSpec("Set5")])
    scales: list[int] = field(default_factory=lambda: [2])
    degradations: list[str] = field(default_factory=lambda: ["bicubic"])
    max_images: int = 0  # 0 = all
    rgb_psnr: bool = False  # also report PSNR over RGB (labelled)
    channels_last: bool = True  # run the network channels-last (faster with oneDNN on CPU and on GPUs)
    save_images: bool = False
    visuals: int = 3  # images per dataset whose method pictures (ClassSR: class map) go to TensorBoard


@dataclass
class Config:
    method: str
    name: str = "run"
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    model: dict[str, Any] = field(default_factory=dict)  # {type: <name>, <constructor kwargs>}
    # The method's own settings (MZSR's inner loop, ZSSR's budget, ...): checked as strictly as
    # the rest, against the dataclass the method declares as ``Options`` (see srlab.method).
    options: dict[str, Any] = field(default_factory=dict)
    train: TrainConfig = field(default_factory=TrainConfig)
    val: EvalConfig = field(default_factory=lambda: EvalConfig(max_images=5))
    test: EvalConfig = field(default_factory=lambda: EvalConfig(
        datasets=[DatasetSpec("Set5"), DatasetSpec("BSD100"), DatasetSpec("Urban100")], scales=[2, 3, 4]
    ))


# --------------------------------------------------------------------------- validation
def _check(cond: bool, key: str, message: str) -> None:
    if not cond:
        raise ConfigError(f"{key}: {message}")


# A run's folder is runs/<name>: one plain folder name, so that no name can point elsewhere
# ("..", "a/../../b", "/abs", "C:\x") or make a hidden or option-like folder (".x", "-x").
_RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _check_scales(scales: list[int], key: str) -> None:
    # x1 is not super-resolution: the "LR" input would be the HR image itself, and PSNR against it
    # would measure nothing (bicubic x1 is the identity: an infinite PSNR).
    _check(bool(scales) and all(s >= 2 for s in scales), key,
           f"must list scales, integers >= 2 (x1 is not super-resolution), got {scales}; e.g. [2, 3, 4]")


# One batch of HR patches, as 8-bit RGB: batch_size x patch_size^2 x 3 bytes. The largest config
# here holds 5 MB; a typo (batch_size: 1000000000000) would ask the loader for terabytes at once.
MAX_BATCH_BYTES = 1 << 30


def _check_finite(value: Any, key: str) -> None:
    """Every number in the config, however deep (model and method options too), is finite: an
    ``.inf`` lr would only fail later, when provenance.json is written, without naming the key."""
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            _check_finite(getattr(value, f.name), f"{key}.{f.name}" if key else f.name)
    elif isinstance(value, dict):
        for name, item in value.items():
            _check_finite(item, f"{key}.{name}" if key else str(name))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_finite(item, f"{key}[{i}]")
    elif isinstance(value, float):
        _check(math.isfinite(value), key, f"must be finite, got {value}")


def validate(cfg: Config) -> None:
    """Impossible values, checked after the types are right."""
    _check_finite(cfg, "")
    _check(_RUN_NAME.fullmatch(cfg.name) is not None, "name",
           f"not a plain folder name, got {cfg.name!r}; use 1-100 letters, digits, '.', '_' or '-', "
           f"starting with a letter or digit (the run goes to runs/<name>)")
    _check(0 <= cfg.seed < 2**63, "seed", f"must be in [0, 2**63), got {cfg.seed}")
    _validate_train(cfg.train)
    for name in ("val", "test"):
        _validate_eval(getattr(cfg, name), name)
    if cfg.model:
        _check(isinstance(cfg.model.get("type"), str), "model.type", "missing: name the model, e.g. 'type: mzsr_net'")


def _validate_train(t: TrainConfig) -> None:
    _check(t.total_iters >= 1, "train.total_iters", f"must be >= 1, got {t.total_iters}")
    _check(t.batch_size >= 1, "train.batch_size", f"must be >= 1, got {t.batch_size}")
    _check(t.patch_size >= 1, "train.patch_size", f"must be >= 1, got {t.patch_size}")
    if t.batch_size * t.patch_size ** 2 * 3 > MAX_BATCH_BYTES:
        most = max(1, MAX_BATCH_BYTES // (3 * t.patch_size ** 2))
        raise ConfigError(f"train.batch_size: {t.batch_size} patches of {t.patch_size}x{t.patch_size} would take "
                          f"{t.batch_size * t.patch_size ** 2 * 3 / 2**30:.3g} GiB a batch as 8-bit RGB; at most "
                          f"{MAX_BATCH_BYTES >> 30} GiB is allowed (with train.patch_size={t.patch_size}: "
                          f"batch_size <= {most})")
    _check_scales(t.scales, "train.scales")
    for s in t.scales:
        # Whether it must also be a multiple of the scale depends on the network (see Supervised).
        # train.scales is named so that an --opt that set it is blamed too (config_errors).
        _check(t.patch_size >= 2 * s, "train.patch_size",
               f"must be at least twice every scale, got {t.patch_size} for scale {s} (train.scales)")
    _check(t.optimizer.lr > 0, "train.optimizer.lr", f"must be > 0, got {t.optimizer.lr}")
    _check(len(t.optimizer.betas) == 2 and all(0 <= b < 1 for b in t.optimizer.betas),
           "train.optimizer.betas", f"must be two numbers in [0, 1), got {t.optimizer.betas}")
    _check(t.optimizer.weight_decay >= 0, "train.optimizer.weight_decay", "must be >= 0")
    _check(t.optimizer.momentum >= 0, "train.optimizer.momentum", "must be >= 0")
    _check(t.scheduler.min_lr >= 0, "train.scheduler.min_lr", "must be >= 0")
    _check(sorted(t.scheduler.milestones) == t.scheduler.milestones, "train.scheduler.milestones",
           f"must be increasing, got {t.scheduler.milestones}")
    _check(t.scheduler.gamma > 0, "train.scheduler.gamma", "must be > 0")
    _check(t.scheduler.warmup_iters >= 0, "train.scheduler.warmup_iters", "must be >= 0")
    # The cosine schedule falls from lr to min_lr, the multistep one stops falling there: a floor
    # above the lr would make it rise (the constant schedule ignores it).
    _check(t.scheduler.min_lr <= t.optimizer.lr, "train.scheduler.min_lr",
           f"must be <= train.optimizer.lr ({t.optimizer.lr}), got {t.scheduler.min_lr}; it is the lr's final floor")
    # A warm-up longer than the run never reaches the configured lr, and no schedule follows it.
    _check(t.scheduler.warmup_iters <= t.total_iters, "train.scheduler.warmup_iters",
           f"must be <= train.total_iters ({t.total_iters}), got {t.scheduler.warmup_iters}; "
           f"the warm-up is part of the run (0 = none)")
    _check(t.grad_clip_norm >= 0, "train.grad_clip_norm", "must be >= 0 (0 = off)")
    _check(t.grad_clip_theta >= 0, "train.grad_clip_theta", "must be >= 0 (0 = off)")
    _check(0 <= t.ema_decay < 1, "train.ema_decay", f"must be in [0, 1) (0 = off), got {t.ema_decay}")
    _check(t.num_workers >= 0, "train.num_workers", "must be >= 0")
    _check(t.log_every >= 1, "train.log_every", "must be >= 1")
    _check(t.val_every >= 0, "train.val_every", "must be >= 0 (0 = only at the end)")
    _check(t.checkpoint_every >= 1, "train.checkpoint_every", "must be >= 1")
    _check(bool(t.datasets), "train.datasets", "must list at least one dataset")


def _validate_eval(e: EvalConfig, name: str) -> None:
    """The ``val`` or ``test`` section (``name``)."""
    _check_scales(e.scales, f"{name}.scales")
    _check(bool(e.datasets), f"{name}.datasets", "must list at least one dataset")
    e.degradations = expand_suites(e.degradations)  # "photo": every member, named in the results
    for deg in e.degradations:
        try:
            named_degradation(deg)  # unknown names fail now, not at the first validation
        except UserError as exc:
            raise ConfigError(f"{name}.degradations: {exc}") from None
    _check(e.max_images >= 0, f"{name}.max_images", "must be >= 0 (0 = all)")
    _check(e.visuals >= 0, f"{name}.visuals", "must be >= 0 (0 = none)")
