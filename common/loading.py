"""One loader: a checkpoint file -> the method that runs it, its network, and its card.

    method, network, card = load("weights/asymsr/asym_vdsr_x234_cpu.pt")

``srlab upscale``, ``srlab test``, ``srlab export``, ``srlab zeroshot`` and ``srlab.api`` all load
through here, so a file means the same thing everywhere:

    file ─▶ load_checkpoint (weights_only) ─▶ NetworkCard (the file's "card", or one made from the
         config of a checkpoint written before cards) ─▶ the card checked against the code ─▶
         method (how the network runs: one forward pass, routed, adapting) + network (weights in)

Every check names the file and the card field: the architecture exists; the arguments build a
network (first on PyTorch's "meta" device, which allocates nothing) whose every weight has the
shape the file holds, so a crafted card cannot ask for terabytes; the network declares the input
and scale the card says; the method exists and adapts as the card says; the recommended settings
have the method's types and values. The weights must be finite.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from srlab.card import MAX_SCALE, NetworkCard, _short
from srlab.checkpoint import load_checkpoint, load_weights, model_state
from srlab.config import Config, TrainConfig, from_dict
from srlab.errors import ConfigError, UserError
from srlab.method import AdaptingMethod, Method
from srlab.registry import METHODS, MODELS, build_model

# The methods a loaded network can run with: one forward pass, ClassSR's routing, MZSR's adaptation,
# and KernelNet's kernel prediction (which estimates kernels and upscales nothing).
LOADABLE_METHODS = ("supervised", "classsr", "mzsr_meta", "kernel_net")
# Checkpoints from before network cards name the method of their config; these run as another: a
# ClassSR branch trained on its class is a plain network, and the network of MZSR's zero-shot test
# config adapts to each image as a meta-trained one does.
RUNS_AS = {"classsr_branch": "supervised", "mzsr": "mzsr_meta"}


def load(path: str | Path) -> tuple[Method, nn.Module, NetworkCard]:
    """The method, the network (weights loaded, on the CPU, in train mode: ``inference_model``
    prepares it for a device) and the card of ``path``: a checkpoint srlab wrote, a ``.safetensors``
    file ``srlab export`` wrote, or another project's network that spandrel recognises
    (``srlab.foreign``)."""
    state = read_file(path)
    if _basicsr_msrresnet(state):  # BasicSR's own file of a network we have: read as srlab convert does
        from srlab.converters import from_basicsr

        state = from_basicsr(Path(path)).state
    elif not any(key in state for key in ("card", "config")):
        from srlab.foreign import load_foreign

        return load_foreign(path, state)
    weights = model_state(state, path)
    card = read_card(state, weights, path)
    method = inference_method(card, path)
    network = build_network(method, card, weights, path)
    load_weights(network, weights, path)
    method.use_other_weights(_other_weights(state, network, path))
    return method, network, card


def read_file(path: str | Path) -> dict:
    """A checkpoint as a dict (``torch.load(weights_only=True)``, or a ``.safetensors`` file); an
    export of srlab's becomes the checkpoint it came from (``model`` and ``card``)."""
    if Path(path).suffix.lower() != ".safetensors":
        return load_checkpoint(path)
    tensors, metadata = _read_safetensors(path)
    from srlab.spandrel_arch import from_exported

    exported = from_exported(tensors, str(path))
    if exported is not None:
        card, weights = exported
        return {"model": weights, "card": card.to_dict()}
    if "srlab.card" not in metadata:  # another project's file
        return tensors
    # srlab's exports before the card travelled inside the tensors: the card in the header
    try:
        card = json.loads(metadata["srlab.card"])
    except ValueError:
        raise UserError(f"{path}: its srlab.card metadata is not JSON") from None
    if metadata.get("srlab.naming") == "basicsr" and isinstance(card, dict) and card.get("architecture") == "msrresnet":
        from srlab.converters import basicsr_names

        try:
            names = basicsr_names(dict(card.get("arguments") or {}))
        except (ConfigError, TypeError, ValueError) as exc:
            raise UserError(f"{path}: card field arguments: {exc}") from None
        tensors = {names.get(k, k): v for k, v in tensors.items()}
    return {"model": tensors, "card": card}


