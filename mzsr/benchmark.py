"""MZSR meta-steps per second: tasks batched with ``torch.func.vmap`` against a per-task loop.

    python scripts/benchmark_mzsr.py [--device cpu|cuda] [--tasks 5] [--steps 5] [--patches 8]
                                     [--size 64] [--repeats 5] [--first-order] [--out runs/benchmark_mzsr.json]

One meta-step = for each of ``--tasks`` tasks, ``--steps`` inner SGD steps on ``--patches``
task-train patches, the task-test loss after every inner step (MZSR's multi-step loss), then the
backward pass to the initial weights (second order unless ``--first-order``) and an Adam step.
The paper's network (MZSRNet, 225,091 parameters) and setting (5 x 5 x 8, 64x64 patches).

Versions: the straightforward per-task loop (the baseline), the tasks batched with ``vmap``, and
the loop on channels-last weights and patches, which is what ``task_batching: auto`` trains with
on a CPU (with ``train.channels_last: true``); on CUDA ``auto`` is the vmap version. All run in
the same process, alternating, median of ``--repeats`` after one warm-up each.
"""
from __future__ import annotations

import argparse

import torch

from srlab.checkpoint import save_json
from srlab.cli import add_json_output, json_output, main_guard
from srlab.device import resolve_device, tune_cpu_allocator
from srlab.mzsr.meta import task_test_losses, task_test_losses_loop
from srlab.mzsr.model import MZSRNet
from srlab.timing import interleaved_median_seconds


@main_guard
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--patches", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--first-order", action="store_true")
    add_json_output(parser, "--out", "runs/benchmark_mzsr.json")
    args = parser.parse_args(argv)
    out = json_output(args.out, "--out", args.overwrite)

    device = resolve_device(args.device)
    if device.type == "cpu":
        tune_cpu_allocator()  # as scripts/train.py does
    torch.manual_seed(0)
    model = MZSRNet().to(device)
    model_cl = MZSRNet().to(device, memory_format=torch.channels_last)
    model_cl.load_state_dict(model.state_dict())
    optimizers = {m: torch.optim.Adam(m.parameters(), lr=1e-4) for m in (model, model_cl)}
    shape = (args.tasks, args.patches, 3, args.size, args.size)
    data = [torch.rand(shape, device=device) for _ in range(4)]

    def meta_step(losses_fn, net) -> None:
        params = dict(net.named_parameters())
        losses = losses_fn(net, params, *data, steps=args.steps, inner_lr=0.01, first_order=args.first_order)
        optimizers[net].zero_grad(set_to_none=True)
        losses.mean(dim=0).sum().backward()
        optimizers[net].step()

    versions = {"per_task_loop": (task_test_losses_loop, model), "vmap_batched": (task_test_losses, model),
                "loop_channels_last": (task_test_losses_loop, model_cl)}
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    seconds = interleaved_median_seconds({name: (lambda v=v: meta_step(*v)) for name, v in versions.items()},
                                         args.repeats, warmup=1, sync=sync)
    order = "first" if args.first_order else "second"
    print(f"device: {device}, {torch.get_num_threads()} threads; {args.tasks} tasks x {args.steps} inner steps x "
          f"{args.patches} patches {args.size}x{args.size}, {order} order, median of {args.repeats}")
    for name, s in seconds.items():
        print(f"{name:18s} {s * 1000:9.1f} ms/meta-step  {1 / s:7.3f} meta-steps/s")
    speedup = {name: seconds["per_task_loop"] / s for name, s in seconds.items() if name != "per_task_loop"}
    default = "vmap_batched" if device.type == "cuda" else "loop_channels_last"
    for name, x in speedup.items():
        print(f"speed-up over the per-task loop: {name} {x:.2f}x" + (" (task_batching: auto)" if name == default else ""))
    save_json({"device": str(device), "threads": torch.get_num_threads(), "args": vars(args),
                               "seconds_per_meta_step": seconds, "speedup_over_loop": speedup,
                               "auto_picks": default}, out, indent=2)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
