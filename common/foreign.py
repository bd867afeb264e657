"""Other projects' networks, through spandrel: ESRGAN / Real-ESRGAN, SwinIR, HAT, SPAN, ... in srlab.

    method, network, card = load("RealESRGAN_x4plus.pth")        # srlab.loading.load calls load_foreign

A file that is not an srlab checkpoint (no card, no config inside) goes to spandrel
(https://github.com/chaiNNer-org/spandrel), the model loader chaiNNer and many upscalers use: it
recognises the architecture from the weights' names and shapes and builds the network. srlab
then runs it as any network that takes the RGB LR image: ``srlab upscale`` with its tiles,
``srlab test --checkpoint`` with the literature's protocol, ``srlab.api``. srlab never guesses an
architecture itself. The file is read as srlab reads every file (``torch.load(weights_only=True)``
or safetensors): nothing in it runs.

The card says what spandrel found: ``architecture`` ``spandrel:<id>`` (e.g. ``spandrel:ESRGAN``),
the RGB LR input, the model's one scale, method ``supervised``, and in ``provenance`` spandrel's
version, the architecture's name and the file's name and SHA-256. Only super-resolution models
with RGB in and out are taken (not restoration-only, inpainting or greyscale models): one line
says why otherwise.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from srlab.card import NetworkCard
from srlab.config import Config, TrainConfig
from srlab.errors import UserError
from srlab.method import Method, Supervised
from srlab.network import InputConvention, Network
from srlab.provenance import sha256


class ForeignNetwork(Network):
    """A network spandrel built, run as spandrel runs it (padded to the sizes it needs, output
    clamped to [0, 1]); it takes the RGB LR image and upscales it by ``scale``."""

    def __init__(self, descriptor: Any):
        super().__init__()
        self.model = descriptor.model
        self.descriptor = descriptor  # a plain attribute: its model is the submodule above
        self.scale = descriptor.scale
        self.in_channels = 3
        self.input_convention = InputConvention.RGB_LR

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.descriptor(lr)


def load_foreign(path: str | Path, state: dict[str, Any]) -> tuple[Method, ForeignNetwork, NetworkCard]:
    """``path``'s tensors ``state`` (not an srlab checkpoint) as spandrel's network: ``(method,
    network, card)`` as ``srlab.loading.load`` returns them."""
    try:
        import spandrel
    except ImportError:
        raise UserError(f"{path}: not an srlab checkpoint (no network card or config inside); networks of other "
                        f"projects load through spandrel: pip install spandrel") from None
    try:
        descriptor = spandrel.ModelLoader("cpu").load_from_state_dict(state)
    except spandrel.UnsupportedModelError:
        raise UserError(f"{path}: not an srlab checkpoint (no network card or config inside), and not a network "
                        f"spandrel {spandrel.__version__} recognises; for VDSR, FSRCNN, CARN-M and MZSR files "
                        f"see srlab convert") from None
    except Exception as exc:  # spandrel's detection matched, then the weights did not fit its network
        reason = str(exc).strip().split("\n")[0][:200] or type(exc).__name__
        raise UserError(f"{path}: spandrel took it for a network it knows, but could not build it ({reason})") from None
    name = f"{descriptor.architecture.name} ({descriptor.purpose}, x{descriptor.scale})"
    if not isinstance(descriptor, spandrel.ImageModelDescriptor) or descriptor.purpose != "SR" or descriptor.scale < 2:
        raise UserError(f"{path}: a {name} model; srlab runs super-resolution networks (x2 or more)")
    if (descriptor.input_channels, descriptor.output_channels) != (3, 3):
        raise UserError(f"{path}: a {name} model with {descriptor.input_channels} input and "
                        f"{descriptor.output_channels} output channels; srlab runs RGB networks (3 and 3)")
    network = ForeignNetwork(descriptor)
    card = NetworkCard(
        architecture=f"spandrel:{descriptor.architecture.id}", arguments={}, input=InputConvention.RGB_LR,
        scales=(descriptor.scale,), method="supervised", adapts=False,
        provenance={"loaded_by": f"spandrel {spandrel.__version__}", "architecture": descriptor.architecture.name,
                    "source": Path(path).name, "sha256": sha256(path)})
    cfg = Config(method="supervised", model={"type": card.architecture},
                 train=TrainConfig(scales=[descriptor.scale]))
    method = Supervised.for_inference(cfg, lambda: network)
    method.build_model()  # takes the network's input convention
    return method, network, card
