"""ClassSR inference speed: routed sub-images vs the plain widest network, in one run.

    python scripts/benchmark_classsr.py --config configs/classsr/test_x4_cpu.yaml
        [--checkpoint runs/classsr_stage3_x4_cpu/checkpoints/last.pt] [--dataset BSD100] [--images 10]
        [--repeats 3] [--device auto|cpu|cuda] [--route-biases B ...] [--opt KEY=VALUE ...]
        [--out runs/benchmark_classsr.json]

The networks are the config's ``model:`` (tile, step, widths, blocks). With ``--checkpoint`` the
trained Class-Module routes the sub-images; without one the weights are random and a stand-in
sends each sub-image to a class by the standard deviation of its LR pixels (< 0.03: class 0,
< 0.07: class 1, else 2), which is enough to compare speeds (its FLOPs count as zero; the real
Class-Module's are under 1% of the narrowest branch's). The class shares are printed.

Versions, on the same LR images (MATLAB-bicubic x scale of the first ``--images`` HR images),
channels-last, inference mode:

* ``widest_whole``      the widest branch on the whole image (the "-O" network has its shape and speed)
* ``widest_tiled``      the widest branch on every sub-image, stitched: what tiling alone costs
* ``classsr``           the project's path: the Class-Module once over the image, then each
                        branch on the batch of its sub-images, edge ones ragged (``srlab.classsr.infer``)
* ``classsr_one_by_one`` the original code's loop: each sub-image classified and upscaled alone
                        (on the same ragged sub-images, so that the results can be compared)
* ``classsr_bias<b>``   ClassSR at another route bias (``--route-biases``), e.g. 0 beside a tuned one
* ``branch<k>_tiled``   each narrower branch on every sub-image: its speed per FLOP against the widest

Seconds per image are the median over ``--repeats`` rounds after one warm-up round; each round
runs every version once over all images, in turn, so slow phases of a shared machine hit all of
them alike. FLOPs are counted with ``torch.utils.flop_counter`` over the same images; on CUDA the
peak memory of each version is recorded too.
"""
from __future__ import annotations

import argparse
import functools
import platform

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from srlab.checkpoint import load_model_file, save_json
from srlab.classsr.infer import Router, biased, make_grid, split, stitch, upscale_tiled
from srlab.classsr.models import ClassSR
from srlab.cli import add_json_output, json_output, main_guard
from srlab.config import load_config
from srlab.data import BenchmarkImages, modcrop, resolve_files, to_tensor
from srlab.degradation import named_degradation
from srlab.device import resolve_device, tune_cpu_allocator
from srlab.errors import ConfigError, UserError
from srlab.evaluate import lr_image
from srlab.registry import METHODS, build_model
from srlab.timing import interleaved_median_seconds


class TextureClassifier(Router):
    """Stand-in Class-Module for random weights: the class from the LR sub-image's standard deviation."""

    def __init__(self, thresholds: tuple[float, ...] = (0.03, 0.07)):
        super().__init__()
        self.register_buffer("thresholds", torch.tensor(thresholds))

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        classes = torch.bucketize(lr.flatten(1).std(dim=1), self.thresholds)
        return nn.functional.one_hot(classes, len(self.thresholds) + 1).float()


