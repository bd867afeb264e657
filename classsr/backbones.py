"""More SR backbones for ClassSR's branches: FSRCNN, CARN-M and RCAN, each at any width.

ClassSR (Kong et al., CVPR 2021) accelerates any SR network by running a narrower copy of it on
easier sub-images; its paper reports FSRCNN, CARN, SRResNet and RCAN. The networks here take the
LR image itself (RGB in [0, 1]; FSRCNN and CARN also its Y channel, ``in_channels=1``) and upscale
it by ``scale`` (2, 3 or 4). FSRCNN and CARN are the published networks, layer for layer, so the
public weights of their PyTorch releases run here (``srlab convert --arch fsrcnn`` / ``carn_m``,
``srlab.converters``); ClassSR's own code departs from both (below), and so do its weights.

* ``FSRCNN(d=56, s=12, m=4, scale=4)`` — Dong, Loy, Tang, "Accelerating the Super-Resolution
  Convolutional Neural Network", ECCV 2016: 5x5 feature extraction (d channels), 1x1 shrinking to
  s, m 3x3 mapping layers, 1x1 expanding to d, each followed by a PReLU (one slope per channel),
  then a 9x9 transposed convolution with stride ``scale``. With ``in_channels=1`` (the Y channel,
  as published; 12,809 weights at d 56) this is yjn870/FSRCNN-pytorch's ``FSRCNN`` layer for layer:
  the same PReLUs, zero padding (2 for 5x5, 1 for 3x3) and transposed convolution (padding 4,
  output padding ``scale - 1``, so the output is exactly ``scale`` times the input). The original
  FSRCNN pads nothing (yjn870's README lists "Added the zero-padding" as its difference), and the
  released weights were trained with the padding, as here. ClassSR's widths:
  d = 16 / 36 / 56: 10,843 / 17,763 / 24,683 weights (RGB), 0.022 / 0.036 / 0.050 GFLOPs per 32x32
  LR sub-image at x4 (tested). ClassSR's code (``FSRCNN_net``) departs from the paper: RGB in and
  out; one PReLU slope shared by all channels; no activation between the m mapping convolutions
  (one PReLU after the last); a transposed convolution with padding 3 / output padding 1 (the right
  size at x4 only). Here each layer has its per-channel PReLU as in the paper, the padding symmetric.
* ``CARN(nf=64, scale=4, group=4)`` — CARN-M, the mobile variant of Ahn, Kang, Sohn, "Fast,
  Accurate, and Lightweight Super-Resolution with Cascading Residual Network", ECCV 2018: entry 3x3
  convolution; three cascading blocks, each applying one efficient residual block (grouped 3x3,
  3x3, then 1x1; shared weights) three times with a 1x1 convolution + ReLU over the concatenation
  of everything before it after each; the same cascade over the three blocks; grouped sub-pixel
  upsampling; exit 3x3 convolution; the DIV2K mean subtracted and added back (a buffer, ``mean``).
  This is nmhkahn/CARN-pytorch's ``carn_m.Net`` with one of its upsamplers: its public multi-scale
  file (one body, upsamplers for x2, x3 and x4, 414,811 weights) converts one scale at a time,
  into 257,027 / 303,427 / 294,147 weights at x2 / x3 / x4 (tested); its ``MeanShift`` layers
  (identity 1x1 convolutions, biases -mean and +mean) are our ``mean``. ClassSR uses CARN-M
  (its ``CARN_M``) at widths 36 / 52 / 64: 94,395 / 195,003 / 294,147 weights, 0.38 / 0.77 / 1.15
  GFLOPs per 32x32 LR sub-image at x4 (tested; the paper's CARN-O: 295K, 1.15G). Departure from
  ClassSR's code: its 1x1 cascade convolutions come from a helper (``arch_util.BasicBlock``) that
  adds batch norm and drops the bias by default; CARN has neither change, and neither has this one.
* ``RCAN(nf=64, groups=10, blocks=20, reduction=16, scale=4)`` — Zhang et al., "Image
  Super-Resolution Using Very Deep Residual Channel Attention Networks", ECCV 2018: residual groups
  of residual channel-attention blocks, long and short skips, sub-pixel upsampling, the DIV2K mean
  subtracted and added back. ClassSR's widths: 36 / 50 / 64 (GPU only: 15.6M weights at 64). Its
  channel attention pools each sub-image globally, so a sub-image's result depends on its extent
  (as in the original code, which runs RCAN on sub-images too).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srlab.network import InputConvention, Network

DIV2K_MEAN = (0.4488, 0.4371, 0.4040)


def shuffle_factors(scale: int) -> list[int]:
    """The pixel-shuffle steps of a sub-pixel upsampler: x2 steps for x2 / x4, one x3 step for x3."""
    return [3] if scale == 3 else [2] * (scale // 2)


def _mean(in_channels: int) -> torch.Tensor:
    """``(1, C, 1, 1)``: what CARN and RCAN subtract from the input and add back to the output."""
    return torch.tensor(DIV2K_MEAN if in_channels == 3 else (0.5,) * in_channels).view(1, -1, 1, 1)


def _check(scale: int, width: int, name: str) -> None:
    if scale not in (2, 3, 4):
        raise ValueError(f"scale must be 2, 3 or 4, got {scale}")
    if width < 1:
        raise ValueError(f"{name} must be >= 1, got {width}")


class FSRCNN(Network):
    def __init__(self, d: int = 56, s: int = 12, m: int = 4, scale: int = 4, in_channels: int = 3):
        super().__init__()
        _check(scale, d, "d")
        if s < 1 or m < 0:
            raise ValueError(f"s must be >= 1 and m >= 0, got {s}, {m}")
        self.scale, self.in_channels = scale, in_channels
        self.input_convention = InputConvention.lr(in_channels)

        def conv(cin: int, cout: int, k: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, k, padding=k // 2), nn.PReLU(cout)]

        layers = conv(in_channels, d, 5) + conv(d, s, 1)
        for _ in range(m):
            layers += conv(s, s, 3)
        self.body = nn.Sequential(*layers, *conv(s, d, 1))
        self.deconv = nn.ConvTranspose2d(d, in_channels, 9, stride=scale, padding=4, output_padding=scale - 1)
        for module in self.body:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, a=0.25)  # He for PReLU's initial slope (the paper)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.deconv.weight, std=1e-3)  # the paper's initialisation of the deconvolution
        nn.init.zeros_(self.deconv.bias)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.body(lr))


class EfficientResidualBlock(nn.Module):
    """CARN-M's residual block: grouped 3x3, ReLU, grouped 3x3, ReLU, 1x1, plus the input, ReLU."""

    def __init__(self, nf: int, group: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(nf, nf, 3, padding=1, groups=group), nn.ReLU(inplace=True),
            nn.Conv2d(nf, nf, 3, padding=1, groups=group), nn.ReLU(inplace=True),
            nn.Conv2d(nf, nf, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + x)


class Cascade(nn.Module):
    """``step`` applied three times; after each, a 1x1 convolution + ReLU over the concatenation of
    the input and every output so far (CARN's local and global cascading)."""

    def __init__(self, nf: int, steps: list[nn.Module]):
        super().__init__()
        self.steps = nn.ModuleList(steps)
        self.joins = nn.ModuleList(nn.Sequential(nn.Conv2d(nf * (i + 2), nf, 1), nn.ReLU(inplace=True))
                                   for i in range(len(steps)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stacked, out = x, x
        for step, join in zip(self.steps, self.joins):
            stacked = torch.cat([stacked, step(out)], dim=1)
            out = join(stacked)
        return out


class CARN(Network):
    def __init__(self, nf: int = 64, scale: int = 4, group: int = 4, blocks: int = 3, in_channels: int = 3):
        super().__init__()
        _check(scale, nf, "nf")
        if nf % group or blocks < 1:
            raise ValueError(f"nf must be a multiple of group and blocks >= 1, got nf {nf}, group {group}, "
                             f"blocks {blocks}")
        self.scale, self.in_channels = scale, in_channels
        self.input_convention = InputConvention.lr(in_channels)
        self.register_buffer("mean", _mean(in_channels))
        self.entry = nn.Conv2d(in_channels, nf, 3, padding=1)

        def block() -> Cascade:
            shared = EfficientResidualBlock(nf, group)  # CARN-M reuses one residual block three times
            return Cascade(nf, [shared, shared, shared])

        self.body = Cascade(nf, [block() for _ in range(blocks)])
        factors = shuffle_factors(scale)
        self.upsample = nn.Sequential(*[m for f in factors for m in (
            nn.Conv2d(nf, nf * f * f, 3, padding=1, groups=group), nn.ReLU(inplace=True), nn.PixelShuffle(f))])
        self.exit = nn.Conv2d(nf, in_channels, 3, padding=1)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.exit(self.upsample(self.body(self.entry(lr - self.mean)))) + self.mean


class ChannelAttentionBlock(nn.Module):
    """RCAN's RCAB: conv, ReLU, conv, scaled by channel attention (global pool, squeeze, excite), plus the input."""

    def __init__(self, nf: int, reduction: int):
        super().__init__()
        squeezed = max(1, nf // reduction)
        self.body = nn.Sequential(nn.Conv2d(nf, nf, 3, padding=1), nn.ReLU(inplace=True),
                                  nn.Conv2d(nf, nf, 3, padding=1))
        self.attention = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(nf, squeezed, 1), nn.ReLU(inplace=True),
                                       nn.Conv2d(squeezed, nf, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return x + out * self.attention(out)


class ResidualGroup(nn.Module):
    def __init__(self, nf: int, blocks: int, reduction: int):
        super().__init__()
        self.body = nn.Sequential(*[ChannelAttentionBlock(nf, reduction) for _ in range(blocks)],
                                  nn.Conv2d(nf, nf, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class RCAN(Network):
    def __init__(self, nf: int = 64, groups: int = 10, blocks: int = 20, reduction: int = 16, scale: int = 4,
                 in_channels: int = 3):
        super().__init__()
        _check(scale, nf, "nf")
        if groups < 1 or blocks < 1 or reduction < 1:
            raise ValueError(f"groups, blocks and reduction must be >= 1, got {groups}, {blocks}, {reduction}")
        self.scale, self.in_channels = scale, in_channels
        self.input_convention = InputConvention.lr(in_channels)
        self.register_buffer("mean", _mean(in_channels))
        self.head = nn.Conv2d(in_channels, nf, 3, padding=1)
        self.body = nn.Sequential(*[ResidualGroup(nf, blocks, reduction) for _ in range(groups)],
                                  nn.Conv2d(nf, nf, 3, padding=1))
        factors = shuffle_factors(scale)
        self.upsample = nn.Sequential(*[m for f in factors for m in (
            nn.Conv2d(nf, nf * f * f, 3, padding=1), nn.PixelShuffle(f))])
        self.tail = nn.Conv2d(nf, in_channels, 3, padding=1)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        x = self.head(lr - self.mean)
        return self.tail(self.upsample(x + self.body(x))) + self.mean

