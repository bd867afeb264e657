"""Super-resolve one real image with MZSR: adapt the meta-trained network to it, then upscale.

    python scripts/zeroshot.py --checkpoint runs/mzsr_meta_x2/checkpoints/last.pt --image in.png
                               --kernel gd_2.0 --scale 2 --steps 10 --out out.png

``--kernel`` is how the image was degraded: a name (gd_0.2, gd_2.0, gd_ani, gb_1.3, bicubic), or
a ``.npy``/``.mat`` kernel file (direct subsampling; ``bicubic:<file>`` for blur + bicubic
downscaling), or ``estimate``: a kernel estimator reads it off the image first (``--estimator
edges``, the default: the sharpest edges' blur, hundredths of a second; ``net``: KernelNet, needs
``--kernel-net`` weights you trained; ``kernelgan``: minutes on a CPU; ``prior``: the training distribution's
mean kernel, without looking), and the estimate is written next to ``--out`` as
``<out>.kernel.npy`` and a picture ``<out>.kernel.png``. An estimate its estimator calls unreliable
is not used: the network runs unadapted, MZSR(0), and says so.
The network is rebuilt from the config stored in the checkpoint by train.py.
``--out`` is checked before the work (an image suffix, not the input, not an existing file unless
``--overwrite``); an adaptation that diverges (NaN/inf) writes nothing and exits with status 2.
"""
from __future__ import annotations

import argparse
import math
import sys
import time

import torch

from srlab.checkpoint import load_checkpoint, load_weights, model_state
from srlab.cli import main_guard
from srlab.data import WRITABLE_SUFFIXES, kernel_files, load_image, save_image, save_kernel, to_tensor
from srlab.degradation import named_degradation
from srlab.errors import UserError
from srlab.method import inference_model
from srlab.outputs import check_output_file
from srlab.registry import build_model
from srlab.device import resolve_device, tune_cpu_allocator
from srlab.mzsr.estimate import ESTIMATORS, build_estimator
from srlab.mzsr.zeroshot import PAPER_ADAPT_LRS, adapt_to_image, check_network, progress_bar, step_lrs, upscale


@main_guard(interrupted="nothing was written")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by srlab train")
    parser.add_argument("--image", required=True, help="the LR image")
    parser.add_argument("--kernel", required=True, help="degradation name, kernel file, or 'estimate' (see above)")
    parser.add_argument("--estimator", default="edges", choices=ESTIMATORS, help="with --kernel estimate (default: edges)")
    parser.add_argument("--kernel-net", help="KernelNet weights for --estimator net (train them: configs/mzsr/kernel_net_x2_cpu.yaml)")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10, help="adaptation steps (0: the meta-learned weights as they are)")
    parser.add_argument("--lrs", type=float, nargs="+",
                        help="learning rate of step i: entry min(i, last) (default: what the checkpoint recommends "
                             "for its weights, else the paper's)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--out", required=True, help="where to write the SR image (.png, .bmp, .tif, .webp, ...)")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = parser.parse_args(argv)
    if args.scale < 2 or args.steps < 0 or not all(math.isfinite(lr) and lr > 0 for lr in args.lrs or [1]):
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
    state = load_checkpoint(args.checkpoint)
    config = state.get("config")
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict) or not config["model"]:
        raise UserError(f"{args.checkpoint}: no model config inside; use a checkpoint written by scripts/train.py")
    model = check_network(build_model(config["model"], f"{args.checkpoint}: model"), f"{args.checkpoint}: model")
    load_weights(model, model_state(state, args.checkpoint), args.checkpoint)
    recommended = (state.get("network") or {}).get("recommended", {}).get("adapt_lrs")
    lrs = args.lrs or recommended or list(PAPER_ADAPT_LRS)
    lrs_from = "--lrs" if args.lrs else "recommended by the checkpoint" if recommended else "the paper's"
    trained = (state.get("network") or {}).get("scales") or config.get("train", {}).get("scales", [])
    if trained and args.scale not in trained:
        print(f"warning: {args.checkpoint} was trained at x{trained}, not x{args.scale}", file=sys.stderr)
    device = resolve_device(args.device)
    if device.type == "cpu":
        tune_cpu_allocator()
    model = inference_model(model, device, channels_last=True)

    lr = to_tensor(load_image(args.image)).to(device)
    if estimating:
        estimator = build_estimator(args.estimator, args.kernel_net, device=device)
        try:
            estimate = estimator(lr, args.scale)
        except UserError as exc:
            raise UserError(f"{args.image}: {exc}") from None
        degradation = estimate.degradation()
        print(f"estimated the kernel with {estimate.estimator} in {estimate.seconds:.2f} s on {device}")
        if degradation is None:
            print(f"the estimate is unreliable ({estimate.unreliable}): no adaptation, MZSR(0)")
            args.steps = 0
    start = time.perf_counter()
    try:
        with progress_bar(args.steps) as bar:
            adapted = adapt_to_image(model, lr, args.scale, degradation, step_lrs(args.steps, lrs),
                                     on_step=lambda: bar.update(1))
    except UserError as exc:
        raise UserError(f"{args.image}: {exc}") from None
    sr = upscale(model, adapted.params, lr, args.scale)
    seconds = time.perf_counter() - start
    if adapted.diverged:
        raise UserError(f"{args.image}: {adapted.divergence()} with lrs "
                        f"{' '.join(map(str, lrs))} ({lrs_from}); nothing written. Try smaller --lrs or fewer --steps")
    if not torch.isfinite(sr).all():
        raise UserError(f"{args.image}: the output holds NaN or infinity; nothing written")
    save_image(sr, args.out)
    if estimating:
        save_kernel(estimate.kernel, *kernel_paths)
        print(f"wrote the estimated kernel ({estimate.kernel.shape[0]}x{estimate.kernel.shape[1]}) to "
              f"{kernel_paths[0]} and {kernel_paths[1]}")
    print(f"wrote {args.out} ({sr.shape[-1]}x{sr.shape[-2]}, MZSR({args.steps}) with lrs {lrs} ({lrs_from}) "
          f"in {seconds:.2f} s on {device})")


if __name__ == "__main__":
    main()
