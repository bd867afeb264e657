"""Other projects' checkpoints as srlab checkpoints: the weights move, the network is ours.

``srlab convert`` (``srlab.commands.convert``) calls one function per foreign format; each reads
the file without running it, works out the constructor arguments of the srlab network with the
same layers, renames the weights to that network's names (every weight of the file used, every
weight of ours filled, shapes checked) and returns a ``Converted``: an ordinary checkpoint
(``model`` + network ``card``) whose card names the source file, its SHA-256 and, for a public
file we know by its SHA-256, where it comes from and its licence (``KNOWN_SOURCES``).

* ``from_twtygqyy_vdsr`` — twtygqyy/pytorch-vdsr's ``model/model_epoch_50.pth``: a whole-model
  pickle (``{"epoch": 50, "model": vdsr.Net}``) in PyTorch's legacy format, read by
  ``srlab.legacy_pickle`` (an allow-list; nothing in it runs). ``vdsr.Net`` is VDSR (Kim et al.,
  CVPR 2016) as ``srlab.asymsr.models.VDSR(in_channels=1, bias=False)`` builds it: ``input``
  (1 -> 64, 3x3) + ReLU, ``residual_layer`` (18 x ``Conv_ReLU_Block``: 64 -> 64, 3x3, ReLU),
  ``output`` (64 -> 1), no biases, output = input + residual; 664,704 weights. It takes the Y
  channel of the MATLAB-bicubic upscale in [0, 1] and serves x2, x3 and x4 (trained on all three).
* ``from_yjn870_fsrcnn`` — yjn870/FSRCNN-pytorch's ``fsrcnn_x{2,3,4}.pth`` (state dicts):
  FSRCNN(56, 12, 4) of Dong et al. (ECCV 2016) on the Y channel of the LR image, 12,809 weights;
  ``srlab.classsr.backbones.FSRCNN(in_channels=1)`` has the same layers (``first_part`` ->
  ``body.0-1``, ``mid_part.k`` -> ``body.k+2``, ``last_part`` -> ``deconv``). The file does not
  record its scale: ``--scale``, or ``x2``/``x3``/``x4`` in the file's name.
* ``from_nmhkahn_carn_m`` — nmhkahn/CARN-pytorch's ``checkpoint/carn_m.pth``: the multi-scale
  CARN-M of Ahn et al. (ECCV 2018), one body and an upsampler per scale (x2, x3, x4; 414,811
  weights in all). One scale is converted (``--scale``) into ``srlab.classsr.backbones.CARN``
  (nf 64, group 4, 3 blocks; 294,147 weights at x4): its shared efficient residual block, the 1x1
  cascade convolutions, the grouped sub-pixel upsampler of that scale and the mean shift (the
  file's ``sub_mean`` / ``add_mean`` 1x1 convolutions must be the identity shifted by the mean,
  which becomes our ``mean`` buffer). A single-scale file (``upsample.up``) converts too.
* ``from_basicsr`` — a BasicSR ``.pth`` (``{"params": ...}`` and/or ``{"params_ema": ...}``; the
  EMA weights when present, as BasicSR tests them) of MSRResNet (``srlab.classsr.models.
  MSRResNet``; the names map back through its ``to_basicsr``).

The families' networks are reached through ``srlab.registry`` only (the core imports no family).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch

from srlab.card import NetworkCard
from srlab.checkpoint import load_checkpoint, load_weights
from srlab.errors import UserError
from srlab.legacy_pickle import LegacyModule, read_legacy_file
from srlab.provenance import sha256
from srlab.registry import MODELS, build_model

# SHA-256 of a public file -> (where it comes from, its licence). The licence of any other file is
# what --licence says, or unknown.
NO_LICENCE = "none: the repository has no licence file; convert for your own use, do not redistribute"
KNOWN_SOURCES = {
    "eab4d79ae5a6e5acef4c55e46015aed225ade207679bcb6695b07af8fb18e876":
        ("twtygqyy/pytorch-vdsr, model/model_epoch_50.pth", "MIT (twtygqyy/pytorch-vdsr)"),
    "d48a759a84509351facb6b7c6d5bd6edec98b98519b8c464ee4ab44d2ba964ff":
        ("nmhkahn/CARN-pytorch, checkpoint/carn_m.pth", "MIT (nmhkahn/CARN-pytorch)"),
    "1af70e2cbf0d11b942008d6c425e469e9fe275a68f3ac8b6c21e8672d6e67b69":
        ("yjn870/FSRCNN-pytorch, weights/fsrcnn_x2.pth (commit 597b52f)", NO_LICENCE),
    "f65b55819c1258048bc8c1ca96f9e24bd4339f779951d7f928144c08e3868d75":
        ("yjn870/FSRCNN-pytorch, weights/fsrcnn_x3.pth (commit 597b52f)", NO_LICENCE),
    "c15150d6787d487f38a68e66be5ec8a964182403af494e6a935fa03eeb56a630":
        ("yjn870/FSRCNN-pytorch, weights/fsrcnn_x4.pth (commit 597b52f)", NO_LICENCE),
}


@dataclass
class Converted:
    """A converted checkpoint (``model``, ``card`` as plain data, and anything else the format
    keeps), one line saying what it is, and its number of weights (shared ones once)."""

    state: dict
    summary: str
    parameters: int


def source_provenance(path: Path, arch: str, licence: str | None = None) -> dict[str, str | int]:
    """What a converted card says about its source file: name, size, SHA-256, origin, licence."""
    digest = sha256(path)
    origin, known_licence = KNOWN_SOURCES.get(digest, (None, None))
    facts: dict[str, str | int] = {"converted_by": f"srlab convert --arch {arch}", "source": path.name,
                                   "source_bytes": path.stat().st_size, "sha256": digest}
    if origin:
        facts["origin"] = origin
    facts["licence"] = licence or known_licence or "unknown (not a public file srlab knows; pass --licence)"
    return facts


def plain_checkpoint(path: Path, architecture: str, arguments: dict, scales: list[int], weights: dict,
                     provenance: dict, summary: str) -> Converted:
    """Our ``architecture`` built with ``arguments``, ``weights`` loaded strictly (every name, every
    shape), as a checkpoint run by one forward pass (method ``supervised``)."""
    network = build_model({"type": architecture, **arguments})
    load_weights(network, weights, path)
    card = NetworkCard(architecture=architecture, arguments=dict(arguments), input=network.input_convention,
                       scales=tuple(scales), method="supervised", adapts=False, provenance=provenance)
    parameters = sum(p.numel() for p in network.parameters())
    return Converted({"model": network.state_dict(), "card": card.to_dict()}, summary, parameters)


def renamed(path: Path, weights: dict[str, torch.Tensor], names: dict[str, str | list[str]],
            layout: str) -> dict[str, torch.Tensor]:
    """``weights`` under our names: ``names`` maps each of the file's names to ours (a list: one
    tensor shared by several names). A name missing from the file, or one left over, is an error."""
    missing = [k for k in names if k not in weights]
    if missing:
        raise UserError(f"{path}: no {missing[0]!r} in the file: not {layout}")
    extra = [k for k in weights if k not in names]
    if extra:
        raise UserError(f"{path}: {extra[0]!r} in the file has no place in {layout} ({len(extra)} such)")
    out = {}
    for theirs, ours in names.items():
        for name in [ours] if isinstance(ours, str) else ours:
            out[name] = weights[theirs]
    return out


def tensor_file(path: Path) -> dict[str, torch.Tensor]:
    """A ``torch.save``'d state dict (tensors only), read with ``weights_only``."""
    state = load_checkpoint(path)
    if not state or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise UserError(f"{path}: expected a state dict (names to tensors), got keys {list(state)[:5]}")
    return state


