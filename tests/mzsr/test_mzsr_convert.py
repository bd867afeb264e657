"""The official MZSR TensorFlow checkpoint in our harness: the tensor-bundle reader (CRC, errors),
the weight layout (against an independent convolution of the TF kernels), and the converted
stage-1 network on Set5 x2 (the official fixture is in ../shared: skipped where absent)."""
import json
import shutil

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch
from conftest import REPO, run_inline

from srlab.errors import UserError
from srlab.mzsr.convert import convert
from srlab.mzsr.model import MZSRNet
from srlab.mzsr.tf_checkpoint import masked_crc32c, read_index, read_tensors


@pytest.fixture
def official(shared_data):
    prefix = shared_data / "reference" / "mzsr_official_pretrained" / "Pretrained"
    if not prefix.with_name("Pretrained.index").is_file():
        pytest.skip("no official MZSR checkpoint fixture")
    return prefix


def test_masked_crc32c_of_the_standard_check_string():
    crc = 0xE3069283  # CRC-32C of b"123456789", the standard check value
    masked = ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF
    assert masked_crc32c(b"123456789") == masked


def test_the_index_lists_the_networks_tensors_and_adams_slots(official):
    entries = read_index(official.with_name("Pretrained.index"))
    assert entries["MODEL/conv1/kernel"].shape == (3, 3, 3, 64)
    assert entries["MODEL/conv8/bias"].shape == (3,)
    assert "MODEL/conv4/kernel/Adam_1" in entries
    assert int(read_tensors(official, ["global_step"])["global_step"]) == 500_000


def test_converted_weights_compute_what_the_tf_kernels_compute(official):
    """Our first layer on a random image equals the TF kernel (HWIO) correlated with it, SAME padding."""
    tf = read_tensors(official, ["MODEL/conv1/kernel", "MODEL/conv1/bias"])
    net = MZSRNet()
    net.load_state_dict(convert(official)["model"])
    x = np.random.default_rng(0).random((3, 9, 11)).astype(np.float32)
    ours = net.body[0](torch.from_numpy(x)[None])[0].detach().numpy()
    kernel, bias = tf["MODEL/conv1/kernel"], tf["MODEL/conv1/bias"]
    for out in (0, 17, 63):
        expected = sum(ndi.correlate(x[c], kernel[:, :, c, out], mode="constant") for c in range(3)) + bias[out]
        np.testing.assert_allclose(ours[out], expected, rtol=1e-5, atol=1e-5)


