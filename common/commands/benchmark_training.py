"""Training speed of whole configs: iterations per second and the share of the time spent waiting
for data, with the speed switches off and on, in one run.

    python scripts/benchmark_training.py --config configs/asymsr/vdsr_x234.yaml [--config ...]
        [--iters 200] [--variants fp32 bf16 fp16 channels_last compile all] [--rounds 1]
        [--opt KEY=VALUE ...] [--json runs/benchmark_training.json]

Each (config, variant) trains ``--iters`` iterations with the runner itself, from the config's
initial weights, into a temporary folder that is deleted afterwards; validation runs once, at the
end, on one image. The speed is that of the second half of the iterations (after torch.compile's
compilation and cuDNN's first calls), as the runner logs it: iterations per second, and
``data_wait``, the share of that time the loop waited for the loader's next batch (the data path
is not the bottleneck when it is near 0). ``--rounds R`` repeats the whole sequence R times,
interleaved, and reports each row's median.

The variants: ``fp32`` (amp off, channels-first, eager), ``bf16``, ``fp16`` (train.amp),
``channels_last``, ``compile`` and ``all`` (bf16 + channels_last + compile). A variant a method
refuses (mzsr_meta: AMP and compile) is reported as such. ``--opt`` applies to every run, e.g.
``--opt options.pretrained=null`` to time meta-training without a stage-1 checkpoint.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from srlab.checkpoint import save_json
from srlab.cli import add_json_output, json_output, main_guard
from srlab.config import load_config
from srlab.device import resolve_device
from srlab.errors import ConfigError
from srlab.provenance import device_name
from srlab.registry import build_method
from srlab.runner import train

OFF = {"train.amp": "off", "train.channels_last": "false", "train.compile": "false"}
VARIANTS = {
    "fp32": {},
    "bf16": {"train.amp": "bf16"},
    "fp16": {"train.amp": "fp16"},
    "channels_last": {"train.channels_last": "true"},
    "compile": {"train.compile": "true"},
    "all": {"train.amp": "bf16", "train.channels_last": "true", "train.compile": "true"},
}


def switches(variant: str) -> list[str]:
    """The ``--opt`` overrides of ``variant``: every speed switch set, off unless the variant turns it on."""
    return [f"{key}={value}" for key, value in {**OFF, **VARIANTS[variant]}.items()]


def speed_from_log(log: Path) -> tuple[float, float]:
    """(iterations per second, data-wait share) of the last interval the runner logged."""
    line = [line for line in log.read_text().splitlines() if " it/s data_wait=" in line][-1]
    words = line.split()
    rate = float(words[words.index("it/s") - 1])
    wait = float(next(w for w in words if w.startswith("data_wait="))[len("data_wait="):-1]) / 100
    return rate, wait


def time_one(config: str, variant: str, iters: int, opts: list[str]) -> tuple[float, float] | str:
    """(it/s, data-wait share) of ``iters`` iterations, or why the variant cannot run."""
    run_opts = [*switches(variant), *opts, f"train.total_iters={iters}", f"train.log_every={iters // 2}",
                f"train.checkpoint_every={iters}", "train.val_every=0", "val.max_images=1",
                "train.scheduler.warmup_iters=0"]  # the lr does not change the speed; a long warm-up would not fit
    try:
        cfg = load_config(config, run_opts)
        method = build_method(cfg)
    except ConfigError as exc:
        if variant != "fp32" and any(key in str(exc) for key in VARIANTS[variant]):
            return f"refused ({exc})"
        raise
    with tempfile.TemporaryDirectory() as folder:
        train(method, cfg, Path(folder) / "run")
        return speed_from_log(Path(folder) / "run" / "log.txt")


@main_guard
def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", action="append", required=True, help="a training config (repeatable)")
    p.add_argument("--iters", type=int, default=200, help="iterations per run; the second half is timed")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--rounds", type=int, default=1, help="repeat everything, interleaved; report medians")
    p.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE", help="for every run")
    add_json_output(p, "--json", None)
    args = p.parse_args(argv)
    if args.iters < 4 or args.rounds < 1:
        p.error("--iters must be >= 4 and --rounds >= 1")
    out = json_output(args.json, "--json", args.overwrite)
    first = [load_config(config, args.opt) for config in args.config][0]  # all checked before the first run

    results: dict[tuple[str, str], list] = {}
    for _ in range(args.rounds):
        for config in args.config:
            for variant in args.variants:
                results.setdefault((config, variant), []).append(time_one(config, variant, args.iters, args.opt))

    where = resolve_device(first.device)
    device, device_is_cuda = device_name(where), where.type == "cuda"
    print(f"training speed on {device}: iterations {args.iters // 2 + 1}-{args.iters} of {args.iters}, "
          f"median of {args.rounds} round(s)" + ("; train.amp is ignored on the CPU (bf16/fp16 run in fp32)"
                                                  if not device_is_cuda else ""))
    print("| config | variant | it/s | data wait | speed vs fp32 |\n|---|---|---|---|---|")
    rows = []
    for (config, variant), runs in results.items():
        if isinstance(runs[0], str):
            print(f"| {config} | {variant} | {runs[0]} | | |")
            rows.append({"config": config, "variant": variant, "refused": runs[0]})
            continue
        rate, wait = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
        base = results.get((config, "fp32"))
        ratio = rate / statistics.median(r[0] for r in base) if base else None
        print(f"| {config} | {variant} | {rate:.2f} | {100 * wait:.0f}% | {f'{ratio:.2f}x' if ratio else ''} |")
        rows.append({"config": config, "variant": variant, "iterations_per_second": rate, "data_wait_share": wait,
                     "speed_vs_fp32": ratio, "rounds": [list(r) for r in runs]})
    if out is not None:
        save_json({"args": vars(args), "device": device, "rows": rows}, out, indent=1)


if __name__ == "__main__":
    main()
