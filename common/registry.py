"""Which names in a config mean which code: two tables, written out by hand.

``METHODS[cfg.method](cfg, model_factory)`` gives the method; ``MODELS[cfg.model["type"]]`` the
network class, built with the rest of ``cfg.model`` as keyword arguments (checked against its
signature). To add a method or a network, add a line here.

The tables hold import strings (``"module:Class"``) that are imported when a name is looked up:
``common`` never imports a method family when it is itself imported, and a config that names
VDSR does not pay for importing ClassSR.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from pathlib import Path

from srlab.config import Config, build, config_errors, load_config
from srlab.errors import ConfigError
from srlab.method import Method


class ImportTable(Mapping):
    """A read-only ``name -> class`` mapping whose classes are imported on first use."""

    def __init__(self, targets: dict[str, str]):
        self.targets = targets

    def __getitem__(self, name: str) -> type:
        module, _, attr = self.targets[name].partition(":")
        return getattr(importlib.import_module(module), attr)

    def __contains__(self, name: object) -> bool:  # without importing anything
        return name in self.targets

    def __iter__(self) -> Iterator[str]:
        return iter(self.targets)

    def __len__(self) -> int:
        return len(self.targets)


MODELS = ImportTable({
    "mzsr_net": "srlab.mzsr.model:MZSRNet",
    "kernel_net": "srlab.mzsr.kernel_net:KernelNet",
    "vdsr": "srlab.asymsr.models:VDSR",
    "asym_vdsr": "srlab.asymsr.models:AsymVDSR",
    "msrresnet": "srlab.classsr.models:MSRResNet",
    "fsrcnn": "srlab.classsr.backbones:FSRCNN",
    "carn": "srlab.classsr.backbones:CARN",
    "rcan": "srlab.classsr.backbones:RCAN",
    "classsr": "srlab.classsr.models:ClassSR",
})

METHODS = ImportTable({
    "bicubic": "srlab.method:Bicubic",
    "supervised": "srlab.method:Supervised",
    "mzsr_meta": "srlab.mzsr.methods:MetaTransfer",
    "mzsr": "srlab.mzsr.methods:ZeroShot",
    "kernel_net": "srlab.mzsr.kernel_net:KernelPrediction",
    "classsr_branch": "srlab.classsr.methods:BranchOnClass",
    "classsr": "srlab.classsr.methods:ClassSRMethod",
})


def build_model(spec: dict, key: str = "model"):
    """The network a ``model:`` section describes (``{type: ..., **kwargs}``)."""
    return build(spec, MODELS, key)


def build_method(cfg: Config) -> Method:
    cls = METHODS[cfg.method]
    if not cls.needs_model:
        return cls(cfg)
    if not cfg.model:
        raise ConfigError(f"model: method {cfg.method!r} needs a 'model:' section with a 'type' "
                          f"(allowed: {', '.join(MODELS)})")
    build_model(cfg.model)  # fail now, not after the data has loaded
    return cls(cfg, lambda: build_model(cfg.model))


def load_method(path: str | Path, overrides: list[str] = ()) -> tuple[Config, Method]:
    """The config at ``path`` with ``overrides``, and its method; an error in either names the
    file or the ``--opt`` that gave the bad value."""
    cfg = load_config(path, overrides, METHODS)
    with config_errors(path, overrides):
        return cfg, build_method(cfg)
