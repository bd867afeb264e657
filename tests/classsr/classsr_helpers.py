"""What several ClassSR test files share."""
import json

import torch
from conftest import REPO
from torch import nn

from srlab.classsr.infer import Router, split, stitch
from srlab.data import resolve_files

CONFIGS = REPO / "configs" / "classsr"


O_CPU = CONFIGS / "msrresnet_o_x4_cpu.yaml"  # the base the stage tests override


def write_fake_split(path, scale: int = 4) -> list:
    """A class split of the embedded training images: one 16-px LR sub-image per image, class i % 3."""
    files = resolve_files("skimage_train", None, "train")
    rows = [[i, 0, 0, 30.0 + i, i % 3] for i in range(len(files))]
    path.write_text(json.dumps({"scale": scale, "lr_size": 16, "step": 16, "n_classes": 3,
                                "images": [str(f) for f in files], "sub_images": rows}))
    return files


def n_params(model):
    return sum(p.numel() for p in model.parameters())


class FixedClass(Router):
    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, x):
        return nn.functional.one_hot(torch.full((x.shape[0],), self.k), 3).float()


def one_at_a_time(branch, lr, grid, scale, blend="mean"):
    """The routed result written out sub-image by sub-image: each ragged edge one cut to the image."""
    heights, widths = grid.sides()
    side = grid.size * scale
    outs = []
    for i, tile in enumerate(split(lr, grid).split(1)):
        h, w = heights[i // grid.cols], widths[i % grid.cols]
        outs.append(nn.functional.pad(branch(tile[..., :h, :w]), (0, side - w * scale, 0, side - h * scale)))
    return stitch(torch.cat(outs), grid, scale, blend)

