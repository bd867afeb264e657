"""``load_config``: a config file to a checked ``Config``, each job done by its own module.

Read the file (``yaml_io``), make its relative paths relative to it (``paths``), apply the
``--opt`` overrides (``overrides``), convert to the dataclasses (``convert``) and refuse
impossible values (``schema.validate``); any error names the file, and the override that set
the bad value when one did (``overrides.config_errors``).
"""
from __future__ import annotations

import typing
from collections.abc import Sequence
from pathlib import Path

import yaml

from srlab.config.convert import from_dict
from srlab.config.overrides import _AttributedConfigError, apply_override, config_errors
from srlab.config.paths import resolve_file_paths
from srlab.config.schema import Config, validate
from srlab.config.yaml_io import _parse_yaml, _read_text, _yaml_problem
from srlab.errors import ConfigError


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
