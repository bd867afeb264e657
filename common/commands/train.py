"""Train a method from a YAML config.

    python scripts/train.py --config configs/demo.yaml [--opt train.total_iters=100 ...]
                            [--resume auto|PATH | --overwrite] [--out DIR]

Multi-GPU: ``torchrun --nproc_per_node=K scripts/train.py --config ...`` (PyTorch DDP).
The run folder (default ``runs/<name>``) gets config.yaml, log.txt, tb/ and checkpoints/. A folder
that already holds a run is never overwritten: continue it with ``--resume auto``, or start over
with ``--overwrite``. Ctrl-C or SIGTERM saves a checkpoint and exits with 130 or 143.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from srlab.cli import main_guard
from srlab.config import config_errors
from srlab.device import resolve_device, tune_cpu_allocator
from srlab.errors import UserError
from srlab.evaluate import format_table
from srlab.registry import load_method
from srlab.runner import train
from srlab.stopping import Interrupted


@main_guard(interrupted="stopped; the checkpoints saved so far are kept")
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML config file")
    parser.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. train.total_iters=100 (repeatable)")
    parser.add_argument("--resume", help="'auto' (the run folder's last.pt, if any) or a checkpoint path")
    parser.add_argument("--overwrite", action="store_true",
                        help="start over in a run folder that holds a run (deletes its checkpoints, log and "
                             "TensorBoard files)")
    parser.add_argument("--out", help="run folder (default: runs/<name>)")
    args = parser.parse_args(argv)

    cfg, method = load_method(args.config, args.opt)
    if resolve_device(cfg.device).type == "cpu":
        tune_cpu_allocator()
    if not method.trainable:
        raise UserError(f"{args.config}: method {cfg.method!r} has nothing to train; use scripts/test.py")
    out_dir = Path(args.out or Path("runs") / cfg.name)
    try:
        with config_errors(args.config, args.opt):  # e.g. the network against train.scales / val.scales
            records = train(method, cfg, out_dir, args.resume, args.overwrite)
    except Interrupted as stop:
        sys.exit(128 + stop.signum)  # the shell's convention: 130 for Ctrl-C, 143 for SIGTERM
    if records:
        print(f"\nfinal validation ({cfg.name}):\n{format_table(records)}")


if __name__ == "__main__":
    main()
