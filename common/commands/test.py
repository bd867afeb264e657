"""Evaluate a method on benchmark sets with the literature's protocol.

    python scripts/test.py --config C [--checkpoint PATH] [--dataset NAME=HR_FOLDER ...]
                           [--scales 2 3 4] [--opt k=v ...] [--out DIR] [--save-images] [--overwrite]
                           [--backend torch|onnxruntime|openvino] [--precision fp32|bf16|fp16]
    python scripts/test.py --checkpoint PATH [--dataset NAME=HR_FOLDER ...] [--scales ...] ...

Without ``--config``, the checkpoint's network card (``srlab.card``: every checkpoint srlab train
or srlab convert writes) says what to run: its network, run as the card says (its method and
recommended settings), on Set5, Set14, BSD100 and Urban100 under ``$SR_DATA_ROOT`` (or the
``--dataset`` folders) at the card's scales (or ``--scales``); ``--opt`` then sets ``test.*``,
``device`` and ``name`` only (the output goes to runs/<checkpoint's name>/test).

Prints one table (dataset x scale x degradation: PSNR_Y, SSIM_Y, bicubic on the same LR, seconds
per image) and writes DIR/results.json (default DIR: runs/<name>/test). A method that compares
several variants (MZSR: pretrained, MZSR(0), MZSR(1), MZSR(10), ZSSR) gets one record per
variant, with its name in the ``method`` field, and a side-by-side table as well. Methods that
draw pictures (ClassSR's class map) write them for the first ``test.visuals`` images of each set
to DIR/tb for TensorBoard. An existing DIR/results.json is replaced only with ``--overwrite``;
every image and the output folder are checked before the first image is evaluated. Blind
benchmarks (``test.degradations: [blind_mzsr]``) write each image's true kernel, and every estimate
a method made, under DIR/kernels as .npy. ``--precision bf16|fp16`` runs each method's network
under autocast (bf16: CUDA or a CPU with bf16 units; fp16: CUDA); the metrics stay fp32.
"""
from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

import torch

from srlab.backends import BACKENDS, on_backend
from srlab.checkpoint import load_weights
from srlab.cli import main_guard
from srlab.config import Config, DatasetSpec, apply_override, config_errors, from_dict, to_dict, validate
from srlab.device import PRECISIONS, autocast_dtype, resolve_device, tune_cpu_allocator
from srlab.errors import ConfigError, UserError
from srlab.evaluate import collect_visuals, evaluate, format_comparison, format_table, load_datasets, write_results
from srlab.loading import load
from srlab.method import Output, Row, check_scales, inference_model
from srlab.outputs import check_output_dir, check_output_file
from srlab.provenance import provenance
from srlab.registry import load_method

# What ``srlab test --checkpoint W`` evaluates without a config: the literature's four sets.
STANDARD_SETS = ("Set5", "Set14", "BSD100", "Urban100")


@main_guard(interrupted="results.json was not written (it is written when every row is done)")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="what to test and how (without it: the checkpoint's card, the standard sets)")
    parser.add_argument("--checkpoint", help="weights to test (the EMA weights if the checkpoint has them)")
    parser.add_argument("--dataset", action="append", default=[], metavar="NAME=HR_FOLDER",
                        help="test on this folder instead of the config's datasets (repeatable)")
    parser.add_argument("--scales", type=int, nargs="+")
    parser.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", help="output folder (default: runs/<name>/test)")
    parser.add_argument("--save-images", action="store_true")
    parser.add_argument("--overwrite", action="store_true", help="replace the results of an earlier test in --out")
    parser.add_argument("--backend", default="torch", choices=list(BACKENDS),
                        help="onnxruntime / openvino: a one-pass network in that runtime on the CPU (srlab.backends)")
    parser.add_argument("--precision", default="fp32", choices=list(PRECISIONS),
                        help="bf16: CUDA, or a CPU with AMX / AVX512-BF16; fp16: CUDA")
    args = parser.parse_args(argv)

    overrides = list(args.opt)
    if args.scales:
        overrides.append(f"test.scales={args.scales}")
    card = None  # without a config: the checkpoint's card, which results.json records in its place
    if args.config:
        cfg, method, model = configured(args.config, args.checkpoint, overrides, args.dataset)
    elif args.checkpoint:
        cfg, method, model, card = carded(args.checkpoint, overrides, args.dataset)
    else:
        raise UserError("give --config C (with --checkpoint W if its method has a network), or --checkpoint W alone "
                        "(a checkpoint that describes its network, as srlab train and srlab convert write)")
    cfg.test.save_images |= args.save_images

    out_dir = check_output_dir(args.out or Path("runs") / cfg.name / "test")
    check_output_file(out_dir / "results.json", "--out", overwrite=args.overwrite)
    device = resolve_device(cfg.device)
    dtype = autocast_dtype(args.precision, device)
    if device.type == "cpu":
        tune_cpu_allocator()
    model = inference_model(model, device, cfg.test.channels_last)
    if args.backend != "torch":
        if model is None:
            raise UserError(f"--backend {args.backend}: method {cfg.method!r} runs no network")
        model = on_backend(model, cfg.method, model.input_convention.channels, device, args.backend, args.precision)

    datasets = load_datasets(cfg.test.datasets, cfg.test.max_images)
    for data in datasets:  # every image's header (and LR file) now, not after an hour of evaluation
        data.check(cfg.test.scales)
    records = []
    rows = [row if dtype is None or row.is_bicubic else in_precision(row, dtype, device) for row in
            method.test_rows(model)]
    for row in rows:
        save_dir = out_dir / "images" / (row.name if len(rows) > 1 else "") if cfg.test.save_images else None
        records += evaluate(row, datasets, cfg.test, device, save_dir=save_dir, kernel_dir=out_dir / "kernels")
    print(format_table(records))
    if len(rows) > 1:
        print(f"\n{format_comparison(records)}")
    config = to_dict(cfg)
    if card is not None:  # the rest of cfg is defaults that did not take part
        config = {**{k: config[k] for k in ("method", "name", "device", "model", "test")}, "card": card.to_dict()}
    write_results(records, out_dir / "results.json", provenance(config, args.checkpoint, device))
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


