"""The public projects' networks as their releases lay them out, for the tests of ``srlab convert``.

For each format ``srlab convert`` reads: a writer of a tiny file of that format with random weights
(the projects' own key names and file layout), and a plain forward pass computed from such a state
dict with ``torch.nn.functional``, written from the projects' published architecture:

* twtygqyy/pytorch-vdsr ``vdsr.Net``: ``input`` conv + ReLU, ``residual_layer.k.conv`` conv + ReLU,
  ``output`` conv, plus the input; 3x3, padding 1, no biases; a whole-model legacy pickle.
* yjn870/FSRCNN-pytorch ``FSRCNN``: ``first_part`` (5x5 conv, PReLU), ``mid_part`` (1x1 shrink,
  PReLU, m x (3x3, PReLU), 1x1 expand, PReLU), ``last_part`` (9x9 transposed conv, stride = scale,
  padding 4, output padding scale - 1); a state dict.
* nmhkahn/CARN-pytorch ``carn_m.Net``: ``sub_mean`` (1x1), ``entry`` (3x3), blocks ``b1``-``b3``
  (one efficient residual block ``b1`` applied three times, 1x1 + ReLU joins ``c1``-``c3`` over the
  concatenation so far), the same cascade over the blocks (``c1``-``c3``), ``upsample.up{s}``
  (grouped 3x3 + ReLU + pixel shuffle, twice for x4), ``exit`` (3x3), ``add_mean``; a state dict.
* BasicSR ``MSRResNet``: ``conv_first`` + LeakyReLU(0.1), ``body.k`` (conv1, ReLU, conv2, plus the
  input), ``upconv1``[/``upconv2``] + pixel shuffle + LeakyReLU, ``conv_hr`` + LeakyReLU,
  ``conv_last``, plus the bilinear upscale; ``{"params": state dict}``.
"""
import sys
import types
import warnings

import torch
import torch.nn.functional as F
from torch import nn


def _random(*shape, std=0.1):
    return torch.randn(*shape) * std


# ----------------------------------------------------------------------------- twtygqyy VDSR
def vdsr_classes() -> types.ModuleType:
    """A module ``vdsr`` with twtygqyy's two classes (their names and layers), to pickle whole."""
    module = types.ModuleType("vdsr")

    class Conv_ReLU_Block(nn.Module):  # noqa: N801 (the public class's name)
        def __init__(self, channels):
            super().__init__()
            self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
            self.relu = nn.ReLU(inplace=True)

    class Net(nn.Module):
        def __init__(self, channels=4, blocks=2):
            super().__init__()
            self.residual_layer = nn.Sequential(*[Conv_ReLU_Block(channels) for _ in range(blocks)])
            self.input = nn.Conv2d(1, channels, 3, padding=1, bias=False)
            self.output = nn.Conv2d(channels, 1, 3, padding=1, bias=False)
            self.relu = nn.ReLU(inplace=True)

    for cls in (Conv_ReLU_Block, Net):
        cls.__module__, cls.__qualname__ = "vdsr", cls.__name__
        setattr(module, cls.__name__, cls)
    return module


def legacy_save(obj, path):
    """``obj`` as PyTorch before 1.6 saved it: the legacy format, whole modules pickled."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "couldn't retrieve source code" of classes made at run time
        torch.save(obj, path, _use_new_zipfile_serialization=False)
    return path


def write_twtygqyy_vdsr(path, channels=4, blocks=2, epoch=3) -> dict:
    """A whole-model pickle like ``model_epoch_50.pth``; returns the network's state dict."""
    module = vdsr_classes()
    previous = sys.modules.get("vdsr")
    sys.modules["vdsr"] = module  # torch.save pickles a class by its module's name
    try:
        net = module.Net(channels, blocks)
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(_random(*p.shape))
        legacy_save({"epoch": epoch, "model": net}, path)
    finally:
        sys.modules.pop("vdsr") if previous is None else sys.modules.__setitem__("vdsr", previous)
    return {k: v.clone() for k, v in net.state_dict().items()}