def _count(weights: dict, pattern: str, start: int = 0) -> int:
    """How many consecutive k = start, start + 1, ... have ``pattern.format(k)`` in ``weights``."""
    k = start
    while pattern.format(k) in weights:
        k += 1
    return k - start


def _check_conv(path: Path, name: str, conv: LegacyModule | None, **expected) -> None:
    """A pickled convolution has the geometry our layer has (kernel, stride, padding, ...)."""
    if conv is None or conv.qualname != "torch.nn.modules.conv.Conv2d":
        raise UserError(f"{path}: {name} is not a Conv2d (it is {getattr(conv, 'qualname', 'missing')})")
    for attribute, value in expected.items():
        found = conv.attribute(attribute)
        if found != value and not (isinstance(found, tuple) and found == (value, value)):
            raise UserError(f"{path}: {name}.{attribute} is {found!r}; the VDSR layout has {value!r}")


# ---------------------------------------------------------------------------------------- VDSR
TWTYGQYY_CLASSES = {"vdsr": {"Net", "Conv_ReLU_Block"}}
TWTYGQYY = "twtygqyy/pytorch-vdsr's VDSR layout (vdsr.Net: input, residual_layer.k.conv, output)"


def from_twtygqyy_vdsr(path: Path, scale: int | None = None, licence: str | None = None) -> Converted:
    root = read_legacy_file(path, TWTYGQYY_CLASSES)
    net = root.get("model") if isinstance(root, dict) else root
    if not isinstance(net, LegacyModule) or net.qualname != "vdsr.Net":
        found = getattr(net, "qualname", type(net).__name__)
        raise UserError(f"{path}: expected twtygqyy/pytorch-vdsr's {{'epoch', 'model': vdsr.Net}}, found {found}")
    layers = net.children()
    blocks = layers.get("residual_layer")
    if blocks is None or set(layers) - {"input", "residual_layer", "output", "relu"}:
        raise UserError(f"{path}: vdsr.Net has the layers {sorted(layers)}; {TWTYGQYY} has input, residual_layer, "
                        f"output, relu")
    convs = {"input": layers.get("input"), "output": layers.get("output")}
    for k, block in blocks.children().items():
        convs[f"residual_layer.{k}.conv"] = block.children().get("conv")
    for name, conv in convs.items():  # VDSR's geometry: our VDSR has no other
        _check_conv(path, name, conv, kernel_size=3, stride=1, padding=1, dilation=1, groups=1)
    weights = net.state_dict()
    head = weights.get("input.weight")
    if head is None or head.dim() != 4:
        raise UserError(f"{path}: no 4-d input.weight: not {TWTYGQYY}")
    bias = "input.bias" in weights
    depth = len(blocks.children())
    names = {"input.weight": "head.weight", "output.weight": "tail.weight",
             **{f"residual_layer.{k}.conv.weight": f"body.{2 * k}.weight" for k in range(depth)}}
    if bias:
        names |= {k.replace("weight", "bias"): v.replace("weight", "bias") for k, v in names.items()}
    arguments = {"in_channels": head.shape[1], "channels": head.shape[0], "num_layers": depth + 2, "bias": bias}
    epoch = root.get("epoch") if isinstance(root, dict) and type(root.get("epoch")) is int else None
    provenance = {**source_provenance(path, "vdsr", licence), "layout": "twtygqyy/pytorch-vdsr vdsr.Net"}
    if epoch is not None:
        provenance["epoch"] = epoch
    summary = (f"VDSR ({depth + 2} layers of {head.shape[0]} channels{', biases' if bias else ', no biases'}) from "
               f"twtygqyy/pytorch-vdsr's whole-model pickle{f', epoch {epoch}' if epoch is not None else ''}")
    return plain_checkpoint(path, "vdsr", arguments, [2, 3, 4], renamed(path, weights, names, TWTYGQYY),
                            provenance, summary)


