"""The network card: what a checkpoint says about the network it holds, typed and checked.

Every checkpoint ``srlab train`` writes carries one (``"card"``), and ``srlab.loading.load`` turns
every file srlab reads into one, so nothing downstream guesses how a network is called:

    architecture  the network's name in ``srlab.registry.MODELS`` (``vdsr``, ``mzsr_net``, ``classsr``)
    arguments     its constructor's keyword arguments
    input         what it takes (``InputConvention``): the Y channel of the bicubic upscale (VDSR),
                  the RGB bicubic upscale (MZSR's network), the RGB LR image (MSRResNet), the Y
                  channel of the LR image (FSRCNN as published)
    scales        the scales it serves
    method        the method that runs it (``srlab.registry.METHODS``): ``supervised`` (one forward
                  pass), ``classsr`` (routes sub-images), ``mzsr_meta`` (adapts to each image first)
    adapts        whether it learns from each image before upscaling it (then it takes a kernel)
    recommended   test-time settings that suit the weights (MZSR: adaptation steps and learning
                  rates; ClassSR: its routing), checked against the method's ``Recommended``
    provenance    where the weights came from: plain strings and numbers (the config's name and the
                  iteration, or a converted file, its SHA-256 and licence)

``NetworkCard.from_dict`` checks the card's own structure, one line per bad field naming the file
and the field; ``srlab.loading`` checks it against the code (the architecture exists, the arguments
build a network that fits the weights and declares the same input and scale, the method exists).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from srlab.errors import UserError
from srlab.network import InputConvention

# Above x16 no network here has been trained, and an absurd scale is an absurd allocation.
MAX_SCALE = 16


@dataclass(frozen=True)
class NetworkCard:
    architecture: str
    arguments: dict[str, Any]
    input: InputConvention
    scales: tuple[int, ...]
    method: str
    adapts: bool
    recommended: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, str | int | float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain data: what a checkpoint stores (``torch.load(weights_only=True)`` reads it back) and
        what exported files carry as JSON metadata."""
        return {"architecture": self.architecture, "arguments": dict(self.arguments), "input": self.input.value,
                "scales": list(self.scales), "method": self.method, "adapts": self.adapts,
                "recommended": dict(self.recommended), "provenance": dict(self.provenance)}

    @classmethod
    def from_dict(cls, data: Any, source: str) -> NetworkCard:
        """The card in ``data`` (``to_dict``'s form), each field checked: a bad one is a one-line
        ``UserError`` naming ``source`` (the file) and the field."""
        if not isinstance(data, dict):
            raise UserError(f"{source}: the network card is not a mapping (got {type(data).__name__})")
        unknown = sorted(set(data) - _FIELDS)
        if unknown:
            raise UserError(f"{source}: card field {unknown[0]!r} is unknown; allowed: {', '.join(sorted(_FIELDS))}")
        missing = sorted({"architecture", "arguments", "input", "scales", "method", "adapts"} - set(data))
        if missing:
            raise UserError(f"{source}: card field {missing[0]!r} is missing")

        def bad(name: str, allowed: str) -> UserError:
            return UserError(f"{source}: card field {name} = {_short(data[name])}; {allowed}")

        if not isinstance(data["architecture"], str) or not data["architecture"]:
            raise bad("architecture", "a network name is allowed")
        if not _plain_mapping(data["arguments"]):
            raise bad("arguments", "a mapping of constructor arguments (names to numbers, strings, lists) is allowed")
        try:
            convention = InputConvention(data["input"])
        except ValueError:
            raise bad("input", f"allowed: {', '.join(c.value for c in InputConvention)}") from None
        scales = data["scales"]
        if not isinstance(scales, (list, tuple)) or not scales or not all(
                type(s) is int and 2 <= s <= MAX_SCALE for s in scales) or len(set(scales)) != len(scales):
            raise bad("scales", f"a list of distinct integers from 2 to {MAX_SCALE} is allowed")
        if not isinstance(data["method"], str) or not data["method"]:
            raise bad("method", "a method name is allowed")
        if type(data["adapts"]) is not bool:
            raise bad("adapts", "true or false is allowed")
        recommended = data.get("recommended", {})
        if not _plain_mapping(recommended):
            raise UserError(f"{source}: card field recommended = {_short(recommended)}; a mapping of settings is "
                            f"allowed")
        provenance = data.get("provenance", {})
        if not isinstance(provenance, dict) or not all(
                isinstance(k, str) and _plain_scalar(v) for k, v in provenance.items()):
            raise UserError(f"{source}: card field provenance = {_short(provenance)}; a mapping of names to strings "
                            f"and numbers is allowed")
        return cls(data["architecture"], dict(data["arguments"]), convention, tuple(scales), data["method"],
                   data["adapts"], dict(recommended), dict(provenance))


_FIELDS = {"architecture", "arguments", "input", "scales", "method", "adapts", "recommended", "provenance"}


def _plain_scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, (str, int, bool))


def _plain_mapping(value: Any) -> bool:
    """Names to plain values (numbers, strings, booleans, None, and lists of them)."""
    if not isinstance(value, dict):
        return False
    for key, item in value.items():
        if not isinstance(key, str):
            return False
        items = item if isinstance(item, (list, tuple)) else [item]
        if len(items) > 1000 or not all(_plain_scalar(i) for i in items):
            return False
    return True


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
