"""ClassSR's networks: the Class-Module and the SR branches.

Kong, Li, Qiao, Dong, "ClassSR: A General Framework to Accelerate Super-Resolution Networks by
Data Characteristic", CVPR 2021. The branches are one backbone at three widths (``BACKBONES``):
MSRResNet (Wang et al., BasicSR: SRResNet without batch norm) here, FSRCNN, CARN-M and RCAN in
``srlab.classsr.backbones``.

* ``Classifier()``: conv 3->128 (4x4, stride 4) + LeakyReLU(0.1), three 1x1 convs 128->128 +
  LeakyReLU(0.1), 1x1 conv 128->32, global average pooling, linear 32->3. 60,035 parameters.
  Returns class logits ``(B, 3)`` for LR sub-images ``(B, 3, h, w)``.
* ``MSRResNet(nf=64, nb=16, scale=4)``: conv, ``nb`` residual blocks (conv-ReLU-conv), pixel-shuffle
  upsampling (x2 steps for x2/x4, one x3 step for x3), HR conv, output conv, plus the bilinearly
  upscaled input. Takes the LR image itself in [0, 1]. At x4: nf 36 / 52 / 64 = 481,683 /
  1,002,771 / 1,517,571 parameters, 1.66 / 3.44 / 5.20 GFLOPs per 32x32 LR sub-image.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from srlab.classsr.backbones import CARN, FSRCNN, RCAN, shuffle_factors
from srlab.classsr.infer import Blend, Router, check_blend, route_and_upscale
from srlab.config import Count
from srlab.network import InputConvention, Network


class Classifier(Router):
    def __init__(self, in_channels: int = 3, width: int = 128, num_classes: int = 3):
        super().__init__()
        if width < 1 or num_classes < 2:
            raise ValueError(f"width must be >= 1 and num_classes >= 2, got {width}, {num_classes}")
        act = lambda: nn.LeakyReLU(0.1, inplace=True)  # noqa: E731
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 4, stride=4), act(),
            nn.Conv2d(width, width, 1), act(),
            nn.Conv2d(width, width, 1), act(),
            nn.Conv2d(width, width, 1), act(),
            nn.Conv2d(width, 32, 1),
        )
        self.fc = nn.Linear(32, num_classes)

    stride = 4  # the first convolution's; the rest are 1x1

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(lr).mean(dim=(-2, -1)))

    def runs_once(self, size: int, step: int) -> bool:
        return size % self.stride == 0 and step % self.stride == 0

    def tile_logits(self, image: torch.Tensor, size: int, step: int) -> torch.Tensor | None:
        """Logits of every ``size`` sub-image ``step`` apart of ``image (1, C, H, W)``, from one pass
        over the whole image: the features are local (a 4x4 stride-4 convolution, then 1x1 ones), so
        a sub-image's mean feature is the mean over its cells of the whole image's, exactly. None when
        ``size`` or ``step`` is not a multiple of the stride (then classify sub-image by sub-image)."""
        if not self.runs_once(size, step):
            return None
        cells = F.avg_pool2d(self.features(image), size // self.stride, step // self.stride)  # (1, 32, rows, cols)
        return self.fc(cells.flatten(2)[0].T)


class ResidualBlock(nn.Module):
    """conv-ReLU-conv plus the input, no batch norm."""

    def __init__(self, nf: int):
        super().__init__()
        self.conv1 = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv2 = nn.Conv2d(nf, nf, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))


class MSRResNet(Network):
    def __init__(self, nf: int = 64, nb: Count = 16, scale: int = 4, in_channels: int = 3):
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"scale must be 2, 3 or 4, got {scale}")
        if nf < 1 or nb < 0:
            raise ValueError(f"nf must be >= 1 and nb >= 0, got {nf}, {nb}")
        self.scale = scale
        self.in_channels = in_channels
        self.input_convention = InputConvention.lr(in_channels)
        self.conv_first = nn.Conv2d(in_channels, nf, 3, padding=1)
        self.body = nn.Sequential(*[ResidualBlock(nf) for _ in range(nb)])
        steps = shuffle_factors(scale)
        self.upsample = nn.ModuleList(nn.Conv2d(nf, nf * s * s, 3, padding=1) for s in steps)
        self.shuffle_factors = steps
        self.conv_hr = nn.Conv2d(nf, nf, 3, padding=1)
        self.conv_last = nn.Conv2d(nf, in_channels, 3, padding=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                # BasicSR's initialisation: He-normal scaled by 0.1, so the residual blocks start
                # close to the identity and the network close to bilinear upscaling.
                nn.init.kaiming_normal_(m.weight)
                m.weight.data.mul_(0.1)
                nn.init.zeros_(m.bias)

    @staticmethod
    def to_basicsr(state: dict) -> dict:
        """This network's state dict with BasicSR's key names (``msrresnet_to_basicsr``)."""
        return msrresnet_to_basicsr(state)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        feat = F.leaky_relu(self.conv_first(lr), 0.1)
        out = self.body(feat)
        for conv, s in zip(self.upsample, self.shuffle_factors):
            out = F.leaky_relu(F.pixel_shuffle(conv(out), s), 0.1)
        out = self.conv_last(F.leaky_relu(self.conv_hr(out), 0.1))
        return out + F.interpolate(lr, scale_factor=self.scale, mode="bilinear", align_corners=False)


# BasicSR names MSRResNet's upsampling convolutions upconv1/upconv2 (basicsr/archs/srresnet_arch.py);
# every other name, shape and the forward pass are the same.
_BASICSR_NAMES = {"upsample.0.": "upconv1.", "upsample.1.": "upconv2."}


def msrresnet_to_basicsr(state: dict) -> dict:
    """An ``MSRResNet`` state dict with BasicSR's key names (to load into BasicSR's MSRResNet)."""
    return {_rename(k, _BASICSR_NAMES): v for k, v in state.items()}


def msrresnet_from_basicsr(state: dict) -> dict:
    """A BasicSR MSRResNet state dict (``params`` of its .pth) with this project's key names."""
    return {_rename(k, {b: a for a, b in _BASICSR_NAMES.items()}): v for k, v in state.items()}


