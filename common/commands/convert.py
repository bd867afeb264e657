"""Other projects' checkpoints as srlab checkpoints, one command for every foreign format.

    srlab convert --arch vdsr    --checkpoint vdsr_model_epoch_50.pth --out /tmp/vdsr.pt
    srlab convert --arch fsrcnn  --checkpoint fsrcnn_x3.pth --out /tmp/fsrcnn_x3.pt
    srlab convert --arch carn_m  --checkpoint carn_m.pth --scale 4 --out /tmp/carn_m_x4.pt
    srlab convert --arch basicsr --checkpoint MSRResNet_x4.pth --out /tmp/msrresnet_x4.pt
    srlab convert --arch mzsr_tf --checkpoint MZSR/Model/Directx2 --out /tmp/mzsr_directx2.pt

``--arch`` names the format (``ARCHS``): ``vdsr`` (twtygqyy/pytorch-vdsr's whole-model pickle, in
PyTorch's legacy format: read by an allow-list, nothing in it runs), ``fsrcnn`` (yjn870/FSRCNN-
pytorch, Y channel; the scale from ``--scale`` or the file's name), ``carn_m`` (nmhkahn/CARN-
pytorch's multi-scale CARN-M: ``--scale`` picks one upsampler), ``basicsr`` (a BasicSR ``.pth``
of MSRResNet, ``params_ema`` when present) and ``mzsr_tf`` (an official MZSR TensorFlow
checkpoint; ``--kind`` when its name does not say which; ``srlab convert-mzsr`` is the same).

The result is an ordinary srlab checkpoint: the network is ours (``srlab.registry``), the weights
are the file's, and its card (``srlab.card``) says how to call it (VDSR: the Y channel of the
MATLAB-bicubic upscale; FSRCNN: the Y channel of the LR image; CARN-M: the RGB LR image, its mean
shift inside), at which scales, and where it came from: the source file, its size and SHA-256,
and its origin and licence for the public files srlab knows (``srlab.converters.KNOWN_SOURCES``),
else what ``--licence`` says. ``srlab test --checkpoint OUT``, ``srlab upscale``, ``srlab export``
and ``srlab.api`` take it as they take a trained one.

Public weights are other people's work: convert them for your own use, outside the repository
(``/tmp``), and keep to their licences; the output is never written over an existing file
without ``--overwrite``.
"""
from __future__ import annotations

import argparse
import importlib
from dataclasses import dataclass
from pathlib import Path

from srlab.checkpoint import save_checkpoint
from srlab.cli import main_guard
from srlab.converters import Converted
from srlab.errors import UserError
from srlab.outputs import check_output_file


@dataclass(frozen=True)
class Format:
    converter: str  # "module:function", imported when used (the core names families by string only)
    reads: str
    takes_scale: bool = False
    takes_kind: bool = False


ARCHS = {
    "vdsr": Format("srlab.converters:from_twtygqyy_vdsr",
                   "twtygqyy/pytorch-vdsr's whole-model pickle (model_epoch_50.pth, legacy format)"),
    "fsrcnn": Format("srlab.converters:from_yjn870_fsrcnn", "yjn870/FSRCNN-pytorch's fsrcnn_x{2,3,4}.pth",
                     takes_scale=True),
    "carn_m": Format("srlab.converters:from_nmhkahn_carn_m", "nmhkahn/CARN-pytorch's carn_m.pth, one scale",
                     takes_scale=True),
    "basicsr": Format("srlab.converters:from_basicsr", "a BasicSR .pth ({'params' | 'params_ema': ...}) of MSRResNet",
                      takes_scale=True),
    "mzsr_tf": Format("srlab.mzsr.convert:convert_official", "an official MZSR TensorFlow checkpoint (JWSoh/MZSR)",
                      takes_kind=True),
}


def convert(arch: str, checkpoint: str | Path, scale: int | None = None, kind: str | None = None,
            licence: str | None = None) -> Converted:
    """The srlab checkpoint for the ``arch``-format file ``checkpoint``."""
    if arch not in ARCHS:
        raise UserError(f"--arch {arch!r}: unknown; allowed: {', '.join(ARCHS)}")
    spec = ARCHS[arch]
    if scale is not None and not spec.takes_scale:
        raise UserError(f"--scale: --arch {arch} takes no scale (the file says which it serves)")
    if scale is not None and scale not in (2, 3, 4):
        raise UserError(f"--scale {scale}: allowed: 2, 3, 4")
    if kind is not None and not spec.takes_kind:
        raise UserError(f"--kind: for --arch mzsr_tf only, not {arch}")
    path = Path(checkpoint)
    if arch != "mzsr_tf" and not path.is_file():  # MZSR's is a prefix of several files: it checks its own
        raise UserError(f"{path}: checkpoint not found")
    module, _, function = spec.converter.partition(":")
    options = {"kind": kind} if spec.takes_kind else {}
    try:
        return getattr(importlib.import_module(module), function)(path, scale=scale, licence=licence, **options)
    except UserError as exc:  # every message names the file (a network's own check may not)
        if str(exc).startswith((str(path), "--")):
            raise
        raise UserError(f"{path}: {exc}") from None


def write(arch: str, checkpoint: str, out: str, scale: int | None = None, kind: str | None = None,
          licence: str | None = None, overwrite: bool = False) -> Path:
    """Convert and save (the output checked first); print what was written."""
    out_path = check_output_file(out, "--out", inputs=[checkpoint], suffixes=[".pt", ".pth"], overwrite=overwrite)
    converted = convert(arch, checkpoint, scale, kind, licence)
    save_checkpoint(converted.state, out_path)
    card = converted.state["card"]
    print(f"wrote {out_path}: {converted.summary}, {converted.parameters:,} parameters, serves "
          f"x{', x'.join(map(str, card['scales']))}; licence: {card['provenance'].get('licence', 'unknown')}")
    return out_path


@main_guard
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", required=True, choices=list(ARCHS),
                        help="the file's format: " + "; ".join(f"{k}: {v.reads}" for k, v in ARCHS.items()))
    parser.add_argument("--checkpoint", required=True, help="the file to convert (mzsr_tf: the checkpoint's prefix)")
    parser.add_argument("--out", required=True, help="the .pt file to write")
    parser.add_argument("--scale", type=int, help="fsrcnn: the scale the file was trained for (default: from its "
                                                  "name); carn_m: which upsampler of the multi-scale file")
    parser.add_argument("--kind", help="mzsr_tf: which official model (default: from the prefix's name)")
    parser.add_argument("--licence", help="the source's licence, recorded in the card (default: known for the "
                                          "public files srlab knows by SHA-256, else 'unknown')")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = parser.parse_args(argv)
    write(args.arch, args.checkpoint, args.out, args.scale, args.kind, args.licence, args.overwrite)


if __name__ == "__main__":
    main()
