"""Degradation speed: batched ``srlab.degradation.degrade`` vs the original MZSR per-image scipy loop.

    python scripts/benchmark_degradation.py [--batch 64] [--patch 96] [--kernel 15] [--scale 2] [--repeats 5]

Both are timed in this one run on the same data (median of ``--repeats`` after one warm-up).
The baseline is what the TensorFlow MZSR code does: ``scipy.ndimage.correlate(..., mode="reflect")``
for every sample and channel, then ``[::s, ::s]``. On CUDA the batched version runs on the GPU too.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import scipy.ndimage as ndi
import torch

from srlab.checkpoint import save_json
from srlab.cli import add_json_output, json_output, main_guard
from srlab.degradation import degrade, random_kernels


def median_seconds(fn, repeats: int, sync=lambda: None) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@main_guard
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--patch", type=int, default=96)
    p.add_argument("--kernel", type=int, default=15)
    p.add_argument("--scale", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    add_json_output(p, "--json", None)
    args = p.parse_args(argv)
    out = json_output(args.json, "--json", args.overwrite)

    g = torch.Generator().manual_seed(0)
    hr = torch.rand(args.batch, 3, args.patch, args.patch, generator=g)
    kernels = random_kernels(args.batch, args.scale, args.kernel, generator=g)
    hr_np, k_np, s = hr.numpy(), kernels.numpy(), args.scale

    def scipy_loop():
        return [[ndi.correlate(hr_np[b, c], k_np[b], mode="reflect")[::s, ::s] for c in range(3)]
                for b in range(args.batch)]

    check = torch.from_numpy(np.array(scipy_loop()))
    torch.testing.assert_close(degrade(hr, kernels, s), check, atol=1e-5, rtol=1e-5)

    rows = {"scipy loop (CPU)": median_seconds(scipy_loop, args.repeats),
            f"degrade, torch CPU ({torch.get_num_threads()} threads)": median_seconds(lambda: degrade(hr, kernels, s), args.repeats)}
    if torch.cuda.is_available():
        hr_c, k_c = hr.cuda(), kernels.cuda()
        rows[f"degrade, {torch.cuda.get_device_name()}"] = median_seconds(
            lambda: degrade(hr_c, k_c, s), args.repeats, torch.cuda.synchronize)
    base = rows["scipy loop (CPU)"]
    print(f"degrade {args.batch} patches {args.patch}x{args.patch}x3, {args.batch} kernels "
          f"{args.kernel}x{args.kernel}, x{s} direct; median of {args.repeats}")
    print("| implementation | ms | speed-up vs scipy |\n|---|---|---|")
    for name, sec in rows.items():
        print(f"| {name} | {sec * 1e3:.1f} | {base / sec:.1f}x |")
    if out is not None:
        save_json({"args": vars(args), "seconds": rows}, out, indent=1)


if __name__ == "__main__":
    main()