def _rename(key: str, prefixes: dict[str, str]) -> str:
    return next((new + key[len(old):] for old, new in prefixes.items() if key.startswith(old)), key)


class ClassSR(Network):
    """The Class-Module and one branch per class: ``backbone`` (msrresnet, fsrcnn, carn, rcan) at each
    of ``widths`` (the paper's: MSRResNet and CARN 36 / 52 / 64, FSRCNN 16 / 36 / 56, RCAN 36 / 50 /
    64), ``nb`` deep.

    ``forward(lr)`` (training, on sub-images): the class-probability-weighted sum of all branch
    outputs, so the classifier gets gradients; ``weighted(lr)`` also returns the probabilities.
    ``upscale(lr)`` (testing, one whole image): each sub-image goes to the branch of its most
    likely class only (``srlab.classsr.infer.route_and_upscale``).
    """

    def __init__(self, widths: list[int] = (36, 52, 64), nb: Count | None = None, scale: int = 4,
                 classifier_width: int = 128, tile: int = 32, step: int = 28, max_tiles: int = 256,
                 route_bias: float = 0.0, backbone: str = "msrresnet", blend: Blend = "mean"):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, got {backbone!r}")
        if len(widths) < 2:
            raise ValueError(f"widths must list at least two branch widths, got {list(widths)}")
        # A sub-image is a small patch (the paper's: 32x32); the bounds keep a bad config or checkpoint
        # from asking for a canvas of terabytes.
        if not 0 < step <= tile <= 1024 or not 1 <= max_tiles <= 65536:
            raise ValueError(f"need 0 < step <= tile <= 1024 and 1 <= max_tiles <= 65536, got tile {tile}, "
                             f"step {step}, max_tiles {max_tiles}")
        self.scale, self.tile, self.step, self.max_tiles = scale, tile, step, max_tiles
        # The test-time knob: route_bias x k is added to class k's logit (> 0: wider branches).
        self.route_bias = route_bias
        self.blend = check_blend(blend)  # how the sub-images' overlaps are joined (srlab.classsr.infer.stitch)
        self.input_convention = InputConvention.RGB_LR
        self.classifier = Classifier(width=classifier_width, num_classes=len(widths))
        self.backbone = backbone
        make_branch = BACKBONES[backbone]
        self.branches = nn.ModuleList(make_branch(width, nb, scale) for width in widths)

    def weighted(self, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probs = torch.softmax(self.classifier(lr), dim=1)
        outs = torch.stack([branch(lr) for branch in self.branches], dim=1)  # (B, M, C, H, W)
        return (probs[:, :, None, None, None] * outs).sum(dim=1), probs

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        return self.weighted(lr)[0]

    def upscale(self, lr: torch.Tensor, route_bias: float | None = None, classifier: nn.Module | None = None):
        """SR of one image ``(1, 3, H, W)``, the class of each of its sub-images, and their grid
        (``srlab.classsr.infer.Grid``). ``route_bias`` (default: ``self.route_bias``) and ``classifier``
        (default: the Class-Module; e.g. ``srlab.classsr.edge_router.EdgeRouter``) change the routing."""
        bias = self.route_bias if route_bias is None else route_bias
        return route_and_upscale(classifier or self.classifier, self.branches, lr, self.scale, self.tile, self.step,
                                 self.max_tiles, bias, self.blend)

    @property
    def widest(self) -> int:
        """Index of the branch with the most weights: the one the "-O" network matches."""
        sizes = [sum(p.numel() for p in branch.parameters()) for branch in self.branches]
        return sizes.index(max(sizes))


def _fsrcnn(width: int, depth: int | None, scale: int) -> nn.Module:
    return FSRCNN(d=width, m=4 if depth is None else depth, scale=scale)


def _carn(width: int, depth: int | None, scale: int) -> nn.Module:
    return CARN(nf=width, blocks=3 if depth is None else depth, scale=scale)


def _rcan(width: int, depth: int | None, scale: int) -> nn.Module:
    return RCAN(nf=width, groups=10 if depth is None else depth, scale=scale)


# ClassSR's branch networks: width (channels) -> network. ``nb`` in the config is each one's depth:
# MSRResNet's residual blocks (16), FSRCNN's mapping layers m (4), CARN's cascading blocks (3),
# RCAN's residual groups (10, of 20 blocks each).
BACKBONES = {
    "msrresnet": lambda width, depth, scale: MSRResNet(nf=width, nb=16 if depth is None else depth, scale=scale),
    "fsrcnn": _fsrcnn,
    "carn": _carn,
    "rcan": _rcan,
}
