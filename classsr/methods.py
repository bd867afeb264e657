"""ClassSR's training stages as methods of the shared runner.

* ``BranchOnClass`` (``method: classsr_branch``, stage 1): one SR branch trained like any
  supervised network, on the sub-images of one class only (``options.split`` from
  ``scripts/prepare_classsr.py``, ``options.branch_class``: 0 = easiest), from scratch or from a
  same-width checkpoint (``options.init``).

* ``ClassSRMethod`` (``method: classsr``, stages 2 and 3): the whole network on LR sub-images,
  loss = 2000 x L1(probability-weighted SR, HR) + Class-Loss + 6 x Average-Loss. Stage 2 loads
  the branches (``options.branches``) and freezes them; stage 3 loads the stage-2 network
  (``options.init``) and trains everything. The share of sub-images per class is logged
  (``train/class_share/k``) and a collapse towards one class is warned about.
  At test time each sub-image goes to one branch (``ClassSR.upscale``); ``test.py`` also times the
  "-O" network on the whole image and on the same sub-images, and ``visuals`` draws the class map.
"""
from __future__ import annotations

import copy
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from srlab.checkpoint import load_model_file, save_json
from srlab.classsr.cost import cost_tables, format_cost_tables, plot_curves
from srlab.classsr.edge_router import EdgeRouter
from srlab.classsr.infer import class_map, classifier_flops, make_grid, routed_flops, upscale_tiled
from srlab.classsr.losses import average_loss, class_loss
from srlab.classsr.models import ClassSR
from srlab.classsr.prepare import class_regions, read_split
from srlab.config import Config, FilePath
from srlab.errors import ConfigError
from srlab.method import Output, Row, Supervised


@dataclass
class BranchOptions:
    split: FilePath  # JSON written by scripts/prepare_classsr.py
    branch_class: int  # which class's sub-images this branch learns (0 = easiest)
    init: FilePath | None = None  # start from this checkpoint of the same width (e.g. the "-O" network)


class BranchOnClass(Supervised):
    name = "classsr_branch"
    runs_as = "supervised"  # once trained on its class, a branch is a plain network
    Options = BranchOptions
    resume_free_options = ("init",)

    @property
    def row_name(self) -> str:
        return f"{self.cfg.model.get('type', 'branch')}_class{self.options.branch_class}"

    def __init__(self, cfg: Config, model_factory: Callable[[], nn.Module]):
        super().__init__(cfg, model_factory)
        self.split = read_split(self.options.split)

    def build_model(self) -> nn.Module:
        model = super().build_model()
        if self.options.init:
            load_model_file(model, self.options.init, "options.init")
        return model

    def training_regions(self, files: list[Path]) -> np.ndarray:
        return class_regions(self.split, files, self.scales[0], self.options.branch_class, "options.split")


@dataclass
class Routing:
    """Test-time routing (``ClassSR``'s arguments) that a checkpoint may recommend. It is chosen
    after training (the route bias on training images), so training writes none; the shipped
    weights carry theirs, and ``srlab upscale`` then routes as ``srlab test`` with their test
    config does. None: the network's own argument."""

    tile: int | None = None
    step: int | None = None
    route_bias: float | None = None
    blend: Literal["mean", "linear"] | None = None


@dataclass
class ClassSROptions:
    branches: list[FilePath] = field(default_factory=list)  # stage-1 checkpoints, one per branch (stage 2)
    init: FilePath | None = None  # a stage-2 checkpoint of the whole ClassSR network (stage 3)
    freeze_branches: bool = True  # stage 2: only the Class-Module learns; stage 3: false
    l1_weight: float = 2000.0  # the paper's loss weights
    class_weight: float = 1.0
    average_weight: float = 6.0
    collapse_share: float = 0.9  # warn when one class takes more than this share of the sub-images
    baseline: FilePath | None = None  # test: the "-O" MSRResNet checkpoint (default: the widest branch alone)
    # test: one "ClassSR bias b" row per value (model.route_bias, the quality/cost knob), and the
    # PSNR-vs-FLOPs curve they make (curve_*.png / cost.json in the test folder)
    route_biases: list[float] = field(default_factory=list)
    # test: the training-free edge router's thresholds (scripts/prepare_classsr.py prints them
    # fitted on the training split); adds "edge router" rows, one per route_biases value too
    edge_thresholds: list[float] = field(default_factory=list)


