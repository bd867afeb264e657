"""Building an object from a config section ``{type: <name>, **kwargs}`` (``model:``).

``build`` checks the section against the constructor's own signature: option names, types from
its annotations, and that sizes and counts make sense. The same strictness as the rest of the
config, without a second schema to keep in sync with the code.

A network constructor's integer arguments are sizes and counts: channels, widths, layers,
blocks, scale, tile sizes. Not every constructor checks them: MZSRNet(channels=0) builds and
fails only at its first forward pass, and a negative size is a RuntimeError traceback from
torch. So each must be >= 1, or >= 0 where zero is a real setting: when its default is 0 (an
"off" or "none"), or when the constructor declares the argument a ``Count``. Tighter limits stay
with the constructors.
"""
from __future__ import annotations

import inspect
import types
import typing
from typing import Annotated, Any, Callable

from srlab.config.convert import _convert
from srlab.errors import ConfigError


class _ZeroAllowed:
    """The mark ``Count`` carries in its annotation; ``build`` looks for it."""

    def __repr__(self) -> str:
        return "zero allowed"


# An integer constructor argument counting something a network may have none of, e.g. residual
# blocks (MSRResNet's ``nb: Count = 16``; ClassSR's ``nb: Count | None = None``): none leaves a
# shallower, working network. To Python it is an ``int``; to ``build`` one that may be 0.
Count = Annotated[int, _ZeroAllowed()]


def _is_count(tp: Any) -> bool:
    """``tp`` (an annotation with its ``Annotated`` extras) is ``Count`` or holds it (``Count | None``)."""
    return isinstance(tp, _ZeroAllowed) or any(_is_count(a) for a in typing.get_args(tp))


def _int_hint(tp: Any) -> bool:
    """``int``, ``int | None`` or ``list[int]``: the annotations a size or count has."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        return len(inner) == 1 and _int_hint(inner[0])
    if typing.get_origin(tp) is list:
        return typing.get_args(tp) == (int,)
    return tp is int


def _check_size(value: Any, param: inspect.Parameter, count: bool, name: str, key: str) -> None:
    """``value`` of the integer argument ``param`` of ``name`` is >= 1, or >= 0 when ``count``
    (declared a ``Count``) or when its default is 0."""
    default = param.default
    minimum = 0 if (type(default) is int and default == 0) or count else 1
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
    target = factory.__init__ if inspect.isclass(factory) else factory
    hints = typing.get_type_hints(target)
    declared = typing.get_type_hints(target, include_extras=True)  # the same, keeping the Count marks
    for arg, value in spec.items():
        if arg not in params or arg == "self":
            allowed = [p for p in params if p != "self"]
            raise ConfigError(f"{key}.{arg}: unknown option for {name!r} (allowed: {', '.join(allowed) or 'none'})")
        if arg in hints:
            spec[arg] = _convert(value, hints[arg], f"{key}.{arg}")
            if _int_hint(hints[arg]):
                _check_size(spec[arg], params[arg], _is_count(declared[arg]), name, f"{key}.{arg}")
    try:
        return factory(**spec)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{key}: {name!r} rejected these options ({exc})") from None