def test_the_converted_stage1_network_gives_the_official_set5_result(official, shared_data, tmp_path):
    out = tmp_path / "official.pt"
    result = run_inline("convert_mzsr.py", "--checkpoint", official, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "global step 500000" in result.stdout and "225,091 parameters" in result.stdout
    shutil.copy(shared_data / "benchmarks" / "Set5" / "HR" / "bird.png", tmp_path / "bird.png")
    result = run_inline("test.py", "--config", REPO / "configs" / "mzsr" / "pretrain_x2.yaml", "--checkpoint", out,
                        "--dataset", f"bird={tmp_path}", "--scales", "2", "--out", tmp_path / "test")
    assert result.returncode == 0, result.stderr
    (record,) = json.loads((tmp_path / "test" / "results.json").read_text())["records"]
    # Measured: 37.48 dB on all of Set5 (the fixture's README: about 37.5), 42.51 on bird.
    assert record["psnr_y"] == pytest.approx(42.51, abs=0.01), record
    # zeroshot takes the file as one of its own (stage-1 weights adapted to the image's kernel).
    result = run_inline("zeroshot.py", "--checkpoint", out, "--image", tmp_path / "bird.png", "--kernel", "gd_2.0",
                        "--steps", "1", "--out", tmp_path / "sr.png")
    assert result.returncode == 0 and (tmp_path / "sr.png").is_file(), result.stderr


def test_bad_official_checkpoints_are_one_line_errors(official, tmp_path):
    with pytest.raises(UserError, match="no Nowhere.index there; give the checkpoint's prefix"):
        convert(tmp_path / "Nowhere")
    copy = tmp_path / "Pretrained"
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(official.with_name("Pretrained" + suffix), tmp_path / ("Pretrained" + suffix))
    data = bytearray((tmp_path / "Pretrained.data-00000-of-00001").read_bytes())
    data[1000] ^= 0xFF  # inside MODEL/conv1/kernel
    (tmp_path / "Pretrained.data-00000-of-00001").write_bytes(bytes(data))
    with pytest.raises(UserError, match="'MODEL/conv1/kernel' fails its CRC check"):
        convert(copy)
    (tmp_path / "Mine.index").write_bytes(b"not a table" * 10)
    (tmp_path / "Mine.data-00000-of-00001").write_bytes(b"")
    with pytest.raises(UserError, match="not a TensorFlow checkpoint index"):
        convert(tmp_path / "Mine", "Pretrained")
    with pytest.raises(UserError, match="pass --kind"):
        convert(tmp_path / "Mine")


@pytest.mark.parametrize("kind, method, lrs, scales", [
    ("Directx2", "mzsr_meta", [2e-2, 1e-2, 1e-2, 1e-2, 5e-3], [2]),
    ("Directx4", "mzsr_meta", [1e-2, 5e-3, 5e-3, 5e-3, 5e-3, 1e-3], [4]),
    ("Multi-scale", "mzsr_meta", [1e-2, 1e-2, 1e-2, 5e-3], [2, 4]),
])
def test_meta_trained_models_carry_the_official_test_lrs_and_scales(kind, method, lrs, scales, official, tmp_path):
    """The official meta-trained files have the stage-1 file's layout (their data files are not in
    the fixture: the stage-1 tensors stand in, under the meta-trained model's name)."""
    from srlab.api import load_upscaler
    from srlab.checkpoint import save_checkpoint

    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(official.with_name("Pretrained" + suffix), tmp_path / (kind + suffix))
    state = convert(tmp_path / kind)
    assert state["card"]["method"] == method and state["card"]["scales"] == scales
    assert state["card"]["recommended"] == ({"adapt_lrs": lrs, "adapt_steps": 10, "adapt_backtrack": False} if lrs else {})
    assert "sha256" in state["card"]["provenance"]["files"]
    assert state["config"]["options"]["pretrained"] is None
    save_checkpoint(state, tmp_path / "converted.pt")
    upscaler = load_upscaler(tmp_path / "converted.pt", "cpu")
    assert upscaler.scales == scales


def test_srlab_convert_arch_mzsr_tf_is_convert_mzsr(official, tmp_path):
    """One command for every foreign format; convert-mzsr, its old name, writes the same file."""
    from srlab.checkpoint import load_checkpoint

    new = run_inline("convert.py", "--arch", "mzsr_tf", "--checkpoint", official, "--out", tmp_path / "new.pt")
    old = run_inline("convert_mzsr.py", "--checkpoint", official, "--out", tmp_path / "old.pt")
    assert new.returncode == 0 and old.returncode == 0, new.stderr + old.stderr
    assert new.stdout.replace("new.pt", "old.pt") == old.stdout
    a, b = load_checkpoint(tmp_path / "new.pt"), load_checkpoint(tmp_path / "old.pt")
    assert a["card"] == b["card"] and all(torch.equal(v, b["model"][k]) for k, v in a["model"].items())
    provenance = a["card"]["provenance"]
    assert provenance["converted_by"] == "srlab convert --arch mzsr_tf" and provenance["licence"].startswith("none")
    refused = run_inline("convert.py", "--arch", "mzsr_tf", "--checkpoint", official, "--scale", "2", "--out",
                         tmp_path / "x.pt")
    assert refused.returncode == 2 and "--scale: --arch mzsr_tf takes no scale" in refused.stderr
