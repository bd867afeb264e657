"""Files that are not srlab checkpoints: other projects' networks through spandrel, BasicSR's own
MSRResNet files, and srlab's safetensors exports read back."""
import json

import numpy as np
import pytest
import spandrel
import torch
from conftest import REPO, run_inline, write_png
from spandrel.architectures.ESRGAN import ESRGAN

from srlab.api import evaluate_folder, load_upscaler
from srlab.commands.export import export_safetensors
from srlab.data import load_image, to_tensor, to_uint8
from srlab.imresize import imresize
from srlab.metrics import psnr_of_y, quantize, y_channel
from srlab.registry import MODELS

MSRRESNET = REPO / "weights" / "classsr" / "msrresnet_o_x4_cpu.pt"
ASYM = REPO / "weights" / "asymsr" / "asym_vdsr_x234_cpu.pt"


def esrgan_file(path, **options):
    torch.manual_seed(0)
    network = ESRGAN(num_filters=8, num_blocks=1, **{"scale": 2, **options})
    torch.save(network.state_dict(), path)
    return path


@pytest.fixture
def photos(tmp_path):
    rng = np.random.default_rng(0)
    smooth = (np.cumsum(rng.normal(size=(2, 40, 48, 3)), axis=2) * 12 + 128).clip(0, 255).astype(np.uint8)
    for i, image in enumerate(smooth):
        write_png(tmp_path / "hr" / f"p{i}.png", image)
    return tmp_path / "hr"


def test_a_network_spandrel_knows_runs_in_srlab_as_spandrel_runs_it(tmp_path, photos):
    path = esrgan_file(tmp_path / "esrgan_x2.pth")
    up = load_upscaler(path, "cpu", tile=16)
    assert up.card.architecture == "spandrel:ESRGAN" and up.scales == [2]
    assert up.card.provenance["architecture"] == "ESRGAN" and len(up.card.provenance["sha256"]) == 64
    descriptor = spandrel.ModelLoader().load_from_file(path)
    image = load_image(sorted(photos.iterdir())[0])
    ours = up(image, 2)  # in 16-pixel tiles with 24 pixels of margin
    theirs = to_uint8(descriptor(to_tensor(image)))
    assert ours.shape == (80, 96, 3) and np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1


def test_its_scores_are_the_protocols_on_its_own_forward_pass(tmp_path, photos):
    """PSNR through srlab's evaluation = spandrel's forward pass fed MATLAB-bicubic 8-bit LR, scored
    on Y with the border cropped: the same number, from `srlab test` without a config too."""
    path = esrgan_file(tmp_path / "esrgan_x2.pth")
    descriptor = spandrel.ModelLoader().load_from_file(path)
    expected = []
    for file in sorted(photos.iterdir()):
        hr = to_tensor(load_image(file))
        lr = quantize(imresize(hr, scale=0.5))
        expected.append(psnr_of_y(y_channel(quantize(descriptor(lr))), y_channel(hr), 2).item())
    (record,) = evaluate_folder(load_upscaler(path, "cpu"), photos, scales=[2])
    assert record.psnr_y == pytest.approx(np.mean(expected), abs=1e-6)
    cli = run_inline("test.py", "--checkpoint", path, "--dataset", f"mine={photos}", "--out", tmp_path / "t")
    assert cli.returncode == 0, cli.stderr
    (written,) = json.loads((tmp_path / "t" / "results.json").read_text())["records"]
    assert written["psnr_y"] == pytest.approx(record.psnr_y, abs=1e-9)


def test_files_srlab_cannot_run_are_one_line_errors(tmp_path):
    torch.save({"a.weight": torch.zeros(3, 3)}, tmp_path / "unknown.pth")
    esrgan_file(tmp_path / "grey.pth", in_nc=1, out_nc=1)
    esrgan_file(tmp_path / "x1.pth", scale=1)
    for name, said in [("unknown.pth", "not a network spandrel"), ("grey.pth", "srlab runs RGB networks"),
                       ("x1.pth", "srlab runs super-resolution networks (x2 or more)")]:
        image = write_png(tmp_path / "lr.png", np.zeros((8, 8, 3), np.uint8))
        result = run_inline("upscale.py", "--checkpoint", tmp_path / name, "--input", image, "--out", tmp_path / "o.png")
        assert result.returncode == 2 and said in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_basicsr_files_of_msrresnet_run_directly(tmp_path):
    ours = load_upscaler(MSRRESNET, "cpu")
    torch.save({"params_ema": MODELS["msrresnet"].to_basicsr(ours.model.state_dict())}, tmp_path / "basicsr.pth")
    theirs = load_upscaler(tmp_path / "basicsr.pth", "cpu")
    image = (np.random.default_rng(1).random((20, 24, 3)) * 255).astype(np.uint8)
    assert theirs.card.architecture == "msrresnet" and np.array_equal(theirs(image, 4), ours(image, 4))


@pytest.mark.parametrize("checkpoint,naming", [(ASYM, "srlab"), (MSRRESNET, "srlab"), (MSRRESNET, "basicsr")])
def test_exports_read_back_as_the_checkpoint_they_came_from(tmp_path, checkpoint, naming):
    export_safetensors(checkpoint, tmp_path / "m.safetensors", naming)
    original, exported = load_upscaler(checkpoint, "cpu"), load_upscaler(tmp_path / "m.safetensors", "cpu")
    assert exported.card.architecture == original.card.architecture and exported.scales == original.scales
    image = (np.random.default_rng(2).random((20, 24, 3)) * 255).astype(np.uint8)
    scale = original.scales[0]
    assert np.array_equal(exported(image, scale), original(image, scale))
    again = run_inline("export.py", "--checkpoint", tmp_path / "m.safetensors", "--out", tmp_path / "again.safetensors")
    assert again.returncode == 0, again.stderr
    torch.testing.assert_close(load_upscaler(tmp_path / "again.safetensors", "cpu").model.state_dict(),
                               exported.model.state_dict(), rtol=0, atol=0)


def test_a_broken_safetensors_file_is_one_line(tmp_path):
    (tmp_path / "cut.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{")
    image = write_png(tmp_path / "lr.png", np.zeros((8, 8, 3), np.uint8))
    result = run_inline("upscale.py", "--checkpoint", tmp_path / "cut.safetensors", "--input", image, "--out",
                        tmp_path / "o.png")
    assert result.returncode == 2 and "not a readable .safetensors file" in result.stderr, result.stderr
