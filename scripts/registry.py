"""Which names in a config mean which code: two plain dicts, written out by hand.

``METHODS[cfg.method](cfg, model_factory)`` gives the method; ``MODELS[cfg.model["type"]]`` the
network class, built with the rest of ``cfg.model`` as keyword arguments (checked against its
signature). To add a method or a network, import it here and add a line.
"""
from __future__ import annotations

from common.config import Config, build, config_errors, load_config
from common.errors import ConfigError
from common.method import Bicubic, Method, Supervised
from asymsr.models import VDSR, AsymVDSR
from classsr.methods import BranchOnClass, ClassSRMethod
from classsr.models import ClassSR, MSRResNet
from mzsr.methods import MetaTransfer, ZeroShot
from mzsr.model import MZSRNet

MODELS = {
    "mzsr_net": MZSRNet,
    "vdsr": VDSR,
    "asym_vdsr": AsymVDSR,
    "msrresnet": MSRResNet,
    "classsr": ClassSR,
}

METHODS = {
    "bicubic": Bicubic,
    "supervised": Supervised,
    "mzsr_meta": MetaTransfer,
    "mzsr": ZeroShot,
    "classsr_branch": BranchOnClass,
    "classsr": ClassSRMethod,
}


def build_method(cfg: Config) -> Method:
    cls = METHODS[cfg.method]
    if not cls.needs_model:
        return cls(cfg)
    if not cfg.model:
        raise ConfigError(f"model: method {cfg.method!r} needs a 'model:' section with a 'type' "
                          f"(allowed: {', '.join(MODELS)})")
    build(cfg.model, MODELS, "model")  # fail now, not after the data has loaded
    return cls(cfg, lambda: build(cfg.model, MODELS, "model"))


def load_method(path: str, overrides: list[str] = ()) -> tuple[Config, Method]:
    """The config at ``path`` with ``overrides``, and its method; an error in either names the
    file or the ``--opt`` that gave the bad value."""
    cfg = load_config(path, overrides, METHODS)
    with config_errors(path, overrides):
        return cfg, build_method(cfg)
