"""Super-resolve your own low-resolution images with a trained checkpoint.

    srlab upscale --checkpoint weights/asymsr/asym_vdsr_x234_cpu.pt --input photos/ --scale 2 --out sr/
                  [--tile 256] [--ensemble] [--kernel NAME|FILE|estimate|none]
                  [--estimator photo|edges|net|kernelgan|prior] [--max-share S]
                  [--precision fp32|bf16|fp16]
                  [--device auto|cpu|cuda] [--overwrite]

Any checkpoint written by ``srlab train``: VDSR, Asym-VDSR, MSRResNet and MZSR's stage 1 run
directly, ClassSR routes each sub-image to its branch (with the sub-images, route bias and
blend its checkpoint recommends, if it does), and an MZSR meta-trained checkpoint adapts
to each image first, on its central 512x512 LR pixels at most, with the steps and learning rates
its checkpoint recommends:

* without ``--kernel`` (a photo, blur unknown): the kernel is read off each image
  (``--estimator``, default photo: a tool's bicubic downscaling unless the image looks more blurred
  than any tool makes it, then a Gaussian; ``net`` needs ``--kernel-net`` weights), and the best of the
  stage-1 network, MZSR adapted to that kernel or to bicubic downscaling (when it is a blur) and
  bicubic interpolation is chosen on the image itself (``srlab.mzsr.self_validation``); each image's
  line says which ran and how each did; a network runs at most three quarters of the output on a
  photo a tool shrank, half on a JPEG, none inside parts that alias, the rest interpolation
  (``--max-share S``: at most S, for every photo);
* ``--kernel estimate``: the same, and the estimate is written beside each output as
  ``<name>.kernel.npy`` and ``<name>.kernel.png``;
* ``--kernel NAME|FILE`` (gd_0.2, gd_2.0, gd_ani, gb_1.3, bicubic; a ``.npy``/``.mat`` file): you
  know the blur: MZSR adapts to it;
* ``--kernel none``: MZSR(0), the meta-learned weights unadapted (a research baseline).

``--input`` is an image or a folder of images; ``--out`` a file (for one image) or a folder
(``<name><--suffix>.<--ext>`` per image, default ``<name>.png``). Outputs are lossless, except a
``.jpg`` (``--quality``, default 95) and a ``.webp`` given ``--quality``. What a file holds besides
its colours is kept where the output type can hold it: transparency (interpolated, as common
upscalers do; png, tif, webp), greyscale (a grey photo gives a grey picture), the ICC colour profile
and EXIF (orientation reset: the pixels are turned upright). Every input and output is checked
before the first image: an input is never overwritten, two inputs never write one output, and an
existing output is replaced only with ``--overwrite``; ``--skip-existing`` leaves existing outputs
alone and does the rest (an interrupted folder run continues where it stopped: outputs are written
whole or not at all). Images of any size run in
tiles of ``--tile`` LR pixels (bounded memory; the same result as untiled inference).
``--ensemble``: the x8 self-ensemble (eight times the work). ``--precision bf16|fp16``: autocast
on a CUDA GPU (about twice as fast there; a few hundredths of a dB); bf16 also on a CPU with AMX or
AVX512-BF16. ``--backend onnxruntime|openvino``: a network that runs by one forward pass runs in
that runtime on the CPU (``srlab.backends``), the same image to float rounding (OpenVINO also with
``--precision bf16`` on a CPU with bf16 units).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from srlab.api import load_upscaler
from srlab.backends import BACKENDS
from srlab.cli import main_guard
from srlab.data import (
    IMAGE_SUFFIXES,
    PHOTO_SUFFIXES,
    check_image,
    kernel_files,
    list_images,
    save_kernel,
)
from srlab.degradation import named_degradation
from srlab.device import PRECISIONS
from srlab.errors import UserError
from srlab.outputs import check_output_dir, check_output_file, resolved
from srlab.rundir import RunFolder
from srlab.tiling import tiles

# The estimators srlab.mzsr.estimate offers (a name list: the core imports no family at import time).
ESTIMATORS = ["photo", "edges", "net", "kernelgan", "prior"]


@main_guard(interrupted="the images reported as written are complete; the one in progress was not written")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by srlab train")
    parser.add_argument("--input", required=True, help="an LR image, or a folder of them")
    parser.add_argument("--out", required=True, help="an image file (one input) or a folder")
    parser.add_argument("--scale", type=int, help="default: the first scale the network was trained for")
    parser.add_argument("--tile", type=int, default=256, help="tile side in LR pixels (memory vs. speed)")
    parser.add_argument("--ensemble", action="store_true", help="x8 self-ensemble")
    parser.add_argument("--kernel", help="MZSR: the blur of the input images: a name, a kernel file, 'estimate' (as "
                                         "without --kernel, and write the estimate) or 'none' (MZSR(0))")
    parser.add_argument("--estimator", default="photo", choices=ESTIMATORS,
                        help="MZSR: how the kernel is read off each image (mzsr/estimate.py; default photo)")
    parser.add_argument("--kernel-net", help="KernelNet weights for --estimator net")
    parser.add_argument("--max-share", type=float,
                        help="MZSR photo path: the largest share of a network's output, the rest interpolation "
                             "(default: 0.75 for a photo a tool shrank, 0.5 for a JPEG, 1 for a blur)")
    parser.add_argument("--precision", default="fp32", choices=list(PRECISIONS),
                        help="bf16: CUDA, or a CPU with AMX / AVX512-BF16; fp16: CUDA")
    parser.add_argument("--backend", default="torch", choices=list(BACKENDS),
                        help="onnxruntime / openvino: the network in that runtime on the CPU (one-pass networks only)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--ext", default="png", choices=[x.lstrip(".") for x in PHOTO_SUFFIXES],
                        help="the output type when --out is a folder (default png)")
    parser.add_argument("--suffix", default="",
                        help="added to each name when --out is a folder (a.png -> a<suffix>.png)")
    parser.add_argument("--quality", type=int,
                        help="JPEG / WebP quality 1-100 (JPEG default 95; WebP: lossless without it)")
    written = parser.add_mutually_exclusive_group()
    written.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    written.add_argument("--skip-existing", action="store_true",
                         help="leave existing outputs as they are and do the rest (continue an interrupted folder run)")
    args = parser.parse_args(argv)
    if args.tile < 16:
        raise UserError(f"--tile must be at least 16 LR pixels, got {args.tile}")
    if args.quality is not None and not 1 <= args.quality <= 100:
        raise UserError(f"--quality must be 1-100, got {args.quality}")
    if args.max_share is not None and not 0 < args.max_share <= 1:
        raise UserError(f"--max-share must be above 0 and at most 1, got {args.max_share}")
    if "/" in args.suffix or "\\" in args.suffix:
        raise UserError(f"--suffix {args.suffix!r}: a name part, without folders")

    source = Path(args.input)
    if source.is_dir():
        inputs = list_images(source)
    elif source.suffix.lower() in IMAGE_SUFFIXES:
        inputs = [source]
    else:
        raise UserError(f"--input {source}: not a folder or an image ({', '.join(IMAGE_SUFFIXES)})")
    out = Path(args.out)
    to_folder = source.is_dir() or out.is_dir() or out.suffix == ""
    if not to_folder:
        upscale_all(args, inputs, [out])
        return
    check_output_dir(out)
    folder = RunFolder(out)  # two runs into one folder would interleave their images
    folder.lock()
    try:
        upscale_all(args, inputs, [out / f"{p.stem}{args.suffix}.{args.ext}" for p in inputs])
    finally:
        folder.unlock()


def upscale_all(args: argparse.Namespace, inputs: list[Path], outputs: list[Path]) -> None:
    """Check everything, then upscale ``inputs`` into ``outputs``."""
    estimating = args.kernel == "estimate"
    check_names_unique(inputs, outputs, estimating)
    if args.skip_existing:
        done = {target for target in outputs if target.exists()}
        inputs, outputs = [p for p, t in zip(inputs, outputs) if t not in done], [t for t in outputs if t not in done]
        if done:
            print(f"skipping {len(done)} image(s) whose output exists (--skip-existing)")
        if not inputs:
            return
    for target in outputs:  # everything checked before the first image
        check_output_file(target, "--out", inputs=inputs, suffixes=PHOTO_SUFFIXES, overwrite=args.overwrite)
    sizes = [check_image(p) for p in inputs]

    if estimating and args.estimator == "net" and not args.kernel_net:
        raise UserError("--estimator net needs --kernel-net PATH (KernelNet weights; train them with "
                        "configs/mzsr/kernel_net_x2_cpu.yaml)")
    if estimating:
        for target in outputs:
            for path in kernel_files(target):
                check_output_file(path, "--out", inputs=inputs, overwrite=args.overwrite)
    elif args.kernel not in (None, "none"):
        try:  # an unknown name or a bad kernel file: now, before any work
            named_degradation(args.kernel)
        except UserError as exc:
            raise UserError(f"--kernel: {exc}") from None
    upscaler = load_upscaler(args.checkpoint, args.device, tile=args.tile, precision=args.precision,
                             backend=args.backend)
    try:
        scale = upscaler.scale_for(args.scale)
    except UserError as exc:
        raise UserError(f"--scale: {args.checkpoint}: {exc}") from None
    if args.kernel is not None and not upscaler.adapts:
        raise UserError(f"--kernel: {args.checkpoint} does not adapt to each image (only MZSR checkpoints do)")
    if args.max_share is not None and not (upscaler.adapts and args.kernel in (None, "estimate")):
        raise UserError("--max-share: only MZSR's photo path (an MZSR checkpoint, no --kernel or --kernel estimate) "
                        "blends a network with interpolation")
    from tqdm import tqdm

    total = sum(len(list(tiles(h, w, args.tile, 0))) for w, h in sizes)
    with tqdm(total=total, unit="tile", desc="upscaling", leave=False) as bar:
        for path, target in zip(inputs, outputs):
            start = time.perf_counter()
            result = upscaler.upscale_file(path, target, scale, args.ensemble, overwrite=args.overwrite,
                                           on_tile=lambda: bar.update(1), kernel=args.kernel, quality=args.quality,
                                           estimator=args.estimator, kernel_net=args.kernel_net,
                                           max_share=args.max_share)
            said = f"; {result.said}" if result.said else ""
            if result.estimate is not None:
                estimate = result.estimate
                said += (f"; kernel by {estimate.estimator} in {estimate.seconds:.2f} s"
                         + (f", unreliable ({estimate.unreliable})" if estimate.unreliable else ""))
                if estimating:
                    save_kernel(estimate.kernel, *kernel_files(target))
            bar.write(f"wrote {target} (x{scale}, {time.perf_counter() - start:.1f} s{said})")


def check_names_unique(inputs: list[Path], outputs: list[Path], estimating: bool) -> None:
    """Two inputs writing one output (``a.png`` and ``a.jpg`` into a folder), or an output landing
    on another's kernel files: found now, not after the first one was overwritten."""
    owner: dict[Path, Path] = {}
    for source, target in zip(inputs, outputs):
        for path in [target, *(kernel_files(target) if estimating else ())]:
            other = owner.setdefault(resolved(path), source)
            if other != source:
                raise UserError(f"--out: {other} and {source} would both write {path}; rename one, or use "
                                f"--suffix / --ext")


if __name__ == "__main__":
    main()
