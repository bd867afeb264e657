"""Where a network that runs by one forward pass runs: PyTorch (default), ONNX Runtime or OpenVINO.

    up = load_upscaler("weights/asymsr/asym_vdsr_x234_cpu.pt", backend="openvino")

``onnxruntime`` and ``openvino`` export the network to ONNX in memory (as ``srlab export`` does,
opset 17, any image size) and run each tile in that runtime on the CPU; everything around the
network (bicubic upscale, Y/CbCr, tiles, rounding) stays srlab's, so the output is the torch path's
to float rounding. OpenVINO also runs ``precision="bf16"`` (its inference-precision hint) on a CPU
with bf16 units (AVX512-BF16 or AMX). ClassSR (routing) and MZSR (adaptation) run in torch.
Needs ``pip install onnxruntime`` (the ``export`` extra) or ``pip install openvino`` (the
``openvino`` extra).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from srlab.errors import UserError
from srlab.network import Network

BACKENDS = ("torch", "onnxruntime", "openvino")
EXTRAS = {"onnxruntime": "export", "openvino": "openvino"}


def _onnx_model(network: Network, channels: int, backend: str) -> bytes:
    """``network`` as ONNX bytes, or one line saying why it cannot be."""
    from srlab.commands.export import onnx_bytes

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes: not the user's business
        try:
            return onnx_bytes(network.float().eval(), torch.rand(1, channels, 32, 32))
        except Exception as exc:  # an operator the exporter cannot write (another project's network)
            reason = str(exc).strip().split("\n")[0][:200] or type(exc).__name__
            raise UserError(f"this network cannot be exported to ONNX for --backend {backend} ({reason}); "
                            f"use --backend torch") from None


def _missing(backend: str) -> UserError:
    return UserError(f'--backend {backend} needs the {backend} package: pip install -e ".[{EXTRAS[backend]}]"')


class RuntimeNetwork(nn.Module):
    """A network run outside torch: takes and gives float tensors as the torch network does."""

    def __init__(self, network: Network):
        super().__init__()
        self.input_convention, self.scale = network.input_convention, network.scale

    def run(self, data: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        data = np.ascontiguousarray(x.detach().float().cpu().numpy())  # channels-last tensors too
        return torch.from_numpy(self.run(data)).to(x.device)


class OnnxRuntimeNetwork(RuntimeNetwork):
    """``network`` (eval mode, on the CPU) run by an ONNX Runtime session."""

    def __init__(self, network: Network, channels: int):
        super().__init__(network)
        try:
            import onnxruntime
        except ImportError:
            raise _missing("onnxruntime") from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # the same CPUs torch would use
        self.session = onnxruntime.InferenceSession(_onnx_model(network, channels, "onnxruntime"), options,
                                                    providers=["CPUExecutionProvider"])

    def run(self, data: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"input": data})[0]


class OpenVinoNetwork(RuntimeNetwork):
    """``network`` (eval mode, on the CPU) compiled by OpenVINO for this CPU, fp32 or with the bf16 hint."""

    def __init__(self, network: Network, channels: int, precision: str = "fp32"):
        super().__init__(network)
        try:
            import openvino
        except ImportError:
            raise _missing("openvino") from None
        core = openvino.Core()
        model = core.read_model(model=_onnx_model(network, channels, "openvino"))
        self.compiled = core.compile_model(model, "CPU", {
            "INFERENCE_NUM_THREADS": torch.get_num_threads(), "PERFORMANCE_HINT": "LATENCY",
            # f32 is OpenVINO's answer to "no hint" only on CPUs without bf16: say it either way
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32"})
        self.request = self.compiled.create_infer_request()

    def run(self, data: np.ndarray) -> np.ndarray:
        return self.request.infer({0: data})[0].copy()  # the request reuses its output buffer


def on_backend(network: Network, method: str, channels: int, device: torch.device, backend: str,
               precision: str = "fp32") -> nn.Module:
    """``network`` as ``backend`` runs it at ``precision``; one line where it cannot."""
    if backend not in BACKENDS:
        raise UserError(f"backend {backend!r}: allowed: {', '.join(BACKENDS)}")
    if backend == "torch":
        return network
    if method != "supervised":
        raise UserError(f"backend {backend}: a {method!r} network runs in torch (ClassSR routes each sub-image, MZSR "
                        f"adapts to each image); use --backend torch")
    if device.type != "cpu":
        raise UserError(f"backend {backend}: srlab runs {backend} on the CPU; use --device cpu")
    allowed = ("fp32", "bf16") if backend == "openvino" else ("fp32",)
    if precision not in allowed:
        raise UserError(f"precision {precision}: the {backend} backend runs {' or '.join(allowed)}")
    if backend == "onnxruntime":
        return OnnxRuntimeNetwork(network, channels)
    return OpenVinoNetwork(network, channels, precision)
