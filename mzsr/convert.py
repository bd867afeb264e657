"""The official MZSR TensorFlow checkpoints as checkpoints of this project.

    srlab convert --arch mzsr_tf --checkpoint path/to/MZSR/Pretrained --out mzsr_official_pretrained.pt
    srlab convert-mzsr --checkpoint path/to/MZSR/Model/Directx2 --out mzsr_official_directx2.pt   (the same)

``--checkpoint`` is the prefix of a checkpoint of the official repository (JWSoh/MZSR:
``Pretrained/Pretrained``, ``Model/Directx2``, ``Model/Bicubicx2``, ``Model/Directx4``,
``Model/Multi-scale``), i.e. the ``.index`` file's path without ``.index``; which one it is comes
from its name, or ``--kind``. The network is ours (``srlab.mzsr.model.MZSRNet``, the same eight 3x3
convolutions, ReLUs and global residual as the official ``MODEL``), so only the weights move:
``MODEL/convK/kernel`` (3, 3, in, out) becomes ``body.{2(K-1)}.weight`` (out, in, 3, 3), the
biases as they are. Adam's slots are left behind.

The file written holds ``model``, a ``config`` (the project's config of the matching stage, so
``test.py``, ``zeroshot.py``, ``srlab upscale`` and ``load_upscaler`` take it like a checkpoint of
their own), its network ``card`` (``srlab.card``: the scales the official model serves, its official
test-time learning rates, and as provenance the source files' names, sizes and SHA-256), and
``converted_from`` (the same facts as data: the files, the official global step).

The official repository has no licence: convert for your own use, do not redistribute the result.
``srlab convert --arch mzsr_tf`` (``srlab.commands.convert``, every foreign format) calls
``convert_official``; ``srlab convert-mzsr`` (``main``) is its old name, kept as an alias.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch

from srlab.cli import main_guard
from srlab.commands.convert import write
from srlab.config import load_config, to_dict
from srlab.converters import Converted
from srlab.errors import UserError
from srlab.method import build_card
from srlab.mzsr.methods import AdaptSettings
from srlab.mzsr.tf_checkpoint import checkpoint_files, read_index, read_tensors
from srlab.provenance import sha256
from srlab.registry import build_method

CONFIGS = Path(__file__).resolve().parent.parent / "configs" / "mzsr"
NUM_LAYERS = 8
LICENCE = "none: JWSoh/MZSR has no licence file; convert for your own use, do not redistribute"

# Official name -> (our config of that stage, overrides, the official test-time lrs (step i:
# entry min(i, last)), the scales the model serves). The lrs are those of the official test.py.
KINDS = {
    "Pretrained": ("pretrain_x2.yaml", [], None, [2]),
    "Directx2": ("meta_x2.yaml", ["options.mode=direct"], [2e-2, 1e-2, 1e-2, 1e-2, 5e-3], [2]),
    "Bicubicx2": ("meta_x2.yaml", ["options.mode=bicubic"], [1e-2, 1e-2, 1e-2, 1e-3], [2]),
    "Directx4": ("meta_x4.yaml", ["options.mode=direct"], [1e-2, 5e-3, 5e-3, 5e-3, 5e-3, 1e-3], [4]),
    "Multi-scale": ("meta_x2.yaml", ["options.mode=direct"], [1e-2, 1e-2, 1e-2, 5e-3], [2, 4]),
}


def tensor_names() -> list[str]:
    return [f"MODEL/conv{k}/{part}" for k in range(1, NUM_LAYERS + 1) for part in ("kernel", "bias")]


def official_to_ours(tensors: dict) -> dict[str, torch.Tensor]:
    """The official ``MODEL/convK/{kernel,bias}`` arrays -> ``MZSRNet`` state dict."""
    state = {}
    for k in range(1, NUM_LAYERS + 1):
        kernel = torch.from_numpy(tensors[f"MODEL/conv{k}/kernel"].copy())
        state[f"body.{2 * (k - 1)}.weight"] = kernel.permute(3, 2, 0, 1).contiguous()  # HWIO -> OIHW
        state[f"body.{2 * (k - 1)}.bias"] = torch.from_numpy(tensors[f"MODEL/conv{k}/bias"].copy())
    return state


def kind_of(prefix: Path, kind: str | None) -> str:
    name = kind or prefix.name
    if name not in KINDS:
        raise UserError(f"{prefix}: which official model this is does not follow from its name; pass --kind "
                        f"({', '.join(KINDS)})")
    return name


def convert(prefix: str | Path, kind: str | None = None) -> dict:
    """The checkpoint dict for the official checkpoint at ``prefix``."""
    prefix = Path(prefix)
    index, shards = checkpoint_files(prefix)
    prefix = index.with_suffix("")
    kind = kind_of(prefix, kind)
    entries = read_index(index)
    step_name = ["global_step"] if "global_step" in entries else []
    tensors = read_tensors(prefix, tensor_names() + step_name, entries)
    config_file, overrides, lrs, scales = KINDS[kind]
    # The earlier stage's file is not needed: the converted weights are the model.
    cfg = load_config(CONFIGS / config_file, [*overrides, "options.pretrained=null"] if lrs else overrides)
    method = build_method(cfg)
    model = method.build_model()
    state = official_to_ours(tensors)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    wrong = [k for k, v in state.items() if tuple(v.shape) != shapes[k]]
    if wrong:
        raise UserError(f"{index}: {wrong[0]} has shape {tuple(state[wrong[0]].shape)}, the paper's network "
                        f"{shapes[wrong[0]]}: not an MZSR checkpoint")
    model.load_state_dict(state)
    if lrs:
        method.use_recommended(AdaptSettings(adapt_steps=10, adapt_lrs=lrs))
    files = [index, *shards]
    card = dataclasses.replace(build_card(method, model, {
        "converted_from": f"JWSoh/MZSR {kind} (TensorFlow checkpoint)",
        "global_step": int(tensors["global_step"]) if step_name else -1,
        "files": ", ".join(f"{f.name} ({f.stat().st_size} bytes, sha256 {sha256(f)})" for f in files),
    }), scales=tuple(scales))
    return {
        "model": model.state_dict(),
        "config": to_dict(cfg),
        "card": card.to_dict(),
        "converted_from": {
            "official": f"JWSoh/MZSR {kind}",
            "global_step": int(tensors["global_step"]) if step_name else None,
            "files": [{"name": f.name, "bytes": f.stat().st_size, "sha256": sha256(f)} for f in files],
        },
    }


def convert_official(prefix: Path, scale: int | None = None, licence: str | None = None,
                     kind: str | None = None) -> Converted:
    """``convert`` for ``srlab convert --arch mzsr_tf``: the card also says who converted it and
    the licence (the official repository has none)."""
    state = convert(prefix, kind)
    state["card"]["provenance"] |= {"converted_by": "srlab convert --arch mzsr_tf", "licence": licence or LICENCE}
    source = state["converted_from"]
    summary = f"official {source['official']} (global step {source['global_step']})"
    return Converted(state, summary, sum(v.numel() for v in state["model"].values()))


@main_guard
def main(argv: list[str] | None = None) -> None:
    """``srlab convert-mzsr``: the old name of ``srlab convert --arch mzsr_tf``."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="the official checkpoint's prefix (e.g. .../Model/Directx2)")
    p.add_argument("--kind", choices=list(KINDS), help="which official model (default: from the prefix's name)")
    p.add_argument("--out", required=True, help="the .pt file to write")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = p.parse_args(argv)
    write("mzsr_tf", args.checkpoint, args.out, kind=args.kind, overwrite=args.overwrite)


if __name__ == "__main__":
    main()
