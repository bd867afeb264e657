"""Super-resolve one real image with MZSR: adapt the network to it, then upscale.

    python scripts/zeroshot.py --checkpoint weights/mzsr/meta_x2_cpu.pt --image in.png
                               --kernel gd_2.0 [--scale 2] [--steps 10] [--lrs 0.005] --out out.png

The same adaptation as ``srlab upscale --kernel`` and ``srlab.api`` (one rule, in
``srlab.mzsr.methods.MetaTransfer.image_infer``), with every knob: ``--steps`` and ``--lrs``
(default: what the checkpoint's card recommends, else the paper's rates). A stage-1 checkpoint
of MZSR's network adapts too (MZSR's stage 3 on stage-1 weights).

``--kernel`` is how the image was degraded: a name (gd_0.2, gd_2.0, gd_ani, gb_1.3, bicubic), or
a ``.npy``/``.mat`` kernel file (direct subsampling; ``bicubic:<file>`` for blur + bicubic
downscaling), or ``estimate``: a kernel estimator reads it off the image first (``--estimator
photo``, the default: bicubic downscaling unless the image looks more blurred than any tool makes
it, then the ``edges`` Gaussian; ``edges``: the sharpest edges' blur, hundredths of a second; ``net``: KernelNet, needs
``--kernel-net`` weights you trained; ``kernelgan``: minutes on a CPU; ``prior``: the training distribution's
mean kernel, without looking), and the estimate is written next to ``--out`` as
``<out>.kernel.npy`` and a picture ``<out>.kernel.png``. An estimate its estimator calls unreliable
is not used: the network runs unadapted, MZSR(0), and says so.
``--out`` is checked before the work (an image suffix, not the input, not an existing file unless
``--overwrite``); an adaptation that diverges (NaN/inf) writes nothing and exits with status 2.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import time

from srlab.api import Upscaler
from srlab.cli import main_guard
from srlab.data import WRITABLE_SUFFIXES, kernel_files, load_image, save_kernel, write_image
from srlab.degradation import named_degradation
from srlab.device import resolve_device, tune_cpu_allocator
from srlab.errors import UserError
from srlab.loading import build_network, inference_method, load
from srlab.method import inference_model
from srlab.mzsr.estimate import ESTIMATORS
from srlab.mzsr.methods import AdaptSettings
from srlab.mzsr.zeroshot import check_network, progress_bar
from srlab.outputs import check_output_file


@main_guard(interrupted="nothing was written")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="an MZSR checkpoint (meta-trained, or stage 1)")
    parser.add_argument("--image", required=True, help="the LR image")
    parser.add_argument("--kernel", required=True, help="degradation name, kernel file, or 'estimate' (see above)")
    parser.add_argument("--estimator", default="photo", choices=ESTIMATORS,
                        help="with --kernel estimate (default: photo)")
    parser.add_argument("--kernel-net",
                        help="KernelNet weights for --estimator net (train them: configs/mzsr/kernel_net_x2_cpu.yaml)")
    parser.add_argument("--scale", type=int, help="default: the first scale the network was trained for")
    parser.add_argument("--steps", type=int, help="adaptation steps (0: the weights as they are; default: what the "
                                                  "checkpoint recommends)")
    parser.add_argument("--lrs", type=float, nargs="+",
                        help="learning rate of step i: entry min(i, last) (default: what the checkpoint recommends "
                             "for its weights, else the paper's)")
    parser.add_argument("--backtrack", action=argparse.BooleanOptionalAction,
                        help="undo a step that raises the son's loss and halve the later ones (default: what the "
                             "checkpoint recommends, else off: plain SGD, the paper)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--out", required=True, help="where to write the SR image (.png, .bmp, .tif, .webp, ...)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = parser.parse_args(argv)
    if (args.scale is not None and args.scale < 2) or (args.steps is not None and args.steps < 0) or not all(
            math.isfinite(lr) and lr > 0 for lr in args.lrs or [1]):
        raise UserError(f"--scale must be >= 2, --steps >= 0 and --lrs finite numbers > 0; "
                        f"got {args.scale}, {args.steps}, {args.lrs}")
    check_output_file(args.out, "--out", inputs=[args.image, args.checkpoint], suffixes=WRITABLE_SUFFIXES,
                      overwrite=args.overwrite)
    estimating = args.kernel == "estimate"
    kernel_paths = kernel_files(args.out) if estimating else ()
    for path in kernel_paths:
        check_output_file(path, "--out", inputs=[args.image, args.checkpoint], overwrite=args.overwrite)
    if estimating and args.estimator == "net" and not args.kernel_net:
        raise UserError("--estimator net needs --kernel-net PATH (KernelNet weights; train them with "
                        "configs/mzsr/kernel_net_x2_cpu.yaml)")
    degradation = None if estimating else named_degradation(args.kernel)

    upscaler = adapting_upscaler(args.checkpoint, args.device)
    scale = upscaler.scale_for(args.scale)
    recommended = upscaler.card.recommended.get("adapt_lrs")
    settings = AdaptSettings(**upscaler.method.recommended())
    settings.adapt_steps = settings.adapt_steps if args.steps is None else args.steps
    settings.adapt_lrs = args.lrs or settings.adapt_lrs
    settings.adapt_backtrack = settings.adapt_backtrack if args.backtrack is None else args.backtrack
    lrs_from = "--lrs" if args.lrs else "recommended by the checkpoint" if recommended else "the paper's"
    image = load_image(args.image)
    if estimating:
        estimate = upscaler.estimate_kernel(image, scale, args.estimator, args.kernel_net)
        degradation = estimate.degradation()
        print(f"estimated the kernel with {estimate.estimator} in {estimate.seconds:.2f} s on {upscaler.device}")
        if degradation is None:
            print(f"the estimate is unreliable ({estimate.unreliable}): no adaptation, MZSR(0)")
            settings.adapt_steps = 0
    upscaler.method.use_recommended(settings)

    start = time.perf_counter()
    steps = settings.adapt_steps if degradation is not None else 0
    try:
        with progress_bar(steps) as bar:
            kernel = degradation if degradation is not None else "none"  # an unreliable estimate: MZSR(0), said above
            sr = upscaler(image, scale, kernel=kernel, on_step=lambda: bar.update(1))
    except UserError as exc:
        raise UserError(f"{args.image}: {exc}") from None
    seconds = time.perf_counter() - start
    write_image(sr, args.out)
    if estimating:
        save_kernel(estimate.kernel, *kernel_paths)
        print(f"wrote the estimated kernel ({estimate.kernel.shape[0]}x{estimate.kernel.shape[1]}) to "
              f"{kernel_paths[0]} and {kernel_paths[1]}")
    print(f"wrote {args.out} ({sr.shape[1]}x{sr.shape[0]}, MZSR({steps}) with lrs {settings.adapt_lrs} ({lrs_from})"
          f"{', backtracking' if settings.adapt_backtrack and steps else ''} "
          f"in {seconds:.2f} s on {upscaler.device})")


def adapting_upscaler(checkpoint: str, device: str) -> Upscaler:
    """The checkpoint's network as an upscaler that adapts to each image: a meta-trained MZSR
    checkpoint as it is, a stage-1 one (MZSR's network trained plainly) with MZSR's adaptation."""
    method, network, card = load(checkpoint)
    if not card.adapts:
        check_network(network, f"{checkpoint}: card field architecture")
        card = dataclasses.replace(card, method="mzsr_meta", adapts=True, recommended={})
        method = inference_method(card, checkpoint)
        weights = network.state_dict()
        network = build_network(method, card, weights, checkpoint)
        network.load_state_dict(weights)
    device = resolve_device(device)
    if device.type == "cpu":
        tune_cpu_allocator()
    return Upscaler(method, inference_model(network, device, channels_last=True), card, device)


if __name__ == "__main__":
    main()
