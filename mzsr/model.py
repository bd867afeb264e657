"""The MZSR / ZSSR network.

Soh, Cho, Cho, "Meta-Transfer Learning for Zero-Shot Super-Resolution", CVPR 2020.
Eight 3x3 convolutions with biases (3->64, six 64->64, 64->3), ReLU after the first seven, and
a global residual: the input is the LR image bicubic-upscaled to the HR size (RGB in [0, 1]) and
the network adds its correction to it. Default construction = the paper's model, 225,091
parameters. ``channels`` / ``num_layers`` make smaller variants for CPU demos.
"""
from __future__ import annotations

import torch
from torch import nn

from srlab.network import InputConvention, Network


class MZSRNet(Network):
    def __init__(self, channels: int = 64, num_layers: int = 8, in_channels: int = 3):
        super().__init__()
        if num_layers < 2:
            raise ValueError(f"num_layers must be >= 2, got {num_layers}")
        widths = [in_channels] + [channels] * (num_layers - 1) + [in_channels]
        layers: list[nn.Module] = []
        for i in range(num_layers):
            layers.append(nn.Conv2d(widths[i], widths[i + 1], 3, padding=1))
            if i < num_layers - 1:
                layers.append(nn.ReLU(inplace=True))
        self.input_convention = InputConvention.bicubic_upscale(in_channels)
        self.scale = None  # it takes the bicubic upscale: any scale
        self.body = nn.Sequential(*layers)
        for m in self.body:
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        # Start as the identity (bicubic): the last layer's output is the residual.
        nn.init.zeros_(self.body[-1].weight)

    def forward(self, upscaled: torch.Tensor) -> torch.Tensor:
        return upscaled + self.body(upscaled)