def vdsr_forward(w: dict, y: torch.Tensor) -> torch.Tensor:
    """``vdsr.Net.forward`` on the Y channel of the bicubic upscale."""
    out = F.relu(F.conv2d(y, w["input.weight"], padding=1))
    k = 0
    while f"residual_layer.{k}.conv.weight" in w:
        out = F.relu(F.conv2d(out, w[f"residual_layer.{k}.conv.weight"], padding=1))
        k += 1
    return F.conv2d(out, w["output.weight"], padding=1) + y


# ------------------------------------------------------------------------------ yjn870 FSRCNN
def fsrcnn_state(d=8, s=4, m=2, channels=1) -> dict:
    w = {"first_part.0.weight": _random(d, channels, 5, 5), "first_part.0.bias": _random(d),
         "first_part.1.weight": torch.rand(d) * 0.5}
    shapes = [(s, d, 1)] + [(s, s, 3)] * m + [(d, s, 1)]
    for i, (cout, cin, k) in enumerate(shapes):
        w[f"mid_part.{2 * i}.weight"], w[f"mid_part.{2 * i}.bias"] = _random(cout, cin, k, k), _random(cout)
        w[f"mid_part.{2 * i + 1}.weight"] = torch.rand(cout) * 0.5
    w["last_part.weight"], w["last_part.bias"] = _random(d, channels, 9, 9), _random(channels)
    return w


