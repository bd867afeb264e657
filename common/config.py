"""Typed, strict configuration: YAML -> dataclasses, every mistake one line naming the key.

``load_config(path, overrides)`` reads the YAML (UTF-8, ``yaml.safe_load`` semantics: plain data
only), applies ``--opt key.sub=value`` overrides (values parsed as YAML), and converts the result
into ``Config``. Unknown keys, wrong types, missing required fields and impossible values raise
``ConfigError`` as one line, ``<key>: <what is wrong>, got <value>; <what is allowed>`` (with a
"did you mean" for typos), prefixed with where the value came from: the file, or the file and
the ``--opt`` that set it (``config_errors``). The reader also refuses what ``yaml.safe_load``
lets through silently or as a traceback: a key given twice in one mapping, text that is not
UTF-8, nesting deep enough to exhaust Python's recursion limit, aliases that expand to an
absurd size or refer to themselves.

Model sections (``model: {type: ..., **kwargs}``) are checked against the constructor's
signature by ``build``: the same strictness without a second schema to keep in sync.
"""
from __future__ import annotations

import contextlib
import dataclasses
import difflib
import inspect
import re
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import yaml

from srlab.degradation import named_degradation
from srlab.errors import ConfigError, UserError
from srlab.outputs import atomic_write

# --------------------------------------------------------------------------- schema
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


def validate(cfg: Config) -> None:
    """Impossible values, checked after the types are right."""
    t = cfg.train
    _check(_RUN_NAME.fullmatch(cfg.name) is not None, "name",
           f"not a plain folder name, got {cfg.name!r}; use 1-100 letters, digits, '.', '_' or '-', "
           f"starting with a letter or digit (the run goes to runs/<name>)")
    _check(0 <= cfg.seed < 2**63, "seed", f"must be in [0, 2**63), got {cfg.seed}")
    _check(t.total_iters >= 1, "train.total_iters", f"must be >= 1, got {t.total_iters}")
    _check(t.batch_size >= 1, "train.batch_size", f"must be >= 1, got {t.batch_size}")
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
    for name in ("val", "test"):
        e: EvalConfig = getattr(cfg, name)
        _check_scales(e.scales, f"{name}.scales")
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
    if isinstance(tp, typing.NewType):
        return _type_name(tp.__supertype__)
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
    if isinstance(tp, typing.NewType):  # FilePath: a string here; load_config resolves it
        return _convert(value, tp.__supertype__, key)
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