def _basicsr_msrresnet(state: dict) -> bool:
    """A BasicSR ``.pth`` of MSRResNet (``{'params'|'params_ema': {'conv_first.weight', 'upconv1.weight', ...}}``)."""
    weights = state.get("params_ema", state.get("params"))
    return "card" not in state and isinstance(weights, dict) and {"conv_first.weight", "upconv1.weight",
                                                                  "conv_hr.weight"} <= set(weights)


def _read_safetensors(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    if not Path(path).is_file():
        raise UserError(f"{path}: checkpoint not found")
    try:
        with safe_open(str(path), "pt") as f:  # the header once, then each tensor
            return {key: f.get_tensor(key) for key in f.keys()}, f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        reason = str(exc).strip().split("\n")[0][:200] or type(exc).__name__
        raise UserError(f"{path}: not a readable .safetensors file ({reason})") from None


def _other_weights(state: dict, network: nn.Module, path: str | Path) -> dict[str, dict[str, torch.Tensor]]:
    """The checkpoint's ``other_weights`` (``Method.other_weights``), each checked to fit ``network``."""
    found = state.get("other_weights") or {}
    if not isinstance(found, dict) or not all(isinstance(k, str) and isinstance(v, dict) for k, v in found.items()):
        raise UserError(f"{path}: other_weights must map names to state dicts")
    shapes = {k: tuple(v.shape) for k, v in network.state_dict().items()}
    for name, weights in found.items():
        held = {k: tuple(v.shape) for k, v in weights.items() if isinstance(v, torch.Tensor)}
        if held != shapes:
            raise UserError(f"{path}: other_weights.{name} do not fit the network (their names or shapes differ)")
        load_weights(copy.deepcopy(network), weights, f"{path} (other_weights.{name})")  # finite and loadable
    return found


def read_card(state: dict, weights: dict, path: str | Path) -> NetworkCard:
    """The checkpoint's card; for a checkpoint written before cards, one made from its config."""
    if "card" in state:
        return NetworkCard.from_dict(state["card"], str(path))
    return _card_from_config(state, weights, path)


def inference_method(card: NetworkCard, path: str | Path) -> Method:
    """The method that runs the card's network, with the card's recommended settings."""
    if card.method not in LOADABLE_METHODS:
        raise UserError(f"{path}: card field method = {card.method!r}; allowed: {', '.join(LOADABLE_METHODS)}")
    if card.architecture not in MODELS:
        raise UserError(f"{path}: card field architecture = {card.architecture!r}; allowed: {', '.join(MODELS)}")
    method_class = METHODS[card.method]
    if card.adapts != issubclass(method_class, AdaptingMethod):
        raise UserError(f"{path}: card field adapts = {card.adapts}, but method {card.method!r} "
                        f"{'adapts' if not card.adapts else 'does not adapt'} to each image")
    cfg = Config(method=card.method, model={"type": card.architecture, **card.arguments},
                 train=TrainConfig(scales=list(card.scales)))
    try:
        method = method_class.for_inference(cfg, lambda: build_model(cfg.model))
        if method_class.Recommended is not None:
            method.use_recommended(from_dict(method_class.Recommended, card.recommended, "recommended"))
        elif card.recommended:
            raise ConfigError(f"recommended: method {card.method!r} takes no recommended settings")
    except ConfigError as exc:
        raise UserError(f"{path}: card field {exc}") from None
    return method


def build_network(method: Method, card: NetworkCard, weights: dict[str, Any], path: str | Path) -> nn.Module:
    """The card's network, built for the method, once its shapes are known to fit ``weights``."""
    try:
        with torch.device("meta"):
            probe = method.build_model()
    except ConfigError as exc:
        raise UserError(f"{path}: card field arguments: {exc}") from None
    _check_shapes(probe, weights, card, path)
    if probe.input_convention is not card.input:
        raise UserError(f"{path}: card field input = {card.input.value!r}, but {card.architecture} with these "
                        f"arguments takes {probe.input_convention.value!r}")
    if probe.scale is not None and list(card.scales) != [probe.scale]:
        raise UserError(f"{path}: card field scales = {list(card.scales)}, but {card.architecture} with these "
                        f"arguments upscales x{probe.scale} only")
    return method.build_model()


def _check_shapes(probe: nn.Module, weights: dict[str, Any], card: NetworkCard, path: str | Path) -> None:
    expected = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    held = {k: tuple(v.shape) for k, v in weights.items() if isinstance(v, torch.Tensor)}
    wrong = [k for k in expected if k in held and held[k] != expected[k]]
    missing = [k for k in expected if k not in held]
    if wrong or missing:
        key = (wrong or missing)[0]
        found = f"{held[key]} in the file" if key in held else "missing from the file"
        if key in weights and key not in held:  # present, but a number or a string where a tensor belongs
            found = f"a {type(weights[key]).__name__} in the file, not a tensor"
        raise UserError(f"{path}: card field arguments = {card.arguments} do not fit the weights: {key!r} is "
                        f"{found}, {expected[key]} for {card.architecture} with these arguments")


def _card_from_config(state: dict, weights: dict, path: str | Path) -> NetworkCard:
    """A card for a checkpoint written before cards: its ``config`` (and the ``network`` entry some
    carry: scales, recommended settings), with the input and scale its network declares."""
    config = state.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict) or "type" not in config["model"]:
        raise UserError(f"{path}: no network card and no config inside, so the network it holds is unknown; use a "
                        f"checkpoint written by srlab train (or srlab convert-mzsr)")
    network = state.get("network", {})
    if not isinstance(network, dict):
        raise UserError(f"{path}: its 'network' entry = {_short(network)}; a mapping (scales, recommended) is allowed")
    method = RUNS_AS.get(config.get("method"), config.get("method"))
    if method not in LOADABLE_METHODS:
        raise UserError(f"{path}: a {config.get('method')!r} checkpoint; srlab runs checkpoints trained with "
                        f"{', '.join([*LOADABLE_METHODS, *RUNS_AS])}")
    model = dict(config["model"])
    architecture = model.pop("type")
    try:
        with torch.device("meta"):
            probe = build_model({"type": architecture, **model})
    except ConfigError as exc:
        raise UserError(f"{path}: its config's network does not build ({exc})") from None
    scales = _legacy_scales(network, config, probe, path)
    provenance = {"written_by": "srlab train (a checkpoint from before network cards)"}
    if isinstance(config.get("name"), str):
        provenance["config_name"] = config["name"]
    if isinstance(state.get("iteration"), int):
        provenance["iteration"] = state["iteration"]
    return NetworkCard.from_dict({
        "architecture": architecture, "arguments": model, "input": probe.input_convention.value, "scales": scales,
        "method": method, "adapts": issubclass(METHODS[method], AdaptingMethod),
        "recommended": network.get("recommended") or {}, "provenance": provenance,
    }, str(path))



def _legacy_scales(network: dict, config: dict, probe: nn.Module, path: str | Path) -> list[int]:
    """The scales of a checkpoint from before cards: its ``network.scales``, else the network's own
    scale, else its config's ``train.scales``; each checked here, so the error names where it came from."""
    train = config.get("train") or {}
    named = {"network.scales": network.get("scales"),
             "config train.scales": train.get("scales") if isinstance(train, dict) else train}
    for field, scales in named.items():
        if scales is not None and (not isinstance(scales, (list, tuple)) or not scales or not all(
                type(s) is int and 2 <= s <= MAX_SCALE for s in scales) or len(set(scales)) != len(scales)):
            raise UserError(f"{path}: its {field} = {_short(scales)}; a list of distinct integers from 2 to "
                            f"{MAX_SCALE} is allowed")
    own = [probe.scale] if probe.scale is not None else None
    return list(named["network.scales"] or own or named["config train.scales"] or [2])
