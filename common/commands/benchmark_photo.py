"""The photo benchmark: checkpoints on photographs shrunk the ways people and tools shrink them.

    srlab benchmark photo --checkpoint weights/mzsr/meta_x2_cpu.pt weights/asymsr/asym_vdsr_x234_cpu.pt ...
                          [--dataset NAME=HR_FOLDER ...] [--scale 2] [--degradations photo blind_mzsr]
                          [--max-images N] [--crop 256] [--mzsr-rows photo none oracle] [--max-share S]
                          [--json out.json]

Each HR image (default: the photographs bundled with scikit-image, which are in no benchmark and
in none of the shipped weights' training data) is shrunk by every degradation (``photo``: Pillow's
bicubic, bilinear and Lanczos, area averaging, MATLAB's bicubic and a mild blur, each also saved
as JPEG at quality 90 and 75; ``blind_mzsr`` and ``blind_div2krk`` too if named), and every
checkpoint super-resolves it exactly as ``srlab upscale`` would (``srlab.api``: tiles, uint8 in and
out). An MZSR checkpoint gives a row per ``--mzsr-rows`` entry: ``photo`` (what ``srlab upscale``
does without ``--kernel``: the kernel estimated, the best candidate chosen on the image itself),
``none`` (MZSR(0)), ``oracle`` (adapted to the true degradation, an upper bound the user does not
have), ``bicubic`` (adapted to bicubic downscaling) and ``edges`` (adapted to the edges estimator's
Gaussian, whatever the photo): with the stage-1 checkpoint's row, these are what the photo path
may run (``bicubic`` only when the estimate is a blur, or the checkpoint has no stage 1), and the
summary says how often the photo path did as well as the best of them (``--max-share S``: the
photo path as ``srlab upscale --max-share S`` runs it). Scores are the
protocol's (Y channel, border = scale, 8 bits). ``--crop``: the centre ``crop x crop`` HR pixels of
each image (0: whole images).

Printed: the table (methods side by side per degradation), then per row its mean PSNR_Y over
everything, its mean gain over bicubic interpolation, the worst image against bicubic, how many
results are more than 0.1 dB below bicubic, and seconds per image.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from srlab.api import Upscaler, load_upscaler
from srlab.cli import add_json_output, json_output, main_guard
from srlab.commands.test import dataset_specs
from srlab.config import DatasetSpec, EvalConfig
from srlab.data import BenchmarkImages, resolve_files, to_tensor, to_uint8
from srlab.degradation import expand_suites, named_degradation
from srlab.degradation.named import PhotoTool
from srlab.device import tune_cpu_allocator
from srlab.errors import UserError
from srlab.evaluate import Record, evaluate, format_comparison, write_results
from srlab.method import Output, Row

MZSR_ROWS = ("photo", "none", "oracle", "bicubic", "edges")


def upscaler_rows(name: str, up: Upscaler, mzsr_rows: list[str], max_share: float | None = None) -> list[Row]:
    """What ``srlab upscale`` does with this checkpoint (the photo path with ``--max-share``), as test rows."""
    def run(kernel=None, oracle=False, estimator="photo"):
        def infer(lr: torch.Tensor, scale: int, degradation) -> Output:
            if kernel == "edges":  # the edges Gaussian, forced (what the photo path may choose)
                image = to_uint8(lr)
                chosen = up.estimate_kernel(image, scale, "edges").degradation() or "none"
                result = up.run(image, scale, kernel=chosen)
            else:  # a JPEG-saved photo says so, as its file would say to srlab upscale (not its tool: hidden)
                jpeg = isinstance(degradation.family, PhotoTool) and degradation.family.jpeg is not None
                photo_path = kernel is None and not oracle
                result = up.run(to_uint8(lr), scale, kernel=degradation if oracle else kernel, estimator=estimator,
                                jpeg=jpeg, max_share=max_share if photo_path else None)
            return Output(to_tensor(result.image).to(lr.device))
        return infer

    if not up.adapts:
        return [Row(name, run())]
    capped = "" if max_share is None else f", max share {max_share:g}"
    rows = {"photo": Row(f"{name} (photo path{capped})", run()), "none": Row(f"{name} MZSR(0)", run("none")),
            "oracle": Row(f"{name} true kernel", run(oracle=True), sees_true_kernel=True),
            "bicubic": Row(f"{name} + bicubic kernel", run("bicubic")),
            "edges": Row(f"{name} + edges Gaussian", run("edges"))}
    return [rows[r] for r in mzsr_rows]


def summary(records: list[Record]) -> str:
    lines = ["| row | mean PSNR_Y | gain over bicubic | worst image vs bicubic | below bicubic - 0.1 dB | s / image |",
             "|---|---|---|---|---|---|"]
    for method in dict.fromkeys(r.method for r in records):
        mine = [r for r in records if r.method == method]
        gains = [i["psnr_y"] - i["bicubic_psnr_y"] for r in mine for i in r.images]
        n = sum(r.n_images for r in mine)
        lines.append(f"| {method} | {sum(r.psnr_y * r.n_images for r in mine) / n:.2f} | {np.mean(gains):+.2f} | "
                     f"{min(gains):+.2f} | {sum(g < -0.1 for g in gains)} of {len(gains)} | "
                     f"{sum(r.seconds * r.n_images for r in mine) / n:.2f} |")
    return "\n".join(lines)


def matches(records: list[Record]) -> str:
    """How often each photo-path row is at least as good as the best of the whole-network rows it
    could have run (those give exactly their own rows' results: the same computation). A blend of
    a network and interpolation, which the photo path may also run, has no row: it can beat them all."""
    lines = []
    by = {}
    for r in records:
        for image in r.images:
            by.setdefault((r.dataset, r.degradation, image["name"]), {})[r.method] = image["psnr_y"]
            by[(r.dataset, r.degradation, image["name"])]["bicubic interpolation"] = image["bicubic_psnr_y"]
    for photo in dict.fromkeys(r.method for r in records if " (photo path" in r.method):
        stem = photo.split(" (photo path")[0]
        others = [m for m in (f"{stem} + bicubic kernel", f"{stem} + edges Gaussian", "bicubic interpolation",
                              *(r.method for r in records if "pretrain" in r.method))]
        pairs = [(v[photo], max(v[m] for m in others if m in v)) for v in by.values() if photo in v]
        if not pairs or not all(any(m in v for m in others[:2]) for v in by.values() if photo in v):
            continue
        hit = sum(ran > best - 1e-6 for ran, best in pairs)
        lost = np.mean([best - ran for ran, best in pairs])
        lines.append(f"{photo}: as good as the best whole candidate or better on {hit} of {len(pairs)} images; "
                     f"{lost:+.2f} dB below the best whole candidate on average")
    return "\n".join(lines)


@main_guard(interrupted="nothing was written")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", nargs="+", required=True, help="checkpoints to compare")
    parser.add_argument("--dataset", action="append", default=[], metavar="NAME=HR_FOLDER",
                        help="HR photos (repeatable; default: skimage_train and skimage_test)")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--degradations", nargs="+", default=["photo"])
    parser.add_argument("--max-images", type=int, default=0, help="per dataset (0: all)")
    parser.add_argument("--crop", type=int, default=256, help="centre crop of each HR image (0: whole)")
    parser.add_argument("--mzsr-rows", nargs="+", default=list(MZSR_ROWS), choices=MZSR_ROWS)
    parser.add_argument("--max-share", type=float, help="the photo path's largest share of a network (srlab upscale's)")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    add_json_output(parser, "--json", None)
    args = parser.parse_args(argv)
    out = json_output(args.json, "--json", args.overwrite)
    if args.max_share is not None and not 0 < args.max_share <= 1:
        raise UserError(f"--max-share must be above 0 and at most 1, got {args.max_share}")
    degradations = expand_suites(args.degradations)
    for name in degradations:
        try:
            named_degradation(name)
        except UserError as exc:
            raise UserError(f"--degradations: {exc}") from None
    specs = dataset_specs(args.dataset) or [DatasetSpec("skimage_train"), DatasetSpec("skimage_test")]
    datasets = [BenchmarkImages(s.name, resolve_files(s.name, s.hr, "benchmarks"), None, args.max_images, args.crop)
                for s in specs]
    for data in datasets:
        data.check([args.scale])
    upscalers = {Path(c).stem: load_upscaler(c, args.device) for c in args.checkpoint}
    for name, up in upscalers.items():
        up.scale_for(args.scale)  # a checkpoint that cannot do this scale: now, not after an hour
    if args.device == "cpu":
        tune_cpu_allocator()
    cfg = EvalConfig(datasets=[], scales=[args.scale], degradations=degradations, visuals=0)
    device = torch.device("cpu") if args.device == "cpu" else next(iter(upscalers.values())).device
    records = []
    for name, up in upscalers.items():
        for row in upscaler_rows(name, up, args.mzsr_rows, args.max_share):
            records += evaluate(row, datasets, cfg, device)
            print(f"done: {row.name}", flush=True)
    print(format_comparison(records))
    print()
    print(summary(records))
    print(matches(records))
    if out is not None:
        write_results(records, out)
        print(f"wrote {out}")
