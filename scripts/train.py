"""Train a method from a YAML config.

    python scripts/train.py --config configs/demo.yaml [--opt train.total_iters=100 ...]
                            [--resume auto|PATH] [--out DIR]

Multi-GPU: ``torchrun --nproc_per_node=K scripts/train.py --config ...`` (PyTorch DDP).
The run folder (default ``runs/<name>``) gets config.yaml, log.txt, tb/ and checkpoints/.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli import main_guard
from registry import METHODS, build_method

from common.config import load_config
from common.errors import UserError
from common.evaluate import format_table
from common.runner import Interrupted, resolve_device, tune_cpu_allocator, train


@main_guard
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="YAML config file")
    parser.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. train.total_iters=100 (repeatable)")
    parser.add_argument("--resume", help="'auto' (the run folder's last.pt, if any) or a checkpoint path")
    parser.add_argument("--out", help="run folder (default: runs/<name>)")
    args = parser.parse_args()

    cfg = load_config(args.config, args.opt, METHODS)
    if resolve_device(cfg.device).type == "cpu":
        tune_cpu_allocator()
    method = build_method(cfg)
    if not method.trainable:
        raise UserError(f"{args.config}: method {cfg.method!r} has nothing to train; use scripts/test.py")
    out_dir = Path(args.out or Path("runs") / cfg.name)
    try:
        records = train(method, cfg, out_dir, args.resume)
    except Interrupted:
        sys.exit(130)
    if records:
        print(f"\nfinal validation ({cfg.name}):\n{format_table(records)}")


if __name__ == "__main__":
    main()
