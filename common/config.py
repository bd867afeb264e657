"""Typed, strict configuration: YAML -> dataclasses, every mistake one line naming the key.

``load_config(path, overrides)`` reads the YAML with ``yaml.safe_load``, applies ``--opt
key.sub=value`` overrides (values parsed as YAML), and converts the result into ``Config``.
Unknown keys, wrong types, missing required fields and impossible values raise ``ConfigError``
with the dotted key, what was given and what is allowed (with a "did you mean" for typos).

Model sections (``model: {type: ..., **kwargs}``) are checked against the constructor's
signature by ``build``: the same strictness without a second schema to keep in sync.
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import yaml

from common.degradation import named_degradation
from common.errors import ConfigError, UserError


# --------------------------------------------------------------------------- schema
@dataclass
class DatasetSpec:
    """A dataset by name: embedded (``skimage_train``/``skimage_test``), ``<root>/train/<name>``,
    ``<root>/benchmarks/<name>/HR``, or an explicit ``hr`` folder. ``lr``: optional folder of
    official LR images (may contain ``{scale}``). A plain string is shorthand for ``{name: ...}``."""

    name: str
    hr: str | None = None
    lr: str | None = None


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
    min_lr: float = 0.0  # cosine: final lr
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
    amp: Literal["off", "bf16", "fp16"] = "off"  # CUDA only
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
    # the rest, against the dataclass the method declares as ``Options`` (see common.method).
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


def validate(cfg: Config) -> None:
    """Impossible values, checked after the types are right."""
    t = cfg.train
    _check(0 <= cfg.seed < 2**63, "seed", f"must be in [0, 2**63), got {cfg.seed}")
    _check(t.total_iters >= 1, "train.total_iters", f"must be >= 1, got {t.total_iters}")
    _check(t.batch_size >= 1, "train.batch_size", f"must be >= 1, got {t.batch_size}")
    _check(len(t.scales) >= 1, "train.scales", "must list at least one scale")
    for s in t.scales:
        _check(s >= 1, "train.scales", f"scales must be integers >= 1, got {s}")
        # Whether it must also be a multiple of the scale depends on the network (see Supervised).
        _check(t.patch_size >= 2 * s, "train.patch_size",
               f"must be at least twice every scale, got {t.patch_size} for scale {s}")
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
    _check(t.grad_clip_norm >= 0, "train.grad_clip_norm", "must be >= 0 (0 = off)")
    _check(t.grad_clip_theta >= 0, "train.grad_clip_theta", "must be >= 0 (0 = off)")
    _check(0 <= t.ema_decay < 1, "train.ema_decay", f"must be in [0, 1) (0 = off), got {t.ema_decay}")
    _check(t.num_workers >= 0, "train.num_workers", "must be >= 0")
    _check(t.log_every >= 1, "train.log_every", "must be >= 1")
    _check(t.val_every >= 0, "train.val_every", "must be >= 0 (0 = only at the end)")
    _check(t.checkpoint_every >= 1, "train.checkpoint_every", "must be >= 1")
    _check(bool(t.datasets), "train.datasets", "must list at least one dataset")
    for name in ("val", "test"):
        e: EvalConfig = getattr(cfg, name)
        _check(bool(e.scales) and all(s >= 1 for s in e.scales), f"{name}.scales",
               f"must list scales, integers >= 1, got {e.scales}")
        _check(bool(e.datasets), f"{name}.datasets", "must list at least one dataset")
        for deg in e.degradations:
            try:
                named_degradation(deg)  # unknown names fail now, not at the first validation
            except UserError as exc:
                raise ConfigError(f"{name}.degradations: {exc}") from None
        _check(e.max_images >= 0, f"{name}.max_images", "must be >= 0 (0 = all)")
        _check(e.visuals >= 0, f"{name}.visuals", "must be >= 0 (0 = none)")
    if cfg.model:
        _check(isinstance(cfg.model.get("type"), str), "model.type", "missing: name the model, e.g. 'type: mzsr_net'")


# --------------------------------------------------------------------------- conversion
def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is bool:
        return "true or false"
    if tp is str:
        return "a string"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0]).removeprefix('an ').removeprefix('a ')}s"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return str(tp)


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], key)
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)  # YAML reads 1e5 as a float
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
    elif tp is str:
        if isinstance(value, str):
            return value
    elif origin is Literal:
        if value is False and "off" in args:  # YAML 1.1 reads a bare `off` as false
            return "off"
        if value in args:
            return value
        raise ConfigError(f"{key}: {value!r} is not allowed; allowed: {', '.join(repr(a) for a in args)}")
    elif origin is list:
        if isinstance(value, (list, tuple)):
            return [_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, dict):  # a single value where a list is expected: accept it
            return [_convert(value, args[0], f"{key}[0]")]
    elif origin is dict:
        if isinstance(value, dict):
            return dict(value)
    elif dataclasses.is_dataclass(tp):
        if tp is DatasetSpec and isinstance(value, str):
            return DatasetSpec(name=value)
        if isinstance(value, dict):
            return from_dict(tp, value, key)
    else:  # pragma: no cover - a schema type this converter does not know
        raise TypeError(f"unsupported config type {tp} at {key}")
    raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")


def from_dict(cls: type, data: dict, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from ``data``, rejecting unknown keys and bad types."""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"{full}: unknown key{hint} (allowed: {', '.join(fields)})")
        kwargs[key] = _convert(value, hints[key], full)
    for name, f in fields.items():
        if name not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{prefix + '.' if prefix else ''}{name}: missing required field")
    return cls(**kwargs)


def apply_override(data: dict, assignment: str) -> None:
    """Apply ``a.b.c=value`` (value parsed as YAML) to the raw config mapping."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise ConfigError(f"--opt {assignment!r}: expected key.sub=value")
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    node = data
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--opt {key}: '{'.'.join(parts[: i + 1])}' is not a section")
        node = child
    node[parts[-1]] = value


def load_config(path: str | Path, overrides: list[str] = (), methods: typing.Iterable[str] | None = None) -> Config:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    for assignment in overrides:
        apply_override(data, assignment)
    try:
        cfg = from_dict(Config, data)
        validate(cfg)
        if methods is not None and cfg.method not in methods:
            raise ConfigError(f"method: unknown {cfg.method!r}; allowed: {', '.join(methods)}")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return cfg


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


# --------------------------------------------------------------------------- builders
def build(spec: dict[str, Any], table: dict[str, Callable], key: str) -> Any:
    """Call ``table[spec["type"]](**rest)`` after checking names and simple types against its signature."""
    spec = dict(spec)
    name = spec.pop("type", None)
    if name not in table:
        raise ConfigError(f"{key}.type: unknown {name!r}; allowed: {', '.join(table)}")
    factory = table[name]
    params = inspect.signature(factory).parameters
    hints = typing.get_type_hints(factory.__init__ if inspect.isclass(factory) else factory)
    for arg, value in spec.items():
        if arg not in params or arg == "self":
            allowed = [p for p in params if p != "self"]
            raise ConfigError(f"{key}.{arg}: unknown option for {name!r} (allowed: {', '.join(allowed) or 'none'})")
        if arg in hints:
            spec[arg] = _convert(value, hints[arg], f"{key}.{arg}")
    try:
        return factory(**spec)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{key}: {name!r} rejected these options ({exc})") from None
