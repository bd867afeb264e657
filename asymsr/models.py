"""VDSR and Asym-VDSR: 20-layer residual networks on the bicubic-upscaled image.

VDSR -- Kim, Lee, Lee, "Accurate Image Super-Resolution Using Very Deep Convolutional Networks",
CVPR 2016. 20 conv layers of 64 channels, 3x3, zero padding 1, ReLU after all but the last;
the first layer maps the input (the Y channel) to 64 channels, the last maps 64 back to 1; the
network predicts the residual added to its input. Without biases: 664,704 weights.
``VDSR(in_channels=1, bias=False)`` (the defaults) is twtygqyy/pytorch-vdsr's ``vdsr.Net`` layer
for layer (``input`` -> ``head``, ``residual_layer.k.conv`` -> ``body.2k``, ``output`` -> ``tail``;
the same ReLUs, padding and global residual), so its public paper-scale weights run here:
``srlab convert --arch vdsr`` (``srlab.converters``; the file is a legacy whole-model pickle, read
without running it) and ``srlab test --checkpoint`` (table in asymsr/README.md).

Asym-VDSR keeps the first and last layers and replaces each of the 18 middle 3x3 convs by a 3x1
conv followed directly by a 1x3 conv, ReLU after the pair: 443,520 weights, 2/3 of the
multiply-adds. With ``bias=True`` each pair gets one bias, after the 1x3 conv: a bias between
the two linear convs would add nothing in the interior, and at the left/right borders the 1x3
conv's zero padding would see 0 instead of that bias, so the pair would no longer equal one
3x3 conv there. With it after the pair, ``AsymVDSR.fuse()`` is exact, borders included.

Both take ``(B, C, H, W)`` in [0, 1] with C = ``in_channels`` (1: the Y channel, the paper; 3:
RGB) at the HR size and return the same shape. He initialisation (``kaiming_normal_``, fan-in)
for every layer that a ReLU follows and for the last layer; the 3x1 conv of a pair has gain 1
(no ReLU after it), so that a pair keeps the activation variance a 3x3 conv with He init keeps.
``tail_init="zero"`` (not in the paper) zeroes the last layer so the network starts as bicubic;
the few-minute CPU configs use it.

Inference speed (see ``scripts/benchmark_asymsr.py``): on a CPU the asymmetric convolutions only
pay off in channels-last memory format (``test.channels_last``, on by default) and with the
allocator tuned (``srlab.device.tune_cpu_allocator``); then the factorized form beats the fused
one. ``AsymVDSR.for_inference`` gives the form ``inference_form`` names.
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from srlab.network import InputConvention, Network


def _conv(cin: int, cout: int, kernel: tuple[int, int], bias: bool) -> nn.Conv2d:
    padding = (kernel[0] // 2, kernel[1] // 2)
    return nn.Conv2d(cin, cout, kernel, padding=padding, bias=bias)


def _check_options(in_channels: int, channels: int, num_layers: int) -> None:
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 (Y) or 3 (RGB), got {in_channels}")
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    if num_layers < 3:
        raise ValueError(f"num_layers must be >= 3, got {num_layers}")


def _he_init(conv: nn.Conv2d, gain_relu: bool = True) -> None:
    nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="relu" if gain_relu else "linear")
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)


class _ResidualSR(Network):
    """First conv + ReLU, ``body``, last conv; output = input + residual. It takes the
    bicubic-upscaled image (Y or RGB), so it works at any scale."""

    def __init__(self, body: nn.Sequential, in_channels: int, channels: int, bias: bool, tail_init: str):
        super().__init__()
        self.input_convention = InputConvention.bicubic_upscale(in_channels)
        self.scale = None
        self.head = _conv(in_channels, channels, (3, 3), bias)
        self.body = body
        self.tail = _conv(channels, in_channels, (3, 3), bias)
        _he_init(self.head)
        _he_init(self.tail)
        if tail_init == "zero":  # start as the identity (bicubic): short runs converge much faster
            nn.init.zeros_(self.tail.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.tail(self.body(torch.relu(self.head(x))))
        return x + residual


class VDSR(_ResidualSR):
    """VDSR (Kim et al., CVPR 2016). Default: 20 layers, 64 channels, Y input, no biases: 664,704 parameters."""

    def __init__(self, in_channels: int = 1, channels: int = 64, num_layers: int = 20, bias: bool = False,
                 tail_init: Literal["he", "zero"] = "he"):
        _check_options(in_channels, channels, num_layers)
        layers = []
        for _ in range(num_layers - 2):
            conv = _conv(channels, channels, (3, 3), bias)
            _he_init(conv)
            layers += [conv, nn.ReLU(inplace=True)]
        super().__init__(nn.Sequential(*layers), in_channels, channels, bias, tail_init)


class AsymVDSR(_ResidualSR):
    """Asym-VDSR: VDSR with each middle 3x3 conv as 3x1 then 1x3. Default: 443,520 parameters."""

    def __init__(self, in_channels: int = 1, channels: int = 64, num_layers: int = 20, bias: bool = False,
                 tail_init: Literal["he", "zero"] = "he",
                 inference_form: Literal["factorized", "fused"] = "factorized"):
        _check_options(in_channels, channels, num_layers)
        self.inference_form = inference_form
        layers = []
        for _ in range(num_layers - 2):
            vertical = _conv(channels, channels, (3, 1), False)
            horizontal = _conv(channels, channels, (1, 3), bias)
            _he_init(vertical, gain_relu=False)
            _he_init(horizontal)
            layers += [vertical, horizontal, nn.ReLU(inplace=True)]
        super().__init__(nn.Sequential(*layers), in_channels, channels, bias, tail_init)
        self.config = dict(in_channels=in_channels, channels=channels, num_layers=num_layers, bias=bias)

    def for_inference(self) -> nn.Module:
        """The form to evaluate with: ``inference_form`` says which; ``scripts/benchmark_asymsr.py``
        measures both on a device (on our 2-core CPU, channels-last, the factorized form wins)."""
        return self.fuse() if self.inference_form == "fused" else self

    @torch.no_grad()
    def fuse(self) -> VDSR:
        """An equivalent VDSR: each 3x1 -> 1x3 pair becomes one 3x3 conv.

        (W2 * (W1 * x))[o] = sum over c, m of W2[o, m, 0, j] W1[m, c, i, 0] x[c] shifted by (i, j),
        so the 3x3 kernel is K[o, c, i, j] = sum_m W2[o, m, 0, j] W1[m, c, i, 0]. Zero padding
        agrees too: a zero-padded column of the 3x1 output is the 3x1 conv of zero-padded input.
        """
        fused = VDSR(**self.config).to(self.head.weight.device, self.head.weight.dtype)
        fused.head.load_state_dict(self.head.state_dict())
        fused.tail.load_state_dict(self.tail.state_dict())
        pairs = [m for m in self.body if isinstance(m, nn.Conv2d)]
        targets = [m for m in fused.body if isinstance(m, nn.Conv2d)]
        for (vertical, horizontal), target in zip(zip(pairs[0::2], pairs[1::2]), targets):
            w1 = vertical.weight[:, :, :, 0]  # (mid, in, 3): i
            w2 = horizontal.weight[:, :, 0, :]  # (out, mid, 3): j
            target.weight.copy_(torch.einsum("omj,mci->ocij", w2.double(), w1.double()))
            if horizontal.bias is not None:
                target.bias.copy_(horizontal.bias)
        return fused.train(self.training)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