# --------------------------------------------------------------------------- reading YAML
_MAX_BYTES = 1 << 20  # a config is a few KB; anything this large was passed by mistake
_MAX_DEPTH = 50  # levels of mappings and lists; configs use 4. Far below Python's recursion limit
_MAX_VALUES = 100_000  # values once aliases are expanded (every later pass expands them)
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _StrictLoader(yaml.SafeLoader):
    """``yaml.safe_load`` semantics (plain data, never arbitrary objects), minus what it lets
    through silently or as a traceback: a key given twice in one mapping (the last one would
    win), nesting that exhausts Python's recursion limit (PyYAML composes recursively), and
    aliases that refer to themselves or expand to an absurd size (a "billion laughs": safe_load
    shares the objects, but ``to_dict``, comparisons and saving expand them). ``root``: the
    dotted key the document sits at ("" for a file, the key for an ``--opt`` value)."""

    def __init__(self, stream: str, root: str = "") -> None:
        super().__init__(stream)
        self._root = root
        self._depth = 0
        self._paths: dict[int, str] = {}  # id(mapping node) -> its dotted key, for the messages

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self._depth += 1
        try:
            if self._depth > _MAX_DEPTH:
                line = self.peek_event().start_mark.line + 1
                raise ConfigError(f"{_key_prefix(self._root)}nested more than {_MAX_DEPTH} levels deep at line {line}; "
                                  f"a config is a few levels of mappings and lists")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_document(self, node: yaml.Node) -> Any:
        self._index(node)
        return super().construct_document(node)

    def _index(self, root: yaml.Node) -> None:
        """Name every mapping node, and refuse alias cycles and alias bombs, in one pass over the
        node graph (iterative: its depth through aliases is not bounded by ``compose_node``).
        An aliased node is visited once; its size and depth are reused wherever it appears."""
        size: dict[int, tuple[int, int]] = {}  # id(node) -> (values, depth) once expanded
        ancestors: set[int] = set()
        stack: list[tuple[yaml.Node, str, bool]] = [(root, self._root, False)]
        while stack:
            node, path, done = stack.pop()
            children = _children(node, path)
            if done:
                ancestors.discard(id(node))
                inner = [size[id(child)] for child, _ in children]
                size[id(node)] = (1 + sum(n for n, _ in inner), 1 + max((d for _, d in inner), default=0))
                values, depth = size[id(node)]
                if values > _MAX_VALUES or depth > _MAX_DEPTH:
                    raise ConfigError(f"{_key_prefix(path)}expands through aliases to {values} values {depth} levels "
                                      f"deep at line {node.start_mark.line + 1}; allowed: {_MAX_VALUES} values, "
                                      f"{_MAX_DEPTH} levels")
                continue
            if id(node) in ancestors:
                raise ConfigError(f"{_key_prefix(path)}refers to itself through an alias at line "
                                  f"{node.start_mark.line + 1}; a config must be a tree")
            if id(node) in size:
                continue
            if isinstance(node, yaml.MappingNode):
                self._paths.setdefault(id(node), path)
            ancestors.add(id(node))
            stack.append((node, path, True))
            # Reversed, so that children are visited in document order: a node reached through
            # several aliases is named by where it first appears.
            stack.extend((child, child_path, False) for child, child_path in reversed(children))

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        # Checked before the base class flattens merge keys (<<: *base), whose keys the mapping's
        # own may override: only a key written twice in the mapping itself is refused.
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self.construct_object(key_node)
            try:
                seen = key in first_line
            except TypeError:  # an unhashable key: the base class refuses it
                continue
            if seen:
                prefix = self._paths.get(id(node), self._root)
                name = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
                raise ConfigError(f"{name}: key given twice (line {first_line[key]} and line "
                                  f"{key_node.start_mark.line + 1}); each key may appear once in a mapping")
            first_line[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _key_prefix(path: str) -> str:
    return f"{path}: " if path else ""  # the whole file: load_config prefixes its path


def _children(node: yaml.Node, path: str) -> list[tuple[yaml.Node, str]]:
    if isinstance(node, yaml.MappingNode):
        names = [str(key.value) if isinstance(key, yaml.ScalarNode) else "?" for key, _ in node.value]
        return [(child, f"{path}.{name}" if path else name)
                for name, (key, value) in zip(names, node.value) for child in (key, value)]
    if isinstance(node, yaml.SequenceNode):
        return [(child, f"{path}[{i}]") for i, child in enumerate(node.value)]
    return []


def _parse_yaml(text: str, root: str = "") -> Any:
    """``yaml.safe_load(text)`` with ``_StrictLoader``'s checks."""
    loader = _StrictLoader(text, root)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _yaml_problem(exc: yaml.YAMLError, with_line: bool = True) -> str:
    """PyYAML's message on one line: the problem and its line, without the quoted context."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        line = f" at line {exc.problem_mark.line + 1}" if exc.problem_mark and with_line else ""
        return " ".join(exc.problem.split()) + line
    return " ".join(str(exc).split())


# --------------------------------------------------------------------------- loading
def apply_override(data: dict, assignment: str) -> None:
    """Apply ``a.b.c=value`` (value parsed as YAML) to the raw config mapping."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise ConfigError(f"--opt {assignment!r}: expected key.sub=value, e.g. train.total_iters=500")
    try:
        value = _parse_yaml(raw, key) if raw != "" else ""
    except yaml.YAMLError as exc:
        # Before, such a value silently became a string ("[1," for a list): a typo would pass
        # wherever a string is allowed. A string that contains YAML syntax can be quoted.
        raise ConfigError(f"{key}: not valid YAML ({_yaml_problem(exc, with_line=False)}), got {raw!r}; "
                          f"give a YAML value, quoting a string that contains YAML syntax") from None
    node = data
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            section = ".".join(parts[: i + 1])
            raise ConfigError(f"{key}: '{section}' is not a section, got {child!r}; only a mapping has keys to set")
        node = child
    node[parts[-1]] = value


class _AttributedConfigError(ConfigError):
    """A ``ConfigError`` already prefixed with its source: ``config_errors`` leaves it as it is."""


def _override_key(assignment: str) -> str:
    return assignment.partition("=")[0]


def _related(a: str, b: str) -> bool:
    """``a`` and ``b`` are the same key, or one is a section containing the other."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def _blamed_overrides(message: str, overrides: Sequence[str]) -> list[str]:
    """The overrides that set the key a ``ConfigError`` message is about: its leading key, or
    another dotted config key it names (a check across two fields names both)."""
    keys = {message.partition(": ")[0]}
    top = "|".join(f.name for f in dataclasses.fields(Config))
    # Dotted keys only, not inside a path, a file name or a quoted value ("runs/a/model.pt").
    keys.update(re.findall(rf"(?<![\w./\\'\"-])(?:{top})(?:\.\w+)+", message))
    keys = {re.sub(r"\[\d+\]", "", k) for k in keys}  # train.datasets[0].name -> train.datasets.name
    return [a for a in overrides if any(_related(_override_key(a), k) for k in keys)]


@contextlib.contextmanager
def config_errors(path: str | Path, overrides: Sequence[str] = ()) -> Iterator[None]:
    """Prefix every ``ConfigError`` raised inside with where the bad value came from.

    The prefix is ``<path>, --opt <assignment>: `` when an override in ``overrides`` set the key
    the message starts with (``train.optimizer.lr: ...``), a section containing it or a key inside
    it, or another dotted config key the message names; ``<path>: `` otherwise. Errors raised by
    code that runs after ``load_config`` returns (e.g. building the network from ``cfg.model``)
    get the same attribution when that code is wrapped::

        cfg = load_config(path, overrides, METHODS)
        with config_errors(path, overrides):
            method = build_method(cfg)
        # ConfigError: configs/demo.yaml, --opt model.channels=0: model.channels: channels must be >= 1, got 0; ...

    An error that already carries a source (from ``load_config`` or a nested ``config_errors``)
    passes unchanged. Other exceptions pass through untouched. Also usable as a decorator.
    """
    try:
        yield
    except _AttributedConfigError:
        raise
    except ConfigError as exc:
        sources = [str(path), *(f"--opt {a}" for a in _blamed_overrides(str(exc), overrides))]
        raise _AttributedConfigError(f"{', '.join(sources)}: {exc}") from None


def _read_text(path: Path) -> str:
    """The file as text, or a one-line ``ConfigError`` saying why it cannot be a config."""
    if not path.is_file():
        raise ConfigError("config file not found")
    try:
        size = path.stat().st_size
        if size > _MAX_BYTES:
            raise ConfigError(f"too large for a config, got {size} bytes; allowed: up to {_MAX_BYTES} bytes")
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the config ({exc.strerror or exc})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
                          f"a config is YAML saved as UTF-8") from None


def _is_file_path(tp: Any) -> bool:
    """``FilePath``, ``FilePath | None`` or ``list[FilePath]``."""
    return tp is FilePath or any(_is_file_path(a) for a in typing.get_args(tp))


def file_options(option_types: type) -> set[str]:
    """The options a method's ``Options`` dataclass declares as ``FilePath`` (or lists of them)."""
    return {key for key, tp in typing.get_type_hints(option_types).items() if _is_file_path(tp)}


def _resolved(value: Any, folder: Path) -> Any:
    """``value`` (a path string, or a list of them) relative to ``folder``; absolute paths,
    ``$SR_DATA_ROOT/...`` and ``~/...`` as they are; anything else is left for the type check."""
    if isinstance(value, list):
        return [_resolved(v, folder) for v in value]
    if not isinstance(value, str) or not value or value.startswith(("$", "~")) or Path(value).is_absolute():
        return value
    return str(folder / value)


def resolve_file_paths(data: dict, folder: Path, methods: typing.Mapping[str, type] | typing.Iterable[str] | None) -> None:
    """Make the relative paths in a config file's ``data`` relative to ``folder`` (the file's),
    in place: dataset ``hr``/``lr`` folders, kernel files in ``degradations``, and the method's
    options declared as ``FilePath`` (its ``Options`` dataclass, when ``methods`` maps names to
    classes)."""
    for section in ("train", "val", "test"):
        part = data.get(section)
        if not isinstance(part, dict):
            continue
        for spec in part.get("datasets") or []:
            if isinstance(spec, dict):
                for key in ("hr", "lr"):
                    if key in spec:
                        spec[key] = _resolved(spec[key], folder)
        if isinstance(part.get("degradations"), list):
            part["degradations"] = [_resolved_kernel_file(d, folder) for d in part["degradations"]]
    method = data.get("method")
    options = data.get("options")
    if not isinstance(methods, typing.Mapping) or not isinstance(method, str) or method not in methods \
            or not isinstance(options, dict):
        return
    option_types = getattr(methods[method], "Options", None)
    if option_types is None:
        return
    for key in file_options(option_types) & options.keys():
        options[key] = _resolved(options[key], folder)


def _resolved_kernel_file(name: Any, folder: Path) -> Any:
    """A degradation that names a kernel file (``k.npy``, ``bicubic:k.mat``), relative to ``folder``."""
    if not isinstance(name, str) or not name.endswith((".npy", ".mat")):
        return name
    mode, sep, file = name.partition(":")
    if sep and mode in ("direct", "bicubic"):
        return f"{mode}:{_resolved(file, folder)}"
    return _resolved(name, folder)


def without_file_options(option_types: type, options: dict) -> dict:
    """``options`` less those declared ``FilePath``: they name files a run started from (a split,
    a stage's weights), which a checkpoint of the finished run no longer needs."""
    named_files = file_options(option_types)
    return {k: v for k, v in options.items() if k not in named_files}


def load_config(path: str | Path, overrides: Sequence[str] = (), methods: typing.Iterable[str] | None = None) -> Config:
    """The ``Config`` in the YAML file at ``path`` with ``overrides`` (``key.sub=value``) applied,
    checked by ``validate``; ``methods``: the allowed ``method`` names. Errors are one-line
    ``ConfigError``s naming the file, and the override when one set the bad value."""
    path = Path(path)
    # File-level errors (unreadable, not YAML, a duplicate key) are the file's alone: no override
    # is named even if one sets the same key, since the file is read before they apply.
    try:
        data = _parse_yaml(_read_text(path))
    except yaml.YAMLError as exc:
        raise _AttributedConfigError(f"{path}: not valid YAML: {_yaml_problem(exc)}") from None
    except ConfigError as exc:
        raise _AttributedConfigError(f"{path}: {exc}") from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise _AttributedConfigError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    with config_errors(path, overrides):
        resolve_file_paths(data, path.resolve().parent, methods)  # before the overrides: theirs stay as given
        for assignment in overrides:
            apply_override(data, assignment)
        cfg = from_dict(Config, data)
        validate(cfg)
        if methods is not None and cfg.method not in methods:
            raise ConfigError(f"method: unknown {cfg.method!r}; allowed: {', '.join(methods)}")
    return cfg


def known_fields(cls: type, data: dict) -> dict:
    """``data`` without the keys ``cls`` no longer has: a checkpoint keeps the config of the code that
    wrote it, and settings since removed (they were about training) must not stop it loading."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    kept = {}
    for key, value in data.items():
        if key not in fields:
            continue
        inner = hints[key]
        nested = dataclasses.is_dataclass(inner) and isinstance(value, dict)
        kept[key] = known_fields(inner, value) if nested else value
    return kept


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg: Config, path: str | Path) -> None:
    text = yaml.safe_dump(to_dict(cfg), sort_keys=False)
    atomic_write(path, lambda f: f.write(text.encode()))


# --------------------------------------------------------------------------- builders
# A network constructor's integer arguments are sizes and counts: channels, widths, layers,
# blocks, scale, tile sizes. Not every constructor checks them: MZSRNet(channels=0) builds and
# fails only at its first forward pass, and a negative size is a RuntimeError traceback from
# torch. So each must be >= 1, or >= 0 where zero is a real setting: when its default is 0 (an
# "off" or "none"), or for the counts named here. Tighter limits stay with the constructors.
_ZERO_ALLOWED = frozenset({
    "nb",  # residual blocks (MSRResNet, ClassSR's branches): none leaves a shallower, working network
})


def _int_hint(tp: Any) -> bool:
    """``int``, ``int | None`` or ``list[int]``: the annotations a size or count has."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return len(inner) == 1 and _int_hint(inner[0])
    if typing.get_origin(tp) is list:
        return typing.get_args(tp) == (int,)
    return tp is int


def _check_size(value: Any, param: inspect.Parameter, name: str, key: str) -> None:
    default = param.default
    minimum = 0 if (type(default) is int and default == 0) or param.name in _ZERO_ALLOWED else 1
    values = value if isinstance(value, list) else [value]
    if any(v is not None and v < minimum for v in values):
        bound = f"integers >= {minimum}" if isinstance(value, list) else f">= {minimum}"
        why = f"a count of {name!r}, 0 allowed" if minimum == 0 else f"sizes and counts of {name!r} are positive"
        raise ConfigError(f"{key}: {param.name} must be {bound}, got {value}; {why}")


def build(spec: dict[str, Any], table: dict[str, Callable], key: str) -> Any:
    """Call ``table[spec["type"]](**rest)`` after checking names and simple types against its
    signature, and that integer arguments (sizes and counts) are >= 1 (``_check_size``)."""
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
            if _int_hint(hints[arg]):
                _check_size(spec[arg], params[arg], name, f"{key}.{arg}")
    try:
        return factory(**spec)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{key}: {name!r} rejected these options ({exc})") from None
