"""MZSR meta-steps per second: tasks batched with ``torch.func.vmap`` against a per-task loop.

    python scripts/benchmark_mzsr.py [--device cpu|cuda] [--tasks 5] [--steps 5] [--patches 8]
                                     [--size 64] [--repeats 5] [--first-order] [--out runs/benchmark_mzsr.json]

One meta-step = for each of ``--tasks`` tasks, ``--steps`` inner SGD steps on ``--patches``
task-train patches, the task-test loss after every inner step (MZSR's multi-step loss), then the
backward pass to the initial weights (second order unless ``--first-order``) and an Adam step.
The paper's network (MZSRNet, 225,091 parameters) and setting (5 x 5 x 8, 64x64 patches). Both
versions run in the same process, alternating, median of ``--repeats`` after one warm-up each.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from timing import interleaved_median_seconds

from common.runner import resolve_device, tune_cpu_allocator
from mzsr.meta import task_test_losses, task_test_losses_loop
from mzsr.model import MZSRNet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--patches", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--first-order", action="store_true")
    parser.add_argument("--out", default="runs/benchmark_mzsr.json")
    args = parser.parse_args()

    device = resolve_device(args.device)
    if device.type == "cpu":
        tune_cpu_allocator()  # as scripts/train.py does
    torch.manual_seed(0)
    model = MZSRNet().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    shape = (args.tasks, args.patches, 3, args.size, args.size)
    data = [torch.rand(shape, device=device) for _ in range(4)]

    def meta_step(losses_fn) -> None:
        params = dict(model.named_parameters())
        losses = losses_fn(model, params, *data, steps=args.steps, inner_lr=0.01, first_order=args.first_order)
        optimizer.zero_grad(set_to_none=True)
        losses.mean(dim=0).sum().backward()
        optimizer.step()

    versions = {"vmap_batched": task_test_losses, "per_task_loop": task_test_losses_loop}
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    seconds = interleaved_median_seconds({name: (lambda fn=fn: meta_step(fn)) for name, fn in versions.items()},
                                         args.repeats, warmup=1, sync=sync)
    order = "first" if args.first_order else "second"
    print(f"device: {device}, {torch.get_num_threads()} threads; {args.tasks} tasks x {args.steps} inner steps x "
          f"{args.patches} patches {args.size}x{args.size}, {order} order, median of {args.repeats}")
    for name, s in seconds.items():
        print(f"{name:14s} {s * 1000:9.1f} ms/meta-step  {1 / s:7.3f} meta-steps/s")
    speedup = seconds["per_task_loop"] / seconds["vmap_batched"]
    print(f"batched / loop speed-up: {speedup:.2f}x")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": str(device), "threads": torch.get_num_threads(), "args": vars(args),
                               "seconds_per_meta_step": seconds, "speedup": speedup}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
