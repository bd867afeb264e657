"""The ``srlab`` command, and what its subcommands share: the one-line error handling.

    srlab train --config C ...        srlab test --config C --checkpoint W ...
    srlab upscale --checkpoint W --input FILE|DIR --out FILE|DIR [--scale S]
    srlab zeroshot --checkpoint W --image I --kernel K --out O
    srlab prepare-classsr ...         srlab benchmark asymsr|classsr|mzsr|photo|inference|degradation|training ...
    srlab prepare-test8k --div8k DIR --out DIR
    srlab pack-data [--out data_pack]
    srlab convert --arch vdsr|fsrcnn|carn_m|basicsr|mzsr_tf --checkpoint SRC --out F.pt
    srlab convert-mzsr --checkpoint .../MZSR/Model/Directx2 --out F.pt   (= srlab convert --arch mzsr_tf)

Each subcommand is a module with a ``main(argv)``: the generic ones in ``srlab.commands``, the
ones of a method family in its package (``srlab.mzsr.zeroshot_command``, ``srlab.asymsr.benchmark``, ...).
``scripts/<name>.py`` runs the same ``main`` (``python scripts/train.py ...`` is ``srlab train ...``).
"""
from __future__ import annotations

import functools
import importlib
import sys
import warnings

from srlab.errors import UserError


def main_guard(fn=None, *, interrupted: str = "nothing was written"):
    """Run ``fn``; a ``UserError`` becomes one line on stderr and exit status 2 (no traceback),
    Ctrl-C one line saying what happened to the output (``interrupted``) and exit status 130."""
    if fn is None:
        return functools.partial(main_guard, interrupted=interrupted)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs) -> None:
        warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"
        try:
            fn(*args, **kwargs)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print(f"\ninterrupted (Ctrl-C): {interrupted}", file=sys.stderr)
            sys.exit(130)

    return wrapper


def add_json_output(parser, flag: str, default: str | None) -> None:
    """``flag`` (a JSON results file) and ``--overwrite``; check them with ``json_output``."""
    parser.add_argument(flag, default=default, help=f"results as JSON (default: {default})")
    parser.add_argument("--overwrite", action="store_true", help=f"replace {flag} if it exists")


def json_output(path: str | None, flag: str, overwrite: bool):
    """The checked output path (or None): done before the timing starts, so no result is lost."""
    from srlab.outputs import check_output_file

    return None if path is None else check_output_file(path, flag, suffixes=[".json"], overwrite=overwrite)


# subcommand -> (module with its main(argv), what it does). Import strings: a command imports its
# method family only when it runs (common never imports one at import time).
COMMANDS = {
    "train": ("srlab.commands.train", "train a method from a YAML config"),
    "test": ("srlab.commands.test", "evaluate on benchmark sets with the literature's protocol"),
    "upscale": ("srlab.commands.upscale", "super-resolve your own images with a trained checkpoint"),
    "zeroshot": ("srlab.mzsr.zeroshot_command", "super-resolve one real image with MZSR (adapts to its kernel)"),
    "export": ("srlab.commands.export", "weights as safetensors, or the network as ONNX"),
    "prepare-classsr": ("srlab.classsr.prepare_command", "ClassSR's class split of your training data"),
    "prepare-test8k": ("srlab.classsr.test8k", "ClassSR's Test2K/Test4K/Test8K from your DIV8K download"),
    "pack-data": ("srlab.commands.pack_data", "training and test images as lossless WebP (a data pack)"),
    "convert": ("srlab.commands.convert", "other projects' weights (VDSR, FSRCNN, CARN-M, BasicSR, MZSR) as ours"),
    "convert-mzsr": ("srlab.mzsr.convert", "an official MZSR TensorFlow checkpoint (= convert --arch mzsr_tf)"),
    "benchmark asymsr": ("srlab.asymsr.benchmark", "VDSR vs Asym-VDSR inference time"),
    "benchmark classsr": ("srlab.classsr.benchmark", "ClassSR routing vs the whole-image network"),
    "benchmark mzsr": ("srlab.mzsr.benchmark", "MZSR meta-step: per-task loop vs vmap"),
    "benchmark photo": ("srlab.commands.benchmark_photo", "checkpoints on photos shrunk by common tools, and JPEG"),
    "benchmark inference": ("srlab.commands.benchmark_inference", "inference paths: GFLOP/s vs the CPU's peak"),
    "benchmark degradation": ("srlab.commands.benchmark_degradation", "batched degrade vs the scipy loop"),
    "benchmark training": ("srlab.commands.benchmark_training", "training it/s and data wait, speed switches on/off"),
}


def main(argv: list[str] | None = None) -> None:
    """``srlab <command> [options]``: run ``srlab.commands.<module>.main`` with the options."""
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--version"]:
        from srlab import __version__

        print(f"srlab {__version__}")
        return
    name = " ".join(argv[:2]) if argv[:1] == ["benchmark"] else " ".join(argv[:1])
    if name not in COMMANDS:
        usage = "\n".join(f"  srlab {command:<22} {what}" for command, (_, what) in COMMANDS.items())
        if argv and argv[0] not in ("-h", "--help"):
            print(f"error: unknown command {name!r}; the commands are:\n{usage}", file=sys.stderr)
            sys.exit(2)
        print(f"usage: srlab <command> [options]  (srlab <command> --help for its options; srlab --version)\n\n{usage}")
        return
    module, _ = COMMANDS[name]
    rest = argv[len(name.split()):]
    sys.argv[0] = f"srlab {name}"  # what argparse shows in usage and errors
    if from_command_line:  # and what results.json records as the command (not "srlab test test ...")
        sys.argv[1:] = rest
    importlib.import_module(module).main(rest)


if __name__ == "__main__":
    main()
