"""srlab export: safetensors and ONNX round trips, and BasicSR's MSRResNet key names both ways."""
import json

import numpy as np
import pytest
import torch
from conftest import REPO, run_inline

from srlab.api import load_upscaler
from srlab.checkpoint import load_checkpoint

ASYM = REPO / "weights" / "asymsr" / "asym_vdsr_x234_cpu.pt"
MSRRESNET = REPO / "weights" / "classsr" / "msrresnet_o_x4_cpu.pt"


def test_safetensors_round_trip_with_the_description(tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    out = tmp_path / "asym.safetensors"
    result = run_inline("export.py", "--checkpoint", ASYM, "--out", out)
    assert result.returncode == 0, result.stderr
    weights = safetensors.load_file(out)
    original = load_checkpoint(ASYM)["model"]
    assert weights.keys() == {f"srlab.asym_vdsr.{k}" for k in original} | {"srlab.card"}
    assert all(torch.equal(weights[f"srlab.asym_vdsr.{k}"], original[k]) for k in original)
    assert json.loads(bytes(weights["srlab.card"].tolist()))["architecture"] == "asym_vdsr"
    from safetensors import safe_open

    with safe_open(out, "pt") as f:
        description = json.loads(f.metadata()["srlab.card"])
        said = f.metadata()["srlab.input"]
    assert description["architecture"] == "asym_vdsr" and description["scales"] == [2, 3, 4]
    assert description["input"] == "y_of_bicubic_upscale" and "bicubic-upscaled Y channel" in said
    again = run_inline("export.py", "--checkpoint", ASYM, "--out", out)
    assert again.returncode == 2 and "exists; pass --overwrite" in again.stderr


@pytest.mark.parametrize("checkpoint", [ASYM, MSRRESNET], ids=["asym_vdsr-y", "msrresnet-rgb"])
def test_onnx_matches_pytorch_at_another_size(tmp_path, checkpoint):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    out = tmp_path / "net.onnx"
    result = run_inline("export.py", "--checkpoint", checkpoint, "--out", out)
    assert result.returncode == 0, result.stderr
    upscaler = load_upscaler(checkpoint, "cpu")
    network = upscaler.model.to(memory_format=torch.contiguous_format)
    x = torch.rand(1, upscaler.card.input.channels, 37, 29)  # not the 32x32 it was traced with
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"input": x.numpy()})
    with torch.no_grad():
        assert np.abs(y - network(x).numpy()).max() < 1e-4
    import onnx

    metadata = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(metadata["srlab.card"])["architecture"] in ("asym_vdsr", "msrresnet")


def test_classsr_says_it_cannot_be_onnx(tmp_path):
    pytest.importorskip("onnx")
    result = run_inline("export.py", "--checkpoint", REPO / "weights" / "classsr" / "classsr_x4_cpu.pt",
                        "--out", tmp_path / "c.onnx")
    assert result.returncode == 2 and "cannot be exported as ONNX (ClassSR picks a branch" in result.stderr


def test_msrresnet_weights_move_to_basicsr_names_and_back(tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    from srlab.classsr.models import MSRResNet, msrresnet_from_basicsr

    out = tmp_path / "basicsr.safetensors"
    assert run_inline("export.py", "--checkpoint", MSRRESNET, "--out", out, "--naming", "basicsr").returncode == 0
    basicsr = safetensors.load_file(out)
    assert "upconv1.weight" in basicsr and "upconv2.weight" in basicsr and "conv_first.weight" in basicsr
    assert not any(k.startswith("upsample.") for k in basicsr)
    spec = load_checkpoint(MSRRESNET)["config"]["model"]
    net = MSRResNet(**{k: v for k, v in spec.items() if k != "type"})
    net.load_state_dict(msrresnet_from_basicsr(basicsr))  # strict: every key maps back
    refused = run_inline("export.py", "--checkpoint", ASYM, "--out", tmp_path / "x.safetensors", "--naming", "basicsr")
    assert refused.returncode == 2 and "only for an msrresnet network" in refused.stderr


def test_a_checkpoint_that_carries_only_a_recommendation_is_described_from_its_config(tmp_path):
    safetensors = pytest.importorskip("safetensors")
    classsr = REPO / "weights" / "classsr" / "classsr_x4_cpu.pt"
    assert set(load_checkpoint(classsr)["network"]) == {"recommended"}
    out = tmp_path / "classsr.safetensors"
    assert run_inline("export.py", "--checkpoint", classsr, "--out", out).returncode == 0
    with safetensors.safe_open(out, "pt") as f:
        description = json.loads(f.metadata()["srlab.card"])
    assert description["method"] == "classsr" and description["architecture"] == "classsr"
    assert description["scales"] == [4] and description["recommended"]["route_bias"] == -5