# -------------------------------------------------------------------------------------- FSRCNN
YJN870 = "yjn870/FSRCNN-pytorch's FSRCNN layout (first_part, mid_part, last_part)"


def scale_from_name(path: Path, scale: int | None, what: str) -> int:
    """``--scale``, else x2 / x3 / x4 in the file's name (a file that does not record its scale)."""
    named = re.findall(r"x([234])(?![0-9])", path.stem)
    if scale is None and len(set(named)) != 1:
        raise UserError(f"{path}: {what} does not record its scale and its name does not say x2, x3 or x4; "
                        f"pass --scale 2, 3 or 4")
    if scale is not None and named and int(named[-1]) != scale:
        raise UserError(f"{path}: --scale {scale}, but the file's name says x{named[-1]}; rename the file or "
                        f"give the scale it was trained for")
    return scale if scale is not None else int(named[0])


def from_yjn870_fsrcnn(path: Path, scale: int | None = None, licence: str | None = None) -> Converted:
    weights = tensor_file(path)
    first = weights.get("first_part.0.weight")
    shrink = weights.get("mid_part.0.weight")
    if first is None or shrink is None or first.dim() != 4 or shrink.dim() != 4:
        raise UserError(f"{path}: no first_part.0.weight / mid_part.0.weight: not {YJN870}")
    d, channels, s = first.shape[0], first.shape[1], shrink.shape[0]
    # mid_part: 1x1 shrink + PReLU, m x (3x3 + PReLU), 1x1 expand + PReLU: 2m + 4 entries.
    m = _count(weights, "mid_part.{}.weight") // 2 - 2
    scale = scale_from_name(path, scale, "yjn870's FSRCNN file")
    names = {"first_part.0.weight": "body.0.weight", "first_part.0.bias": "body.0.bias",
             "first_part.1.weight": "body.1.weight", "last_part.weight": "deconv.weight",
             "last_part.bias": "deconv.bias"}
    for k in range(2 * m + 4):
        names[f"mid_part.{k}.weight"] = f"body.{k + 2}.weight"
        if k % 2 == 0:  # convolutions have biases, PReLUs only their slopes
            names[f"mid_part.{k}.bias"] = f"body.{k + 2}.bias"
    arguments = {"d": d, "s": s, "m": m, "scale": scale, "in_channels": channels}
    summary = f"FSRCNN(d={d}, s={s}, m={m}) x{scale} on {'the Y channel' if channels == 1 else 'RGB'} of the LR image"
    return plain_checkpoint(path, "fsrcnn", arguments, [scale], renamed(path, weights, names, YJN870),
                            {**source_provenance(path, "fsrcnn", licence), "layout": "yjn870/FSRCNN-pytorch FSRCNN"},
                            summary)


