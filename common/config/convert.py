"""Plain data (parsed YAML) to the typed dataclasses of ``srlab.config.schema`` and back.

``from_dict`` builds a dataclass from a mapping, refusing unknown keys (with a "did you mean" for
typos), missing required fields and values of the wrong type, each as one ``ConfigError`` line
naming the dotted key. ``known_fields`` drops keys the schema no longer has (old checkpoints);
``to_dict`` is the inverse of ``from_dict``.
"""
from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any, Literal

from srlab.config.schema import Config, DatasetSpec
from srlab.errors import ConfigError


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