def dataset_specs(items: list[str]) -> list[DatasetSpec]:
    """``--dataset NAME=HR_FOLDER`` arguments."""
    specs = []
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise UserError(f"--dataset {item!r}: expected NAME=HR_FOLDER")
        specs.append(DatasetSpec(name=name, hr=folder))
    return specs


def configured(config: str, checkpoint: str | None, overrides: list[str], datasets: list[str]):
    """The config's method and network, with the checkpoint's weights: ``(cfg, method, model)``."""
    cfg, method = load_method(config, overrides)
    if datasets:
        cfg.test.datasets = dataset_specs(datasets)
    with config_errors(config, overrides):
        model = method.build_model()
        check_scales(model, cfg.test.scales, "test.scales")
    if model is not None:
        if not checkpoint:
            raise UserError(f"{config}: method {cfg.method!r} needs --checkpoint PATH")
        # The checkpoint is read and checked as everywhere (its card, finite weights); the config
        # says how to test it (its own routing or adaptation settings, not the card's recommendations).
        _, trained, card = load(checkpoint)
        if card.architecture != cfg.model["type"]:
            raise UserError(f"{checkpoint} holds a {card.architecture} network; {config} tests a "
                            f"{cfg.model['type']} (model.type)")
        load_weights(model, trained.state_dict(), checkpoint)
    return cfg, method, model


def carded(checkpoint: str, overrides: list[str], datasets: list[str]):
    """Without a config: the checkpoint's network run as its card says (method, recommended
    settings), on the standard sets at the card's scales; ``--opt`` may set ``test.*``, ``device``
    and ``name``. ``(cfg, method, model, card)``."""
    method, model, card = load(checkpoint)
    cfg = method.cfg
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", Path(checkpoint).stem).lstrip("._-")[:100] or "checkpoint"
    data = {"name": stem, "device": cfg.device,
            "test": {"datasets": list(STANDARD_SETS), "scales": list(card.scales)}}
    with config_errors(checkpoint, overrides):
        for assignment in overrides:
            apply_override(data, assignment)
        extra = sorted(set(data) - {"name", "device", "test"})
        if extra:
            raise ConfigError(f"{extra[0]}: without --config, --opt sets test.*, device and name only")
        given = from_dict(Config, {"method": cfg.method, **data})
        validate(given)
        check_scales(model, given.test.scales, "test.scales")
    cfg.name, cfg.device, cfg.test = given.name, given.device, given.test
    if datasets:
        cfg.test.datasets = dataset_specs(datasets)
    return cfg, method, model, card


def in_precision(row: Row, dtype: torch.dtype, device: torch.device) -> Row:
    """``row`` with its inference under autocast to ``dtype``; its image back in fp32 for the metrics."""
    def infer(lr, scale, degradation) -> Output:
        with torch.autocast(device.type, dtype=dtype):
            output = row.infer(lr, scale, degradation)
        return Output(output.image.float(), output.extras)

    return dataclasses.replace(row, infer=infer)


if __name__ == "__main__":
    main()
