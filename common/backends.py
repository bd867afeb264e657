"""Where a network that runs by one forward pass runs: PyTorch (default) or ONNX Runtime.

    up = load_upscaler("weights/asymsr/asym_vdsr_x234_cpu.pt", backend="onnxruntime")

``onnxruntime`` exports the network to ONNX in memory (as ``srlab export`` does, opset 17, any
image size) and runs each tile in an ONNX Runtime session on the CPU; everything around the
network (bicubic upscale, Y/CbCr, tiles, rounding) stays srlab's, so the output is the torch path's
to float rounding. ClassSR (routing) and MZSR (adaptation) run in torch. Needs ``pip install
onnxruntime`` (in the ``export`` extra).
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from srlab.errors import UserError
from srlab.network import Network

BACKENDS = ("torch", "onnxruntime")


class OnnxRuntimeNetwork(nn.Module):
    """``network`` (eval mode, on the CPU) run by ONNX Runtime: takes and gives float tensors as it does."""

    def __init__(self, network: Network, channels: int):
        super().__init__()
        try:
            import onnxruntime
        except ImportError:
            raise UserError('--backend onnxruntime needs the onnxruntime package: pip install -e ".[export]"') from None
        from srlab.commands.export import onnx_bytes

        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes: not the user's business
            try:
                model = onnx_bytes(network.float().eval(), torch.rand(1, channels, 32, 32))
            except Exception as exc:  # an operator the exporter cannot write (another project's network)
                reason = str(exc).strip().split("\n")[0][:200] or type(exc).__name__
                raise UserError(f"this network cannot be exported to ONNX ({reason}); use --backend torch") from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()  # the same CPUs torch would use
        self.session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.input_convention, self.scale = network.input_convention, network.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        data = np.ascontiguousarray(x.detach().float().cpu().numpy())  # channels-last tensors too
        return torch.from_numpy(self.session.run(None, {"input": data})[0]).to(x.device)


def on_backend(network: Network, method: str, channels: int, device: torch.device, backend: str) -> nn.Module:
    """``network`` as ``backend`` runs it; one line where it cannot."""
    if backend not in BACKENDS:
        raise UserError(f"backend {backend!r}: allowed: {', '.join(BACKENDS)}")
    if backend == "torch":
        return network
    if method != "supervised":
        raise UserError(f"backend {backend}: a {method!r} network runs in torch (ClassSR routes each sub-image, MZSR "
                        f"adapts to each image); use --backend torch")
    if device.type != "cpu":
        raise UserError(f"backend {backend}: srlab runs ONNX Runtime on the CPU; use --device cpu")
    return OnnxRuntimeNetwork(network, channels)
