"""ClassSR's class split for your own training data.

    python scripts/prepare_classsr.py --config configs/classsr/msrresnet_o_x4.yaml \
        --checkpoint runs/classsr_msrresnet_o_x4/checkpoints/last.pt --out runs/classsr_split_x4.json
        [--lr-size 32] [--step 32] [--classes 3]

Cuts every training image of the config (``train.datasets``) into HR sub-images of
``lr-size x scale`` pixels every ``step x scale`` pixels, scores each with the given network (PSNR_Y
on its own MATLAB-bicubic LR), and splits them at the 1/3 and 2/3 PSNR quantiles: class 0 =
easiest (highest PSNR), 2 = hardest. Writes one JSON file with the thresholds, the image list and
one ``[image, y, x, psnr, class]`` row per sub-image (HR pixel positions), and prints (and saves)
the edge-score thresholds that give the training-free edge router the same class shares
(``options.edge_thresholds`` of a ClassSR test config). An existing ``--out`` is
replaced only with ``--overwrite``.
"""
from __future__ import annotations

import argparse

import torch

from srlab.checkpoint import load_model_file, save_json
from srlab.classsr.edge_router import fit_thresholds
from srlab.classsr.prepare import assign_classes, class_thresholds, score_sub_images
from srlab.cli import main_guard
from srlab.config import config_errors
from srlab.data import load_image, resolve_files
from srlab.device import resolve_device, tune_cpu_allocator
from srlab.errors import UserError
from srlab.method import inference_model
from srlab.outputs import check_output_file
from srlab.registry import load_method


@main_guard(interrupted="nothing was written")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="the scoring network's training config")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--lr-size", type=int, default=32, help="sub-image side in LR pixels")
    parser.add_argument("--step", type=int, default=32, help="sub-image step in LR pixels")
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = parser.parse_args(argv)
    out = check_output_file(args.out, "--out", inputs=[args.config, args.checkpoint], suffixes=[".json"],
                            overwrite=args.overwrite)
    if args.lr_size < 2 or args.step < 1 or args.classes < 2:
        raise UserError(f"--lr-size must be >= 2, --step >= 1 and --classes >= 2; got {args.lr_size}, {args.step}, {args.classes}")

    cfg, method = load_method(args.config, args.opt)
    if len(cfg.train.scales) != 1:
        raise UserError(f"{args.config}: train.scales must name one scale, got {cfg.train.scales}")
    scale = cfg.train.scales[0]
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        tune_cpu_allocator()
    with config_errors(args.config, args.opt):
        model = method.build_model()
    if model.input_convention.upsampled:
        raise UserError(f"{args.config}: model.type must take the LR image itself (e.g. msrresnet)")
    load_model_file(model, args.checkpoint)
    model = inference_model(model, device, cfg.test.channels_last)

    files = [f for spec in cfg.train.datasets for f in resolve_files(spec.name, spec.hr, "train")]
    rows, scores, edges = [], [], []
    for i, path in enumerate(files):
        positions, psnrs, edge = score_sub_images(model, load_image(path), scale, args.lr_size, args.step, device)
        rows += [(i, y, x) for y, x in positions]
        scores.append(psnrs)
        edges.append(edge)
    psnrs = torch.cat(scores)
    try:
        thresholds = class_thresholds(psnrs, args.classes)
    except ValueError as exc:
        raise UserError(f"{args.config}: {exc} (images smaller than {args.lr_size * scale} px are skipped)") from None
    classes = assign_classes(psnrs, thresholds)
    counts = torch.bincount(classes, minlength=args.classes).tolist()
    # The edge router's thresholds: the edge scores that give the classes the split's shares.
    edge_thresholds = fit_thresholds(torch.cat(edges), [c / len(classes) for c in counts])
    split = {
        "scale": scale, "lr_size": args.lr_size, "step": args.step, "n_classes": args.classes,
        "thresholds_psnr_y": thresholds, "edge_thresholds": edge_thresholds,
        "scorer": str(args.checkpoint), "images": [str(f) for f in files],
        "sub_images": [[i, y, x, float(p), int(c)] for (i, y, x), p, c in zip(rows, psnrs, classes)],
    }
    save_json(split, out)
    print(f"{len(rows)} sub-images from {len(files)} images; PSNR_Y thresholds "
          f"{', '.join(f'{t:.2f}' for t in thresholds)} dB; per class {counts}; edge router "
          f"(options.edge_thresholds): [{', '.join(f'{t:.4f}' for t in edge_thresholds)}]; wrote {out}")


if __name__ == "__main__":
    main()