# -------------------------------------------------------------------------------------- CARN-M
NMHKAHN = "nmhkahn/CARN-pytorch's CARN-M layout (entry, b1-b3, c1-c3, upsample, exit, sub_mean, add_mean)"


def _carn_upsampler(path: Path, weights: dict, scale: int | None) -> tuple[str, int, str]:
    """Which upsampler to keep: its key prefix, its scale, and a note for the card."""
    scales = [s for s in (2, 3, 4) if f"upsample.up{s}.body.0.weight" in weights]
    if scales:
        if scale not in scales:
            raise UserError(f"{path}: a multi-scale CARN file (upsamplers for x{', x'.join(map(str, scales))}); "
                            f"pass --scale {', '.join(map(str, scales[:-1]))} or {scales[-1]} to convert one of them")
        return f"upsample.up{scale}.", scale, f"the x{scale} upsampler of a multi-scale file (it has " \
                                               f"x{', x'.join(map(str, scales))})"
    first = weights.get("upsample.up.body.0.weight")
    if first is None or first.dim() != 4:
        raise UserError(f"{path}: no upsampler (upsample.up2 / upsample.up): not {NMHKAHN}")
    own = 3 if first.shape[0] == 9 * weights["entry.weight"].shape[0] else \
        4 if "upsample.up.body.3.weight" in weights else 2
    if scale is not None and scale != own:
        raise UserError(f"{path}: a single-scale CARN file whose upsampler is x{own}; --scale {scale} does not fit")
    return "upsample.up.", own, f"the x{own} upsampler of a single-scale file"


def _carn_mean(path: Path, weights: dict) -> torch.Tensor:
    """The mean the file's MeanShift layers subtract and add back: 1x1 convolutions that must be the
    identity with biases -mean and +mean (otherwise they are not a mean shift, and ours would differ)."""
    eye = torch.eye(3).view(3, 3, 1, 1)
    sub_w, sub_b = weights.get("sub_mean.shifter.weight"), weights.get("sub_mean.shifter.bias")
    add_w, add_b = weights.get("add_mean.shifter.weight"), weights.get("add_mean.shifter.bias")
    if any(t is None for t in (sub_w, sub_b, add_w, add_b)):
        raise UserError(f"{path}: no sub_mean / add_mean shifter: not {NMHKAHN}")
    if not (torch.equal(sub_w, eye) and torch.equal(add_w, eye) and torch.equal(sub_b, -add_b)):
        raise UserError(f"{path}: its sub_mean / add_mean are not a mean shift (identity weights, biases -m and +m)")
    return add_b.view(1, 3, 1, 1)


