"""srlab's own networks as spandrel architectures, so chaiNNer (and anything else that loads models
with spandrel) can run srlab's exported ``.safetensors`` files.

    import spandrel
    import srlab.spandrel_arch as s

    s.register()  # once; calling it again does nothing
    model = spandrel.ModelLoader().load_from_file("vdsr.safetensors")
    sr = model(lr)  # RGB LR (1, 3, H, W) in [0, 1] -> RGB SR (1, 3, scale*H, scale*W)

The exported format (``to_exported`` writes it, ``from_exported`` reads it back):

    "srlab.<architecture>.<key>"  every weight of the network, ``key`` its own state_dict name
    "srlab.card"                  the network card (``srlab.card``) as JSON (sorted keys), UTF-8
                                  bytes in a 1-D uint8 tensor

The card travels as a tensor, not as safetensors metadata, because spandrel hands an architecture
only the tensors of a file. The keys are namespaced so that no spandrel architecture, which
detects its files by their key names (``conv_first.weight``, ``body.0.weight``), claims ours, and
ours claim nothing but files holding ``"srlab.card"``: an srlab architecture takes a file only when
its card names that architecture (or, when the card cannot be read, when the weights carry its
prefix, so that loading can say what is wrong with the card).

Loading builds the network as ``srlab.loading`` does (the card checked against the code, shapes
checked on the "meta" device first) and wraps it in ``SrlabSR``, which takes spandrel's RGB LR
image and runs the card's method on it exactly as srlab does: a VDSR, for one, sees the Y channel
of the MATLAB-bicubic upscale, and its output is recombined with the upscale's Cb/Cr.

spandrel is imported only by ``architectures`` and ``register`` (it takes over a second to import):
``to_exported`` and ``from_exported`` (``srlab export``, srlab's loader) do not need it. Importing
srlab after spandrel registers the architectures by itself (``srlab/__init__.py``).
"""
from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from srlab.card import NetworkCard
from srlab.checkpoint import load_weights
from srlab.errors import UserError
from srlab.loading import build_network, inference_method
from srlab.method import Method

CARD_KEY = "srlab.card"
# The architectures supervised networks can have; each becomes the spandrel architecture "srlab.<name>".
ARCHITECTURES = ("vdsr", "asym_vdsr", "mzsr_net", "msrresnet", "fsrcnn", "carn")
NAMES = {"vdsr": "VDSR", "asym_vdsr": "Asym-VDSR", "mzsr_net": "MZSR", "msrresnet": "MSRResNet",
         "fsrcnn": "FSRCNN", "carn": "CARN"}
# Networks that run by one forward pass. An MZSR meta-trained network is a start meant to be adapted
# to each image (srlab upscale's photo path does that); spandrel would run it unadapted, MZSR(0),
# which is far below bicubic interpolation on photographs: refused, with the reason.
RUNNABLE_METHODS = ("supervised",)
# spandrel gives an architecture the tensors only, never the file's name: errors name this instead.
SPANDREL_SOURCE = "srlab file loaded by spandrel"


def to_exported(weights: Mapping[str, torch.Tensor], card: NetworkCard) -> dict[str, torch.Tensor]:
    """``weights`` (the network's state_dict) and ``card`` in the exported format (module docstring)."""
    prefix = f"srlab.{card.architecture}."
    # Copies: safetensors refuses tensors that share memory, and CARN holds one tensor under several names.
    state = {prefix + key: value.detach().clone().contiguous() for key, value in weights.items()}
    text = json.dumps(card.to_dict(), sort_keys=True)
    state[CARD_KEY] = torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8).clone()
    return state


def from_exported(state: Mapping[str, Any], source: str) -> tuple[NetworkCard, dict[str, torch.Tensor]] | None:
    """The card and the network's weights (their own names) of ``state``; None when ``state`` is not
    in the exported format (no ``"srlab.card"``). A broken one is a one-line ``UserError`` naming
    ``source``. Which weights the network needs is checked when it is built (``build``)."""
    if CARD_KEY not in state:
        return None
    card = NetworkCard.from_dict(_card_data(state[CARD_KEY], source), source)
    prefix = f"srlab.{card.architecture}."
    others = [k for k in state if k != CARD_KEY and not k.startswith(prefix)]
    if others:
        raise UserError(f"{source}: {others[0]!r} is not a weight of the card's architecture {card.architecture!r} "
                        f"(its weights are named {prefix}<name>)")
    weights = {k[len(prefix):]: v for k, v in state.items() if k != CARD_KEY}
    if not weights:
        raise UserError(f"{source}: holds a network card ({card.architecture}) but no weights")
    wrong = next((k for k, v in weights.items() if not isinstance(v, torch.Tensor)), None)
    if wrong is not None:
        raise UserError(f"{source}: {prefix}{wrong} is not a tensor")
    return card, weights