def fsrcnn_forward(w: dict, y: torch.Tensor, scale: int) -> torch.Tensor:
    """``FSRCNN.forward`` on the Y channel of the LR image."""
    out = F.prelu(F.conv2d(y, w["first_part.0.weight"], w["first_part.0.bias"], padding=2), w["first_part.1.weight"])
    k = 0
    while f"mid_part.{k}.weight" in w:
        conv = w[f"mid_part.{k}.weight"]
        out = F.conv2d(out, conv, w[f"mid_part.{k}.bias"], padding=conv.shape[-1] // 2)
        out = F.prelu(out, w[f"mid_part.{k + 1}.weight"])
        k += 2
    return F.conv_transpose2d(out, w["last_part.weight"], w["last_part.bias"], stride=scale, padding=4,
                              output_padding=scale - 1)


# ----------------------------------------------------------------------------- nmhkahn CARN-M
MEAN = (0.4488, 0.4371, 0.4040)


def carn_m_state(nf=8, group=2, scales=(2, 3, 4)) -> dict:
    """A CARN-M state dict of the multi-scale layout, with an upsampler for each of ``scales``
    (``upsample.up2`` ...; the public file has x2, x3 and x4)."""
    w = {"sub_mean.shifter.weight": torch.eye(3).view(3, 3, 1, 1), "sub_mean.shifter.bias": -torch.tensor(MEAN),
         "add_mean.shifter.weight": torch.eye(3).view(3, 3, 1, 1), "add_mean.shifter.bias": torch.tensor(MEAN),
         "entry.weight": _random(nf, 3, 3, 3), "entry.bias": _random(nf)}

    def conv(name, cout, cin, k):
        w[f"{name}.weight"], w[f"{name}.bias"] = _random(cout, cin, k, k), _random(cout)

    for b in (1, 2, 3):
        conv(f"b{b}.b1.body.0", nf, nf // group, 3)
        conv(f"b{b}.b1.body.2", nf, nf // group, 3)
        conv(f"b{b}.b1.body.4", nf, nf, 1)
        for j in (1, 2, 3):
            conv(f"b{b}.c{j}.body.0", nf, nf * (j + 1), 1)
    for j in (1, 2, 3):
        conv(f"c{j}.body.0", nf, nf * (j + 1), 1)
    for s in scales:
        for layer in (0, 3) if s == 4 else (0,):
            conv(f"upsample.up{s}.body.{layer}", nf * (9 if s == 3 else 4), nf // group, 3)
    conv("exit", 3, nf, 3)
    return w


def _carn_block(w, prefix, x, group):
    """``carn_m.Block``: its one residual block applied three times, each output joined."""
    def residual(t):
        out = F.relu(F.conv2d(t, w[f"{prefix}b1.body.0.weight"], w[f"{prefix}b1.body.0.bias"], padding=1, groups=group))
        out = F.relu(F.conv2d(out, w[f"{prefix}b1.body.2.weight"], w[f"{prefix}b1.body.2.bias"], padding=1,
                              groups=group))
        return F.relu(F.conv2d(out, w[f"{prefix}b1.body.4.weight"], w[f"{prefix}b1.body.4.bias"]) + t)
    return _cascade(w, prefix, x, [residual] * 3)


def _cascade(w, prefix, x, steps):
    stacked, out = x, x
    for j, step in enumerate(steps, 1):
        stacked = torch.cat([stacked, step(out)], dim=1)
        out = F.relu(F.conv2d(stacked, w[f"{prefix}c{j}.body.0.weight"], w[f"{prefix}c{j}.body.0.bias"]))
    return out


def carn_m_forward(w: dict, x: torch.Tensor, scale: int, group: int, up: str | None = None) -> torch.Tensor:
    """``carn_m.Net.forward(x, scale)`` on the RGB LR image; ``up``: the upsampler's key prefix
    (default the multi-scale file's ``upsample.up{scale}``)."""
    x = F.conv2d(x, w["sub_mean.shifter.weight"], w["sub_mean.shifter.bias"])
    x = F.conv2d(x, w["entry.weight"], w["entry.bias"], padding=1)
    out = _cascade(w, "", x, [lambda t, b=b: _carn_block(w, f"b{b}.", t, group) for b in (1, 2, 3)])
    up = up or f"upsample.up{scale}"
    for layer, factor in zip((0, 3), [3] if scale == 3 else [2] * (scale // 2)):
        out = F.relu(F.conv2d(out, w[f"{up}.body.{layer}.weight"], w[f"{up}.body.{layer}.bias"], padding=1,
                              groups=group))
        out = F.pixel_shuffle(out, factor)
    out = F.conv2d(out, w["exit.weight"], w["exit.bias"], padding=1)
    return F.conv2d(out, w["add_mean.shifter.weight"], w["add_mean.shifter.bias"])


# ---------------------------------------------------------------------------- BasicSR MSRResNet
def msrresnet_state(nf=8, nb=2, scale=4, channels=3) -> dict:
    w = {"conv_first.weight": _random(nf, channels, 3, 3), "conv_first.bias": _random(nf)}
    for k in range(nb):
        for c in ("conv1", "conv2"):
            w[f"body.{k}.{c}.weight"], w[f"body.{k}.{c}.bias"] = _random(nf, nf, 3, 3), _random(nf)
    for i in range(1, (2 if scale == 4 else 1) + 1):
        w[f"upconv{i}.weight"] = _random(nf * (9 if scale == 3 else 4), nf, 3, 3)
        w[f"upconv{i}.bias"] = _random(nf * (9 if scale == 3 else 4))
    w["conv_hr.weight"], w["conv_hr.bias"] = _random(nf, nf, 3, 3), _random(nf)
    w["conv_last.weight"], w["conv_last.bias"] = _random(channels, nf, 3, 3), _random(channels)
    return w


def msrresnet_forward(w: dict, x: torch.Tensor, scale: int) -> torch.Tensor:
    """BasicSR's ``MSRResNet.forward`` on the RGB LR image."""
    def conv(t, name):
        return F.conv2d(t, w[f"{name}.weight"], w[f"{name}.bias"], padding=1)

    out = F.leaky_relu(conv(x, "conv_first"), 0.1)
    k = 0
    while f"body.{k}.conv1.weight" in w:
        out = out + conv(F.relu(conv(out, f"body.{k}.conv1")), f"body.{k}.conv2")
        k += 1
    for i, factor in enumerate([3] if scale == 3 else [2] * (scale // 2), 1):
        out = F.leaky_relu(F.pixel_shuffle(conv(out, f"upconv{i}"), factor), 0.1)
    out = conv(F.leaky_relu(conv(out, "conv_hr"), 0.1), "conv_last")
    return out + F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)
