"""Options that name files: a relative path written in a config file is relative to that file.

``resolve_file_paths`` rewrites them in a config file's raw mapping (dataset folders, kernel files,
and the method options declared ``FilePath``) before ``--opt`` overrides apply, whose paths stay
relative to the current directory. ``file_options`` and ``without_file_options`` find and drop a
method's ``FilePath`` options (checkpoints and resuming compare configs without them).
"""
from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

from srlab.config.schema import FilePath


def _is_file_path(tp: Any) -> bool:
    """``FilePath``, ``FilePath | None`` or ``list[FilePath]``."""
    return tp is FilePath or any(_is_file_path(a) for a in typing.get_args(tp))


def file_options(option_types: type) -> set[str]:
    """The options a method's ``Options`` dataclass declares as ``FilePath`` (or lists of them)."""
    return {key for key, tp in typing.get_type_hints(option_types).items() if _is_file_path(tp)}


def without_file_options(option_types: type, options: dict) -> dict:
    """``options`` less those declared ``FilePath``: they name files a run started from (a split,
    a stage's weights), which a checkpoint of the finished run no longer needs."""
    named_files = file_options(option_types)
    return {k: v for k, v in options.items() if k not in named_files}


def resolve_file_paths(data: dict, folder: Path,
                       methods: typing.Mapping[str, type] | typing.Iterable[str] | None) -> None:
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


def _resolved(value: Any, folder: Path) -> Any:
    """``value`` (a path string, or a list of them) relative to ``folder``; absolute paths,
    ``$SR_DATA_ROOT/...`` and ``~/...`` as they are; anything else is left for the type check."""
    if isinstance(value, list):
        return [_resolved(v, folder) for v in value]
    if not isinstance(value, str) or not value or value.startswith(("$", "~")) or Path(value).is_absolute():
        return value
    return str(folder / value)


def _resolved_kernel_file(name: Any, folder: Path) -> Any:
    """A degradation that names a kernel file (``k.npy``, ``bicubic:k.mat``), relative to ``folder``."""
    if not isinstance(name, str) or not name.endswith((".npy", ".mat")):
        return name
    mode, sep, file = name.partition(":")
    if sep and mode in ("direct", "bicubic"):
        return f"{mode}:{_resolved(file, folder)}"
    return _resolved(name, folder)
