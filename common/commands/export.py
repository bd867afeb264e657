"""Export a checkpoint's weights for other tools: safetensors, or ONNX with any image size.

    srlab export --checkpoint weights/asymsr/asym_vdsr_x234_cpu.pt --out asym_vdsr.onnx
    srlab export --checkpoint weights/classsr/msrresnet_o_x4_cpu.pt --out msrresnet.safetensors --naming basicsr

The format follows ``--out``'s suffix. Both carry the checkpoint's network card (``srlab.card``:
architecture, constructor arguments, input convention, scales, how it runs, recommended settings,
provenance) as JSON metadata: ``safetensors`` in its header, ONNX in ``metadata_props``, under
``srlab.card``; ``srlab.input`` says in words what the network takes.

* ``.safetensors``: the weights to evaluate (the EMA weights when the run kept them), any network,
  each under ``srlab.<architecture>.<name>``, with the card also as the uint8 tensor ``srlab.card``
  (UTF-8 JSON): ``srlab upscale / test / export --checkpoint x.safetensors`` read it back, and
  spandrel does after ``srlab.spandrel_arch.register()`` (``srlab.spandrel_arch``).
  ``--naming basicsr``: MSRResNet's keys as BasicSR names them, to load into BasicSR.
* ``.onnx``: the feed-forward network, with dynamic height and width, exactly as
  ``srlab.api`` runs it: its input is what the card says (VDSR: the Y channel of the
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

from srlab.card import NetworkCard
from srlab.cli import main_guard
from srlab.errors import UserError
from srlab.loading import load
from srlab.method import inference_model
from srlab.outputs import atomic_write, check_output_file
from srlab.registry import MODELS
from srlab.spandrel_arch import to_exported


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
        check_opset(args.opset)
        export_onnx(args.checkpoint, out, args.opset)
    print(f"wrote {out}")


# Below opset 11 ONNX has no Resize with PyTorch's pixel mapping: MSRResNet's bilinear skip exports
# at opsets 9-10 and gives another image (up to 0.58 off on [0, 1]), at 7-8 not at all.
MIN_OPSET = 11


def opset_range() -> tuple[int, int]:
    """The opsets that give the network PyTorch runs, up to the highest this torch's TorchScript-based
    exporter (the one ``onnx_bytes`` uses) writes."""
    from torch.onnx import _constants

    return max(MIN_OPSET, _constants.ONNX_MIN_OPSET), _constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET


def check_opset(opset: int) -> None:
    low, high = opset_range()
    if not low <= opset <= high:
        raise UserError(f"--opset {opset}: allowed {low} to {high} (the default is 17)")


def metadata(card: NetworkCard) -> dict[str, str]:
    """What an exported file says about its network."""
    return {"srlab.card": json.dumps(card.to_dict()), "srlab.input": card.input.describe()}


def export_safetensors(checkpoint: str | Path, out: Path, naming: str = "srlab") -> None:
    try:
        from safetensors.torch import save
    except ImportError:
        raise UserError('exporting .safetensors needs the safetensors package: pip install -e ".[export]"') from None
    _, network, card = load(checkpoint)
    # Copies: safetensors refuses tensors that share memory, and CARN-M reuses one block's weights
    # three times (each name gets its own copy; loading them back fills the one shared tensor).
    weights = {k: v.detach().clone().contiguous() for k, v in network.state_dict().items()}
    if naming == "basicsr":
        if card.architecture != "msrresnet":
            raise UserError(f"--naming basicsr: only for an msrresnet network, {checkpoint} holds {card.architecture!r}")
        weights = MODELS["msrresnet"].to_basicsr(weights)
    else:  # namespaced keys and the card as a tensor: spandrel (and srlab) read it back from the weights alone
        weights = to_exported(weights, card)
    data = save(weights, metadata={**metadata(card), "srlab.naming": naming})
    atomic_write(out, lambda f: f.write(data))


def export_onnx(checkpoint: str | Path, out: Path, opset: int = 17) -> None:
    try:
        import onnx
    except ImportError:
        raise UserError('exporting .onnx needs the onnx package: pip install -e ".[export]"') from None
    _, network, card = load(checkpoint)
    if card.method != "supervised":
        raise UserError(f"{checkpoint}: a {card.method!r} network cannot be exported as ONNX (ClassSR picks a branch "
                        f"per sub-image at run time, MZSR adapts its weights to each image); export its weights "
                        f"as .safetensors instead")
    network = inference_model(network, torch.device("cpu"), channels_last=False)
    example = torch.rand(1, card.input.channels, 32, 32)
    with warnings.catch_warnings():
        # The TorchScript-based exporter: fast, and enough for plain convolutional networks.
        warnings.simplefilter("ignore")
        try:
            buffer = onnx_bytes(network, example, opset)
        except torch.onnx.errors.OnnxExporterError as exc:  # an operator this opset cannot express
            reason = str(exc).strip().split("\n")[0][:200]
            raise UserError(f"{checkpoint}: cannot be exported at --opset {opset} ({reason}); try a higher "
                            f"--opset (the default is 17)") from None
    model = onnx.load_from_string(buffer)
    for key, value in metadata(card).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    atomic_write(out, lambda f: f.write(model.SerializeToString()))


def onnx_bytes(network: torch.nn.Module, example: torch.Tensor, opset: int = 17) -> bytes:
    """``network`` as an ONNX model (TorchScript-based exporter), any batch, height and width."""
    import io

    buffer = io.BytesIO()
    torch.onnx.export(network, (example,), buffer, dynamo=False, opset_version=opset, input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "batch", 2: "height", 3: "width"},
                                                             "output": {0: "batch", 2: "out_height", 3: "out_width"}})
    return buffer.getvalue()


if __name__ == "__main__":
    main()