def from_nmhkahn_carn_m(path: Path, scale: int | None = None, licence: str | None = None) -> Converted:
    weights = tensor_file(path)
    entry, shared = weights.get("entry.weight"), weights.get("b1.b1.body.0.weight")
    if entry is None or shared is None or entry.dim() != 4 or shared.dim() != 4 or not shared.shape[1] or \
            entry.shape[0] % shared.shape[1]:
        raise UserError(f"{path}: no entry.weight / b1.b1.body.0.weight of a grouped convolution: not {NMHKAHN}")
    if "b1.b2.body.0.weight" in weights:
        raise UserError(f"{path}: CARN (three residual blocks per cascading block), not CARN-M (one block, shared); "
                        f"srlab converts CARN-M")
    nf = entry.shape[0]
    group = nf // shared.shape[1]  # grouped 3x3 convolutions: nf / group input channels each
    blocks = _count(weights, "b{}.b1.body.0.weight", start=1)
    prefix, scale, upsampler = _carn_upsampler(path, weights, scale)
    keep = {k: v for k, v in weights.items() if not k.startswith("upsample.") or k.startswith(prefix)}
    names: dict[str, str | list[str]] = {f"entry.{p}": f"entry.{p}" for p in ("weight", "bias")}
    names |= {f"exit.{p}": f"exit.{p}" for p in ("weight", "bias")}
    for p in ("weight", "bias"):
        for k in range(1, blocks + 1):
            for layer in (0, 2, 4):  # the efficient residual block, applied three times with one set of weights
                names[f"b{k}.b1.body.{layer}.{p}"] = [f"body.steps.{k - 1}.steps.{i}.body.{layer}.{p}"
                                                      for i in range(3)]
            for j in (1, 2, 3):
                names[f"b{k}.c{j}.body.0.{p}"] = f"body.steps.{k - 1}.joins.{j - 1}.0.{p}"
        for j in range(1, blocks + 1):
            names[f"c{j}.body.0.{p}"] = f"body.joins.{j - 1}.0.{p}"
        for layer in ((0,) if scale != 4 else (0, 3)):  # conv, ReLU, shuffle (twice for x4)
            names[f"{prefix}body.{layer}.{p}"] = f"upsample.{layer}.{p}"
    mean = _carn_mean(path, keep)
    for shift in ("sub_mean", "add_mean"):  # checked by _carn_mean, folded into our mean buffer
        names[f"{shift}.shifter.weight"] = names[f"{shift}.shifter.bias"] = []
    ours = renamed(path, keep, names, NMHKAHN) | {"mean": mean}
    arguments = {"nf": nf, "scale": scale, "group": group, "blocks": blocks, "in_channels": 3}
    provenance = {**source_provenance(path, "carn_m", licence), "layout": "nmhkahn/CARN-pytorch carn_m.Net",
                  "upsampler": upsampler}
    summary = f"CARN-M (nf {nf}, group {group}, {blocks} cascading blocks) with {upsampler}"
    return plain_checkpoint(path, "carn", arguments, [scale], ours, provenance, summary)


# ------------------------------------------------------------------------------------- BasicSR
BASICSR_MSRRESNET = "BasicSR's MSRResNet (conv_first, body.k.conv1/conv2, upconv1[, upconv2], conv_hr, conv_last)"


def basicsr_names(arguments: dict) -> dict[str, str]:
    """BasicSR's name -> ours, for each weight of our MSRResNet built with ``arguments`` (on the meta
    device: only the names are needed)."""
    with torch.device("meta"):
        ours = list(build_model({"type": "msrresnet", **arguments}).state_dict())
    return MODELS["msrresnet"].to_basicsr(dict(zip(ours, ours)))


def from_basicsr(path: Path, scale: int | None = None, licence: str | None = None) -> Converted:
    state = load_checkpoint(path)
    key = next((k for k in ("params_ema", "params") if isinstance(state.get(k), dict)), None)
    if key is None:
        raise UserError(f"{path}: a BasicSR file holds its weights under 'params' or 'params_ema'; this one has "
                        f"{sorted(state)[:5]}")
    weights = state[key]
    first, upconv1 = weights.get("conv_first.weight"), weights.get("upconv1.weight")
    if first is None or upconv1 is None or first.dim() != 4 or upconv1.dim() != 4 or "conv_hr.weight" not in weights:
        raise UserError(f"{path}: {key} is not {BASICSR_MSRRESNET}; srlab converts BasicSR's MSRResNet")
    nf, channels = first.shape[0], first.shape[1]
    own = 3 if upconv1.shape[0] == 9 * nf else 4 if "upconv2.weight" in weights else 2
    if scale is not None and scale != own:
        raise UserError(f"{path}: an x{own} MSRResNet (its upsampling convolutions); --scale {scale} does not fit")
    arguments = {"nf": nf, "nb": _count(weights, "body.{}.conv1.weight"), "scale": own, "in_channels": channels}
    names = basicsr_names(arguments)
    provenance = {**source_provenance(path, "basicsr", licence), "layout": "BasicSR MSRResNet", "param_key": key}
    summary = f"MSRResNet (nf {nf}, {arguments['nb']} blocks) x{own} from BasicSR's {key!r}"
    return plain_checkpoint(path, "msrresnet", arguments, [own], renamed(path, weights, names, BASICSR_MSRRESNET),
                            provenance, summary)