def one_by_one(net: ClassSR, lr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The original ClassSR test loop: one sub-image at a time through the classifier and its branch."""
    grid = make_grid(lr.shape[-2], lr.shape[-1], net.tile, net.step)
    heights, widths = grid.sides()
    side = net.tile * net.scale
    outs, classes = [], []
    for i, tile in enumerate(split(lr, grid).split(1)):  # deliberately a Python loop: this is the baseline
        k = int(biased(net.classifier(tile), net.route_bias).argmax(dim=1))
        h, w = heights[i // grid.cols], widths[i % grid.cols]  # the ragged edge: only the image's pixels
        outs.append(F.pad(net.branches[k](tile[..., :h, :w]), (0, side - w * net.scale, 0, side - h * net.scale)))
        classes.append(k)
    return stitch(torch.cat(outs), grid, net.scale, net.blend), torch.tensor(classes)


def count_flops(run, images: list[torch.Tensor]) -> int:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        for lr in images:
            run(lr)
    return counter.get_total_flops()


@main_guard
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="a ClassSR config (its model: section is used)")
    parser.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--checkpoint", help="trained ClassSR weights (default: random, stand-in classifier)")
    parser.add_argument("--dataset", default="BSD100", help="benchmark set name (official LR files are not used), "
                        "or an embedded one (skimage_test)")
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--route-biases", type=float, nargs="*", default=[],
                        help="also time ClassSR at these model.route_bias values (the config's is 'classsr')")
    add_json_output(parser, "--out", "runs/benchmark_classsr.json")
    args = parser.parse_args(argv)
    out = json_output(args.out, "--out", args.overwrite)

    if args.images < 1 or args.repeats < 1:
        raise UserError(f"--images and --repeats must be >= 1, got {args.images} and {args.repeats}")
    cfg = load_config(args.config, args.opt, METHODS)
    torch.manual_seed(0)
    net = build_model(cfg.model)
    if not isinstance(net, ClassSR):
        raise ConfigError(f"{args.config}: model.type must be classsr, got {cfg.model.get('type')!r}")
    if args.checkpoint:
        load_model_file(net, args.checkpoint)
    else:
        net.classifier = TextureClassifier()
    device = resolve_device(args.device)
    if device.type == "cpu":
        tune_cpu_allocator()
    net.to(device, memory_format=torch.channels_last).eval()
    widest = net.branches[net.widest]
    tiled = functools.partial(upscale_tiled, scale=net.scale, size=net.tile, step=net.step, max_tiles=net.max_tiles,
                              blend=net.blend)

    scale = net.scale
    data = BenchmarkImages(args.dataset, resolve_files(args.dataset, None, "benchmarks"), max_images=args.images)
    bicubic = named_degradation("bicubic")
    images = [lr_image(img, to_tensor(modcrop(img.hr, scale)), scale, "bicubic", bicubic)
              .to(device).contiguous(memory_format=torch.channels_last) for img in data.images(scale)]
    versions = {
        "widest_whole": widest,
        "widest_tiled": functools.partial(tiled, widest),
        "classsr": lambda lr: net.upscale(lr)[0],
        "classsr_one_by_one": lambda lr: one_by_one(net, lr)[0],
    }
    for bias in args.route_biases:  # the same network at other settings of the quality/cost knob
        versions[f"classsr_bias{bias:+g}"] = functools.partial(lambda lr, b: net.upscale(lr, route_bias=b)[0], b=bias)
    for k, branch in enumerate(net.branches):  # the narrower ones: their speed per FLOP against the widest
        if k != net.widest:
            versions[f"branch{k}_tiled"] = functools.partial(tiled, branch)

    def over_images(run) -> None:
        for lr in images:
            run(lr)

    with torch.inference_mode():
        routed = [net.upscale(lr) for lr in images]
        classes = torch.cat([c for _, c, _ in routed])
        looped = [one_by_one(net, lr) for lr in images]
        same = all(torch.equal(c.cpu(), c1) and torch.allclose(sr, sr1, atol=1e-5)
                   for (sr, c, _), (sr1, c1) in zip(routed, looped))
        del routed, looped
        sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
        seconds = interleaved_median_seconds({name: functools.partial(over_images, run) for name, run in versions.items()},
                                             args.repeats, warmup=1, sync=sync)
    shares = (torch.bincount(classes.cpu(), minlength=len(net.branches)).float() / len(classes)).tolist()
    rows = {}
    for name, run in versions.items():
        rows[name] = {"seconds_per_image": seconds[name] / len(images), "gflops_per_image": count_flops(run, images) / len(images) / 1e9}
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            with torch.inference_mode():
                over_images(run)
            rows[name]["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20

    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    base = rows["widest_whole"]
    print(f"device: {device} ({device_name}), {torch.get_num_threads()} threads; {len(images)} {args.dataset} images x{scale}, "
          f"sub-images {net.tile}/{net.step}, median of {args.repeats} interleaved rounds; "
          f"{'trained classifier' if args.checkpoint else 'random weights, stand-in classifier'}")
    print(f"class shares: {', '.join(f'{100 * s:.1f}%' for s in shares)}; "
          f"batched and one-by-one routing agree (classes and SR, every image): {same}")
    print("| version | s / image | time vs widest_whole | GFLOPs / image | FLOPs vs widest_whole |")
    print("|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['seconds_per_image']:.4f} | {r['seconds_per_image'] / base['seconds_per_image']:.2f}x | "
              f"{r['gflops_per_image']:.2f} | {r['gflops_per_image'] / base['gflops_per_image']:.2f}x |")
    speedup = rows["classsr_one_by_one"]["seconds_per_image"] / rows["classsr"]["seconds_per_image"]
    print(f"batched routing is {speedup:.1f}x faster than one sub-image at a time")
    save_json({"device": str(device), "device_name": device_name, "threads": torch.get_num_threads(),
                               "torch": torch.__version__, "config": args.config, "checkpoint": args.checkpoint,
                               "dataset": args.dataset, "images": len(images), "repeats": args.repeats,
                               "class_shares": shares, "batched_equals_one_by_one": same, "versions": rows}, out, indent=2)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
