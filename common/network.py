"""What every network srlab builds declares about itself: what it takes, and at which scale.

A network class subclasses ``Network`` and sets, in its ``__init__``:

* ``input_convention``: an ``InputConvention`` (VDSR: the Y channel of the bicubic upscale;
  MSRResNet: the RGB LR image), from which methods know how to call it and how to train it;
* ``scale``: its one upscaling factor when it upsamples inside (MSRResNet, FSRCNN, CARN,
  ClassSR), or ``None`` when it takes the bicubic upscale and so works at any scale (VDSR, MZSR's
  network).

It may override ``for_inference`` to return an equivalent, faster network (Asym-VDSR fuses its
3x1 and 1x3 convolutions when that is faster). These declarations go into the network card
(``srlab.card``) of every checkpoint; code that runs a loaded network reads the card.
"""
from __future__ import annotations

import enum

from torch import nn


class InputConvention(enum.Enum):
    """What a network takes, in [0, 1]."""

    Y_OF_BICUBIC_UPSCALE = "y_of_bicubic_upscale"
    RGB_BICUBIC_UPSCALE = "rgb_bicubic_upscale"
    RGB_LR = "rgb_lr"
    Y_OF_LR = "y_of_lr"

    @classmethod
    def lr(cls, channels: int) -> InputConvention:
        """The LR image itself: its Y channel (1 channel) or RGB (3)."""
        return {1: cls.Y_OF_LR, 3: cls.RGB_LR}[_checked(channels)]

    @classmethod
    def bicubic_upscale(cls, channels: int) -> InputConvention:
        """The bicubic upscale: its Y channel (1 channel) or RGB (3)."""
        return {1: cls.Y_OF_BICUBIC_UPSCALE, 3: cls.RGB_BICUBIC_UPSCALE}[_checked(channels)]

    @property
    def upsampled(self) -> bool:
        """The LR image is MATLAB-bicubic upscaled to the output size before the network sees it."""
        return self in (InputConvention.Y_OF_BICUBIC_UPSCALE, InputConvention.RGB_BICUBIC_UPSCALE)

    @property
    def y_channel(self) -> bool:
        """The network sees the Y channel only; the output's Cb/Cr come from the bicubic upscale."""
        return self in (InputConvention.Y_OF_BICUBIC_UPSCALE, InputConvention.Y_OF_LR)

    @property
    def channels(self) -> int:
        return 1 if self.y_channel else 3

    def describe(self) -> str:
        """In words, for people and for the metadata of exported files."""
        return ("the MATLAB-bicubic-upscaled " if self.upsampled else "the LR ") + (
            "Y channel (BT.601)" if self.y_channel else "RGB image")


def _checked(channels: int) -> int:
    if channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 (the Y channel) or 3 (RGB), got {channels}")
    return channels


class Network(nn.Module):
    """Base class of every network in ``srlab.registry.MODELS``."""

    input_convention: InputConvention
    scale: int | None

    def for_inference(self) -> nn.Module:
        """An equivalent network that runs faster, or ``self``."""
        return self
