"""Export a checkpoint's weights for other tools: safetensors, or ONNX with any image size.

    srlab export --checkpoint weights/asymsr/asym_vdsr_x234_cpu.pt --out asym_vdsr.onnx
    srlab export --checkpoint weights/classsr/msrresnet_o_x4_cpu.pt --out msrresnet.safetensors --naming basicsr

The format follows ``--out``'s suffix. Both carry the checkpoint's network description (its
``model:`` section, input, scales) as metadata: ``safetensors`` in its header, ONNX in
``metadata_props["srlab.network"]``.

* ``.safetensors``: the weights to evaluate (the EMA weights when the run kept them), any network.
  ``--naming basicsr``: MSRResNet's keys as BasicSR names them, to load into BasicSR.
* ``.onnx``: the feed-forward network, with dynamic height and width, exactly as
  ``srlab.api`` runs it: its input is what the description says (VDSR: the Y channel of the
  MATLAB-bicubic upscale, in [0, 1]; MSRResNet: the LR RGB image). Networks trained with method
  ``supervised`` only: ClassSR's routing picks a branch per sub-image at run time, which a static
  ONNX graph cannot express, and MZSR adapts its weights to each image.

Needs the optional packages: ``pip install -e ".[export]"`` (safetensors, onnx, onnxruntime).
"""
from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import torch

from srlab.checkpoint import load_checkpoint, model_state
from srlab.cli import main_guard
from srlab.errors import UserError
from srlab.outputs import atomic_write, check_output_file


@main_guard
def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by srlab train")
    parser.add_argument("--out", required=True, help="a .safetensors or .onnx file")
    parser.add_argument("--naming", choices=["srlab", "basicsr"], default="srlab",
                        help="safetensors key names (basicsr: MSRResNet as BasicSR names it)")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    args = parser.parse_args(argv)
    out = check_output_file(args.out, "--out", inputs=[args.checkpoint], suffixes=[".safetensors", ".onnx"],
                            overwrite=args.overwrite)
    if out.suffix == ".safetensors":
        export_safetensors(args.checkpoint, out, args.naming)
    else:
        if args.naming != "srlab":
            raise UserError("--naming applies to .safetensors only")
        export_onnx(args.checkpoint, out, args.opset)
    print(f"wrote {out}")


def _description(state: dict) -> dict:
    """The checkpoint's ``network`` entry, completed from its config where the entry lacks a field
    (older checkpoints have no entry; a file may carry only a recommendation, as the shipped ClassSR
    weights do)."""
    config = state.get("config") or {}
    described = {"method": config.get("method"), "model": config.get("model"),
                 "scales": (config.get("train") or {}).get("scales")}
    network = state.get("network")
    return {**described, **network} if isinstance(network, dict) else described


def export_safetensors(checkpoint: str | Path, out: Path, naming: str = "srlab") -> None:
    try:
        from safetensors.torch import save
    except ImportError:
        raise UserError('exporting .safetensors needs the safetensors package: pip install -e ".[export]"') from None
    state = load_checkpoint(checkpoint)
    weights = {k: v.contiguous() for k, v in model_state(state, checkpoint).items()}
    description = _description(state)
    if naming == "basicsr":
        if (description.get("model") or {}).get("type") != "msrresnet":
            raise UserError(f"--naming basicsr: only for an msrresnet network, {checkpoint} holds "
                            f"{(description.get('model') or {}).get('type')!r}")
        from srlab.classsr.models import msrresnet_to_basicsr

        weights = msrresnet_to_basicsr(weights)
    data = save(weights, metadata={"srlab.network": json.dumps(description), "srlab.naming": naming})
    atomic_write(out, lambda f: f.write(data))


def export_onnx(checkpoint: str | Path, out: Path, opset: int = 17) -> None:
    try:
        import onnx
    except ImportError:
        raise UserError('exporting .onnx needs the onnx package: pip install -e ".[export]"') from None
    from srlab.api import load_upscaler

    description = _description(load_checkpoint(checkpoint))
    method = description.get("method")
    if method != "supervised":
        raise UserError(f"{checkpoint}: a {method!r} network cannot be exported as ONNX (ClassSR picks a branch "
                        f"per sub-image at run time, MZSR adapts its weights to each image); export its weights "
                        f"as .safetensors instead")
    upscaler = load_upscaler(checkpoint, "cpu")
    network = upscaler.model.to(memory_format=torch.contiguous_format).eval()
    channels = 1 if getattr(network, "in_channels", 3) == 1 else 3
    example = torch.rand(1, channels, 32, 32)
    with warnings.catch_warnings():
        # The TorchScript-based exporter: fast, and enough for plain convolutional networks.
        warnings.simplefilter("ignore")
        buffer = _export_to_bytes(network, example, opset)
    model = onnx.load_from_string(buffer)
    entry = model.metadata_props.add()
    entry.key, entry.value = "srlab.network", json.dumps(description)
    atomic_write(out, lambda f: f.write(model.SerializeToString()))


def _export_to_bytes(network: torch.nn.Module, example: torch.Tensor, opset: int) -> bytes:
    import io

    buffer = io.BytesIO()
    torch.onnx.export(network, (example,), buffer, dynamo=False, opset_version=opset, input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"},
                                                             "output": {0: "batch", 2: "out_height", 3: "out_width"}})
    return buffer.getvalue()


if __name__ == "__main__":
    main()