class ClassSRMethod(Supervised):
    """Stages 2 and 3: the whole ClassSR network on LR sub-images (``train.patch_size`` = HR side)."""

    name = "classsr"
    Options = ClassSROptions
    resume_free_options = ("branches", "init", "collapse_share", "baseline")

    def __init__(self, cfg: Config, model_factory: Callable[[], nn.Module]):
        super().__init__(cfg, model_factory)
        o: ClassSROptions = self.options
        if min(o.l1_weight, o.class_weight, o.average_weight) < 0 or not 0 < o.collapse_share <= 1:
            raise ConfigError("options: loss weights must be >= 0 and collapse_share in (0, 1]")
        self.class_share_ema: torch.Tensor | None = None
        self.batches_seen = 0
        self.warned = False

    Recommended = Routing

    def use_recommended(self, settings: Routing) -> None:
        chosen = {key: value for key, value in asdict(settings).items() if value is not None}
        self.cfg.model = {**self.cfg.model, **chosen}

    def build_model(self) -> nn.Module:
        o: ClassSROptions = self.options
        model = super().build_model()
        if not isinstance(model, ClassSR):
            raise ConfigError(f"model.type: method classsr needs the classsr network, got {type(model).__name__}")
        if o.branches:
            if len(o.branches) != len(model.branches):
                raise ConfigError(f"options.branches: {len(model.branches)} checkpoints needed, got {len(o.branches)}")
            for branch, path in zip(model.branches, o.branches):
                load_model_file(branch, path, "options.branches")
        if o.init:
            load_model_file(model, o.init, "options.init")
        model.branches.requires_grad_(not o.freeze_branches)
        return model

    def loss(self, model, batch):
        o: ClassSROptions = self.options
        sr, probs = _unwrap(model).weighted(batch["input"])
        l1 = F.l1_loss(sr.float(), batch["hr"])
        lc, la = class_loss(probs.float()), average_loss(probs.float())
        share = torch.bincount(probs.argmax(dim=1), minlength=probs.shape[1]).float() / probs.shape[0]
        self._watch_collapse(share)
        out = {"loss": o.l1_weight * l1 + o.class_weight * lc + o.average_weight * la,
               "l1": l1.detach(), "class_loss": lc.detach(), "average_loss": la.detach()}
        out.update({f"class_share/{k}": s for k, s in enumerate(share)})
        return out

    def _watch_collapse(self, share: torch.Tensor) -> None:
        """Routing collapse (one class takes everything) is ClassSR's most reported failure."""
        share = share.detach().cpu()
        self.class_share_ema = share if self.class_share_ema is None else 0.95 * self.class_share_ema + 0.05 * share
        self.batches_seen += 1
        top = float(self.class_share_ema.max())
        # After 50 batches, so that a few small early batches do not trigger it.
        if self.batches_seen >= 50 and top > self.options.collapse_share and not self.warned:
            warnings.warn(f"ClassSR routing is collapsing: class {int(self.class_share_ema.argmax())} takes "
                          f"{top:.0%} of the sub-images (raise options.average_weight)", stacklevel=2)
            self.warned = True

    @torch.no_grad()
    def infer(self, model, lr, scale, degradation=None):
        return Output(_unwrap(model).upscale(lr)[0])

    @torch.no_grad()
    def visuals(self, model, lr, scale):
        net = _unwrap(model)
        sr, classes, grid = net.upscale(lr)
        return {"class_map": class_map(sr, classes, grid, net.scale, len(net.branches))}

    def test_rows(self, model):
        """ClassSR at ``model.route_bias`` and at every ``options.route_biases`` value, the edge router
        likewise (with ``options.edge_thresholds``), and the "-O" network (default: the widest
        branch) on the whole image and on ClassSR's sub-images, all timed in the same run. Each row
        reports its GFLOPs per image, and the routed ones their sub-images per class, so that
        ``report`` can aggregate them over a set by sub-image count."""
        o: ClassSROptions = self.options
        net = _unwrap(model)
        baseline = copy.deepcopy(net.branches[net.widest])
        if o.baseline:
            load_model_file(baseline, o.baseline, "options.baseline")
        device = next(net.parameters()).device
        pixels = net.tile * net.tile
        per_pixel = [tile_flops(b, net.tile, device) / pixels for b in net.branches]
        baseline_per_pixel = tile_flops(baseline, net.tile, device) / pixels

        def routed(bias: float, router: nn.Module | None = None):
            router_per_tile = tile_flops(router or net.classifier, net.tile, device)

            def run(lr, scale, degradation):
                sr, classes, grid = net.upscale(lr, bias, router)
                classifier = classifier_flops(router or net.classifier, grid, router_per_tile)
                counts = torch.bincount(classes, minlength=len(net.branches)).tolist()
                extras = {"GFLOPs": (routed_flops(per_pixel, classes, grid) + classifier) / 1e9,
                          "sub-images": len(classes), "route bias": bias}
                extras.update({f"class {k} sub-images": c for k, c in enumerate(counts)})
                return Output(sr, extras)
            return run

        @torch.no_grad()
        def baseline_whole(lr, scale, degradation):
            return Output(baseline(lr), {"GFLOPs": baseline_per_pixel * lr.shape[-2] * lr.shape[-1] / 1e9})

        @torch.no_grad()
        def baseline_tiled(lr, scale, degradation):
            grid = make_grid(lr.shape[-2], lr.shape[-1], net.tile, net.step)
            sr = upscale_tiled(baseline, lr, net.scale, net.tile, net.step, net.max_tiles, net.blend)
            return Output(sr, {"GFLOPs": baseline_per_pixel * float(grid.areas().sum()) / 1e9,
                               "sub-images": grid.rows * grid.cols})

        rows = [Row("ClassSR", routed(net.route_bias))]
        rows += [Row(f"ClassSR bias {b:+g}", routed(b)) for b in o.route_biases if b != net.route_bias]
        if o.edge_thresholds:
            router = EdgeRouter(o.edge_thresholds).to(device)
            rows.append(Row("edge router", routed(0.0, router)))
            rows += [Row(f"edge router bias {b:+g}", routed(b, router)) for b in o.route_biases if b]
        name = f"{type(baseline).__name__}-O" if o.baseline else "widest branch alone"
        return rows + [Row(name, baseline_whole), Row(f"{name}, sub-images", baseline_tiled)]

    def report(self, records, out_dir: Path) -> None:
        """The cost table (aggregated over each set by sub-image count, against the whole-image "-O"
        network and against it on the same sub-images) and, when several routings were tested, the
        PSNR-vs-FLOPs curve: ``cost.json`` and ``curve_<set>_x<scale>_<degradation>.png``."""
        tables = cost_tables(records)
        print("\n" + format_cost_tables(tables))
        save_json(tables, out_dir / "cost.json", indent=1)
        written = [out_dir / "cost.json"]
        if any(len(t["rows"]) > 3 for t in tables):
            written += plot_curves(tables, out_dir)
        print(f"wrote {', '.join(str(p) for p in written)}")


def tile_flops(module: nn.Module, tile: int, device: torch.device) -> int:
    """FLOPs (2 x multiply-adds) of ``module`` on one ``tile x tile`` LR sub-image."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        module(torch.zeros(1, 3, tile, tile, device=device))
    return counter.get_total_flops()


def _unwrap(model: nn.Module) -> nn.Module:
    """The ClassSR module inside a DDP or torch.compile wrapper."""
    model = getattr(model, "_orig_mod", model)
    return getattr(model, "module", model)

