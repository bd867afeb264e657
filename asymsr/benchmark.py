"""VDSR vs Asym-VDSR: parameters, FLOPs, checkpoint size and inference latency, in one run.

    python scripts/benchmark_asymsr.py [--device cpu|cuda] [--sizes 256 512] [--repeats 7]
                                       [--dtype float32|bfloat16|float16] [--out runs/benchmark_asymsr.json]

Networks at their paper size, random weights (speed does not depend on them), one Y-channel
image of each size, inference mode:

* ``vdsr``            VDSR, channels-last (the project's inference path)
* ``asym_vdsr``       Asym-VDSR, 3x1 + 1x3, channels-last (the project's inference path)
* ``asym_vdsr_fused`` Asym-VDSR after ``fuse()`` (every pair one 3x3 conv), channels-last
* ``asym_vdsr_naive`` Asym-VDSR run as plain PyTorch runs it by default (NCHW): the baseline

On a CPU every network is timed twice in the same run: first with the C library's default
allocator settings (what a plain PyTorch script gets), then after ``tune_cpu_allocator()``, which
``scripts/train.py`` and ``scripts/test.py`` call on CPU. The project's path is channels-last
with the tuned allocator; the naive baseline is NCHW with the default one.

Latency is the median over ``--repeats`` rounds after two warm-up rounds; each round runs every
network once, in turn, so slow phases of a shared machine hit all of them alike (CUDA is
synchronised around each call). FLOPs are counted by ``torch.utils.flop_counter`` (2 per
multiply-add) and given per output pixel; the size is that of the fp32 state dict as saved.
"""
from __future__ import annotations

import argparse
import io
import platform

import torch
from torch.utils.flop_counter import FlopCounterMode

from srlab.asymsr.models import VDSR, AsymVDSR, count_parameters
from srlab.checkpoint import save_json
from srlab.cli import add_json_output, json_output, main_guard
from srlab.device import resolve_device, tune_cpu_allocator
from srlab.timing import interleaved_median_seconds


def flops_per_pixel(model: torch.nn.Module, device: torch.device) -> float:
    x = torch.rand(1, 1, 64, 64, device=device)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() / x.numel()


def checkpoint_mb(model: torch.nn.Module) -> float:
    buffer = io.BytesIO()
    torch.save({k: v.float().contiguous() for k, v in model.state_dict().items()}, buffer)
    return buffer.getbuffer().nbytes / 1e6


def latencies(models: dict[str, torch.nn.Module], size: int, device: torch.device, dtype: torch.dtype,
              repeats: int) -> dict[str, float]:
    """Median milliseconds per forward pass of a (1, 1, size, size) image, rounds interleaved."""
    x = torch.rand(1, 1, size, size, device=device)
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    with torch.inference_mode(), torch.autocast(device.type, dtype, enabled=dtype != torch.float32):
        seconds = interleaved_median_seconds({name: (lambda m=model: m(x)) for name, model in models.items()},
                                             repeats, warmup=2, sync=sync)
    return {name: 1000 * s for name, s in seconds.items()}


@main_guard
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    add_json_output(parser, "--out", "runs/benchmark_asymsr.json")
    args = parser.parse_args(argv)
    out = json_output(args.out, "--out", args.overwrite)

    device = resolve_device(args.device)
    dtype = getattr(torch, args.dtype)
    torch.manual_seed(0)
    asym = AsymVDSR()
    models = {
        "vdsr": VDSR(),
        "asym_vdsr": asym,
        "asym_vdsr_fused": asym.fuse(),
        "asym_vdsr_naive": AsymVDSR(),
    }
    for name, model in models.items():
        layout = torch.contiguous_format if name.endswith("naive") else torch.channels_last
        model.to(device, memory_format=layout).eval()
    rows = {name: {"parameters": count_parameters(m), "flops_per_pixel": flops_per_pixel(m, device),
                   "checkpoint_mb": checkpoint_mb(m)} for name, m in models.items()}

    # CUDA has its own caching allocator: one phase. CPU: default allocator, then tuned.
    phases = ["default_alloc", "tuned_alloc"] if device.type == "cpu" else ["cuda"]
    for phase in phases:
        if phase == "tuned_alloc" and not tune_cpu_allocator():
            print("note: not glibc, the allocator was left as it is")
        for size in args.sizes:
            for name, ms in latencies(models, size, device, dtype, args.repeats).items():
                rows[name][f"ms_{size}_{phase}"] = ms

    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(f"device: {device} ({device_name}), {torch.get_num_threads()} threads, {args.dtype}, "
          f"median of {args.repeats} interleaved rounds")
    columns = [f"ms_{s}_{p}" for p in phases for s in args.sizes]
    print(" | ".join(["network", "params", "kFLOP/px", "MB"] + [c.removeprefix("ms_") + " ms" for c in columns]))
    for name, r in rows.items():
        cells = [name, f"{r['parameters']:,}", f"{r['flops_per_pixel'] / 1e3:.1f}", f"{r['checkpoint_mb']:.2f}"]
        print(" | ".join(cells + [f"{r[c]:.1f}" for c in columns]))

    ours, baseline = phases[-1], phases[0]  # the project's path vs what plain PyTorch gets
    ratios = {}
    for s in args.sizes:
        ms = lambda name, phase=ours: rows[name][f"ms_{s}_{phase}"]  # noqa: E731
        ratios[s] = {
            "asym_over_vdsr": ms("asym_vdsr") / ms("vdsr"),
            "naive_over_asym": ms("asym_vdsr_naive", baseline) / ms("asym_vdsr"),
            "fused_over_factorized": ms("asym_vdsr_fused") / ms("asym_vdsr"),
        }
        r = ratios[s]
        print(f"{s}²: Asym-VDSR takes {r['asym_over_vdsr']:.2f}x the time of VDSR; "
              f"{r['naive_over_asym']:.2f}x faster than naive NCHW ({baseline}); "
              f"fused/factorized = {r['fused_over_factorized']:.2f} "
              f"(fastest form here: {'fused' if r['fused_over_factorized'] < 1 else 'factorized'})")
    save_json({"device": str(device), "device_name": device_name, "threads": torch.get_num_threads(),
                               "dtype": args.dtype, "repeats": args.repeats, "torch": torch.__version__,
                               "networks": rows, "ratios": ratios}, out, indent=2)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
