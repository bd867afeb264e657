"""``--opt key.sub=value`` overrides, and naming where a bad value came from.

``apply_override`` sets one dotted key in the raw config mapping (the value parsed as YAML).
``config_errors`` prefixes a ``ConfigError`` with its source: the config file, and the ``--opt``
that set the key the message is about, when one did.
"""
from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import yaml

from srlab.config.schema import Config
from srlab.config.yaml_io import _parse_yaml, _yaml_problem
from srlab.errors import ConfigError


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
