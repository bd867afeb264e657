"""Evaluate a method on benchmark sets with the literature's protocol.

    python scripts/test.py --config C [--checkpoint PATH] [--dataset NAME=HR_FOLDER ...]
                           [--scales 2 3 4] [--opt k=v ...] [--out DIR] [--save-images] [--overwrite]

Prints one table (dataset x scale x degradation: PSNR_Y, SSIM_Y, bicubic on the same LR, seconds
per image) and writes DIR/results.json (default DIR: runs/<name>/test). A method that compares
several variants (MZSR: pretrained, MZSR(0), MZSR(1), MZSR(10), ZSSR) gets one record per
variant, with its name in the ``method`` field, and a side-by-side table as well. Methods that
draw pictures (ClassSR's class map) write them for the first ``test.visuals`` images of each set
to DIR/tb for TensorBoard. An existing DIR/results.json is replaced only with ``--overwrite``;
every image and the output folder are checked before the first image is evaluated. Blind
benchmarks (``test.degradations: [blind_mzsr]``) write each image's true kernel, and every estimate
a method made, under DIR/kernels as .npy.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from srlab.checkpoint import load_weights
from srlab.cli import main_guard
from srlab.config import DatasetSpec, config_errors, to_dict
from srlab.device import resolve_device, tune_cpu_allocator
from srlab.errors import UserError
from srlab.evaluate import collect_visuals, evaluate, format_comparison, format_table, load_datasets, write_results
from srlab.loading import load
from srlab.method import check_scales, inference_model
from srlab.outputs import check_output_dir, check_output_file
from srlab.provenance import provenance
from srlab.registry import load_method


@main_guard(interrupted="results.json was not written (it is written when every row is done)")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True)
    parser.add_argument("--checkpoint", help="weights to test (the EMA weights if the checkpoint has them)")
    parser.add_argument("--dataset", action="append", default=[], metavar="NAME=HR_FOLDER",
                        help="test on this folder instead of the config's datasets (repeatable)")
    parser.add_argument("--scales", type=int, nargs="+")
    parser.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", help="output folder (default: runs/<name>/test)")
    parser.add_argument("--save-images", action="store_true")
    parser.add_argument("--overwrite", action="store_true", help="replace the results of an earlier test in --out")
    args = parser.parse_args(argv)

    overrides = list(args.opt)
    if args.scales:
        overrides.append(f"test.scales={args.scales}")
    cfg, method = load_method(args.config, overrides)
    if args.dataset:
        specs = []
        for item in args.dataset:
            name, sep, folder = item.partition("=")
            if not sep or not name or not folder:
                raise UserError(f"--dataset {item!r}: expected NAME=HR_FOLDER")
            specs.append(DatasetSpec(name=name, hr=folder))
        cfg.test.datasets = specs
    cfg.test.save_images |= args.save_images

    out_dir = check_output_dir(args.out or Path("runs") / cfg.name / "test")
    check_output_file(out_dir / "results.json", "--out", overwrite=args.overwrite)
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        tune_cpu_allocator()
    with config_errors(args.config, overrides):
        model = method.build_model()
        check_scales(model, cfg.test.scales, "test.scales")
    if model is not None:
        if not args.checkpoint:
            raise UserError(f"{args.config}: method {cfg.method!r} needs --checkpoint PATH")
        # The checkpoint is read and checked as everywhere (its card, finite weights); the config
        # says how to test it (its own routing or adaptation settings, not the card's recommendations).
        _, trained, card = load(args.checkpoint)
        if card.architecture != cfg.model["type"]:
            raise UserError(f"{args.checkpoint} holds a {card.architecture} network; {args.config} tests a "
                            f"{cfg.model['type']} (model.type)")
        load_weights(model, trained.state_dict(), args.checkpoint)
    model = inference_model(model, device, cfg.test.channels_last)

    datasets = load_datasets(cfg.test.datasets, cfg.test.max_images)
    for data in datasets:  # every image's header (and LR file) now, not after an hour of evaluation
        data.check(cfg.test.scales)
    records = []
    rows = method.test_rows(model)
    for row in rows:
        save_dir = out_dir / "images" / (row.name if len(rows) > 1 else "") if cfg.test.save_images else None
        records += evaluate(row, datasets, cfg.test, device, save_dir=save_dir, kernel_dir=out_dir / "kernels")
    print(format_table(records))
    if len(rows) > 1:
        print(f"\n{format_comparison(records)}")
    write_results(records, out_dir / "results.json", provenance(to_dict(cfg), args.checkpoint, device))
    print(f"wrote {out_dir / 'results.json'}")
    method.report(records, out_dir)
    pictures = collect_visuals(lambda lr, scale: method.visuals(model, lr, scale), datasets, cfg.test, device)
    if pictures:
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(str(out_dir / "tb")) as writer:
            for tag, picture in pictures:
                writer.add_image(f"test/{tag}", picture, 0)
        print(f"wrote {len(pictures)} pictures ({', '.join(sorted({t.split('/')[0] for t, _ in pictures}))}): "
              f"tensorboard --logdir {out_dir / 'tb'}")


if __name__ == "__main__":
    main()