def _card_data(tensor: Any, source: str) -> Any:
    """The JSON the ``"srlab.card"`` tensor holds, parsed."""
    if not isinstance(tensor, torch.Tensor) or tensor.dtype != torch.uint8 or tensor.dim() != 1:
        raise UserError(f"{source}: {CARD_KEY} must be a 1-D uint8 tensor of UTF-8 JSON")
    try:
        return json.loads(tensor.cpu().numpy().tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{source}: {CARD_KEY} is not valid JSON ({str(exc).splitlines()[0]})") from None


def _card_architecture(state: Mapping[str, Any]) -> str | None:
    """The architecture ``state``'s card names, or None when it cannot be read (never raises:
    spandrel calls ``detect`` on every file it sees)."""
    try:
        data = _card_data(state[CARD_KEY], "")
    except (UserError, KeyError):
        return None
    name = data.get("architecture") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def claims(state: Mapping[str, Any], architecture: str) -> bool:
    """Whether ``state`` is an exported srlab file of ``architecture`` (spandrel's ``detect``)."""
    if CARD_KEY not in state:
        return False
    named = _card_architecture(state)
    if named is not None:
        return named == architecture
    # An unreadable card: the namespaced weights still say whose file it is, and loading it then
    # gives the card's fault in one line instead of spandrel's bare "unsupported model".
    return any(k.startswith(f"srlab.{architecture}.") for k in state)


class SrlabSR(nn.Module):
    """An srlab network as spandrel calls it: an RGB LR image ``(B, 3, H, W)`` in [0, 1] -> the RGB
    SR image ``(B, 3, scale*H, scale*W)``, unclamped, made by the card's method exactly as srlab
    makes it (``Method.infer``: the bicubic upscale and Y/CbCr that the network's input convention asks for)."""

    def __init__(self, method: Method, network: nn.Module, card: NetworkCard):
        super().__init__()
        self.network = network  # the only weights: the state_dict is the network's, under "network."
        self.method = method  # plain object, not a module: how srlab calls the network
        self.card = card
        self.scale = card.scales[0]

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.method.infer(self.network, lr, self.scale).image


def build(card: NetworkCard, weights: Mapping[str, torch.Tensor], source: str) -> SrlabSR:
    """The card's network with ``weights`` in, built and checked by srlab's loader (one-line
    ``UserError`` naming ``source``), wrapped to take and give RGB images."""
    if card.method not in RUNNABLE_METHODS:
        raise UserError(f"{source}: card field method = {card.method!r}; spandrel can run networks of "
                        f"{', '.join(RUNNABLE_METHODS)} only")
    method = inference_method(card, source)
    network = build_network(method, card, dict(weights), source)
    load_weights(network, dict(weights), source)
    return SrlabSR(method, network, card).eval()


def descriptor(architecture: Any, state: Mapping[str, Any]) -> Any:
    """spandrel's ``ImageModelDescriptor`` of the exported ``state`` (``architecture.load``)."""
    from spandrel import ImageModelDescriptor

    found = from_exported(state, SPANDREL_SOURCE)
    own = architecture.id.removeprefix("srlab.")
    if found is None or found[0].architecture != own:
        raise UserError(f"{SPANDREL_SOURCE}: not an exported srlab {own} network")
    card, weights = found
    model = build(card, weights, SPANDREL_SOURCE)
    # Y-channel networks get fp32 Y from srlab's colour conversion (Supervised runs it in fp32):
    # a half-precision network would be handed fp32. RGB ones see the input's own dtype.
    low_precision = not card.input.y_channel
    tags = [card.architecture, card.input.value, *(f"{s}x" for s in card.scales)]
    if card.adapts:
        tags.append("unadapted")
    return ImageModelDescriptor(model, model.state_dict(), architecture=architecture, purpose="SR", tags=tags,
                                supports_half=low_precision, supports_bfloat16=low_precision,
                                scale=model.scale, input_channels=3, output_channels=3)


@functools.cache
def architectures() -> tuple[Any, ...]:
    """One spandrel ``Architecture`` per entry of ``ARCHITECTURES``, id ``srlab.<name>``."""
    # The class is made here, not at module level: importing spandrel takes over a second, and srlab
    # export and srlab's loader use this module's format functions without it. Cached: one object each.
    from spandrel import Architecture

    class SrlabArchitecture(Architecture[SrlabSR]):
        def __init__(self, name: str):
            super().__init__(id=f"srlab.{name}", name=f"srlab {NAMES[name]}",
                             detect=functools.partial(claims, architecture=name))

        def load(self, state_dict: dict[str, Any]) -> Any:
            return descriptor(self, state_dict)

    return tuple(SrlabArchitecture(name) for name in ARCHITECTURES)


def register(registry: Any = None) -> list[Any]:
    """Add srlab's architectures to ``registry`` (spandrel's ``MAIN_REGISTRY`` by default), those
    not there yet: calling it twice adds nothing. Returns the ``ArchSupport`` entries added."""
    from spandrel import MAIN_REGISTRY, ArchSupport

    registry = MAIN_REGISTRY if registry is None else registry
    new = [ArchSupport.from_architecture(a) for a in architectures() if a.id not in registry]
    return registry.add(*new)
