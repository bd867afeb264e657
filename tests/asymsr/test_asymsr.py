"""VDSR / Asym-VDSR: sizes, fuse() exactness, Y-channel and multi-scale data, the clipping rule,
a tiny training run, and the benchmark script."""
import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import REPO
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from srlab.asymsr.models import VDSR, AsymVDSR, count_parameters
from srlab.color import rgb_to_ycbcr, ycbcr_to_rgb
from srlab.config import load_config
from srlab.errors import ConfigError
from srlab.imresize import imresize
from srlab.method import Supervised, inference_model
from srlab.metrics import quantize, rgb_to_y
from srlab.network import InputConvention, Network
from srlab.optim import clip_adjustable_
from srlab.registry import METHODS, build_method
from srlab.runner import train


def flops(model, size=32):
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.rand(1, model.input_convention.channels, size, size))
    return counter.get_total_flops()


def test_parameter_counts_and_flops_are_the_papers():
    assert count_parameters(VDSR()) == 664_704
    assert count_parameters(AsymVDSR()) == 443_520
    assert count_parameters(VDSR(bias=True)) == 664_704 + 19 * 64 + 1
    assert count_parameters(AsymVDSR(bias=True)) == 443_520 + 19 * 64 + 1  # one bias per pair
    assert all(m.bias is None for m in VDSR().modules() if isinstance(m, nn.Conv2d))
    # FLOPs per pixel = 2 x weights (every weight is used once per output pixel).
    assert flops(VDSR()) == 2 * 664_704 * 32 * 32
    assert flops(AsymVDSR()) / flops(VDSR()) == pytest.approx(443_520 / 664_704)


def test_he_initialisation_keeps_the_activation_scale():
    for model in (VDSR(), AsymVDSR()):
        h = model.body(torch.relu(torch.randn(2, 64, 32, 32)))
        # 18 ReLU layers with He init: the second moment stays of order 1 (not 2^18 or 2^-18).
        assert 0.05 < h.pow(2).mean().item() < 20, type(model).__name__


def test_forward_is_residual_on_the_input_shape():
    model = AsymVDSR(channels=8, num_layers=4)
    nn.init.zeros_(model.tail.weight)
    x = torch.rand(2, 1, 17, 23)
    assert torch.equal(model(x), x)
    rgb = VDSR(in_channels=3, channels=8, num_layers=4)
    assert rgb(torch.rand(1, 3, 9, 11)).shape == (1, 3, 9, 11)


@pytest.mark.parametrize("bias", [False, True])
def test_fuse_is_exact_borders_included(bias):
    model = AsymVDSR(channels=16, num_layers=6, bias=bias).double()
    if bias:
        for m in model.modules():
            if isinstance(m, nn.Conv2d) and m.bias is not None:
                nn.init.normal_(m.bias, std=0.1)
    fused = model.fuse()
    assert isinstance(fused, VDSR) and count_parameters(fused) == count_parameters(VDSR(channels=16, num_layers=6, bias=bias))
    x = torch.rand(2, 1, 13, 18, dtype=torch.float64)
    with torch.no_grad():
        out, out_fused = model(x), fused(x)
    assert (out - x).abs().max() > 0.1  # a real residual, not the identity
    torch.testing.assert_close(out_fused, out, rtol=0, atol=1e-12)  # every pixel, borders too


def test_fuse_of_the_paper_model_in_float32_and_inference_forms():
    model = AsymVDSR().eval()
    x = torch.rand(1, 1, 24, 20)
    with torch.no_grad():
        ref = model(x)
        torch.testing.assert_close(model.fuse()(x), ref, rtol=0, atol=1e-4)
        fast = inference_model(model, torch.device("cpu"), channels_last=True)
        assert isinstance(fast, AsymVDSR) and fast is not model and not fast.training
        torch.testing.assert_close(fast(x), ref, rtol=0, atol=1e-5)
        fused = inference_model(AsymVDSR(inference_form="fused").eval(), torch.device("cpu"), channels_last=True)
        assert isinstance(fused, VDSR)
    assert model.body[0].weight.is_contiguous()  # the model handed in is left as it was (NCHW)


def test_ycbcr_round_trip_and_matlab_y():
    x = quantize(torch.rand(2, 3, 8, 8, dtype=torch.float64))
    ycbcr = rgb_to_ycbcr(x)
    torch.testing.assert_close(ycbcr_to_rgb(ycbcr), x, rtol=0, atol=1e-12)
    assert torch.equal(torch.round(ycbcr[:, :1] * 255), rgb_to_y(x))  # the metrics' Y, before rounding
    assert ycbcr[:, 0].min() >= 16 / 255 - 1e-12 and ycbcr[:, 0].max() <= 235 / 255 + 1e-12


def make_method(tmp_path, model="{type: vdsr, channels: 8, num_layers: 4}", extra=""):
    path = tmp_path / "c.yaml"
    path.write_text(f"method: supervised\nmodel: {model}\ntrain: {{patch_size: 41, scales: [2, 3, 4]{extra}}}\n")
    method = build_method(load_config(path, [], METHODS))
    return method, method.build_model()


def test_multiscale_y_training_batch_matches_the_test_time_degradation(tmp_path):
    method, _ = make_method(tmp_path)
    assert method.y_channel and method.hr_patch_size == 44  # 41 rounded up to a multiple of 4
    hr = torch.randint(0, 256, (6, 3, 44, 44), dtype=torch.uint8)
    batch = method.training_batch(hr)
    assert batch["input"].shape == batch["hr"].shape == (6, 1, 41, 41)
    for i, (scale, side) in enumerate([(2, 42), (3, 42), (4, 44)]):  # two patches per scale, in order
        start = (44 - side) // 2
        rgb = hr[2 * i : 2 * i + 2, :, start : start + side, start : start + side].float() / 255
        lr = quantize(imresize(rgb, scale=1 / scale))
        crop = slice((side - 41) // 2, (side - 41) // 2 + 41)
        expected = rgb_to_ycbcr(imresize(lr, scale=scale))[:, :1, crop, crop]
        torch.testing.assert_close(batch["input"][2 * i : 2 * i + 2], expected)
        torch.testing.assert_close(batch["hr"][2 * i : 2 * i + 2], rgb_to_ycbcr(rgb)[:, :1, crop, crop])


def test_y_channel_inference_keeps_bicubic_chroma(tmp_path):
    method, model = make_method(tmp_path)
    nn.init.zeros_(model.tail.weight)  # the network adds nothing: the output must be bicubic
    lr = torch.rand(1, 3, 10, 12)
    sr = method.infer(model.eval(), lr, 3).image
    torch.testing.assert_close(sr, imresize(lr, scale=3), rtol=0, atol=1e-5)


def test_y_channel_inference_under_amp_keeps_colour_in_float32(tmp_path):
    method, model = make_method(tmp_path)
    nn.init.zeros_(model.tail.weight)
    lr = torch.rand(1, 3, 10, 12)
    with torch.autocast("cpu", torch.bfloat16):
        sr = method.infer(model.eval(), lr, 2).image
    assert sr.dtype == torch.float32
    torch.testing.assert_close(sr, imresize(lr, scale=2), rtol=0, atol=1e-5)


@pytest.mark.parametrize("options,message", [
    ({"channels": 0}, "channels must be >= 1"),
    ({"in_channels": 2}, "in_channels must be 1 (Y) or 3 (RGB)"),
    ({"num_layers": 2}, "num_layers must be >= 3"),
    ({"inference_form": "fast"}, "model.inference_form: 'fast' is not allowed"),
])
def test_bad_model_options_are_config_errors(options, message):
    from srlab.config import build
    from srlab.registry import MODELS

    with pytest.raises(ConfigError) as info:
        build({"type": "asym_vdsr", **options}, MODELS, "model")
    assert message in str(info.value)


def test_lr_input_networks_still_need_a_multiple_of_the_scale(tmp_path):
    class LRInput(Network):
        input_convention, scale = InputConvention.RGB_LR, 2

    cfg = load_config(REPO / "configs" / "demo.yaml", ["train.patch_size=41"])
    with pytest.raises(ConfigError, match="train.patch_size: LRInput takes the LR image itself"):
        Supervised(cfg, LRInput).build_model()


def test_adjustable_clipping_bounds_each_element_by_theta_over_lr():
    p = nn.Parameter(torch.zeros(5))
    p.grad = torch.tensor([-10.0, -0.05, 0.0, 0.02, 3.0])
    clip_adjustable_([p], theta=0.01, lr=0.1)  # bound 0.1
    assert p.grad.tolist() == pytest.approx([-0.1, -0.05, 0.0, 0.02, 0.1])


def test_runner_applies_the_clipping_rule(tmp_path):
    """Plain SGD with θ tiny: one step moves every weight by at most θ, and the largest by exactly θ."""
    theta = 1e-4
    path = tmp_path / "c.yaml"
    path.write_text(f"""\
method: supervised
device: cpu
model: {{type: asym_vdsr, channels: 8, num_layers: 4}}
train:
  datasets: [skimage_train]
  total_iters: 1
  batch_size: 6
  patch_size: 41
  scales: [2, 3, 4]
  loss: mse
  optimizer: {{type: sgd, lr: 0.1, momentum: 0, weight_decay: 0}}
  grad_clip_theta: {theta}
  num_workers: 0
  val_every: 0
val: {{datasets: [skimage_test], max_images: 1}}
""")
    cfg = load_config(path, [], METHODS)
    method = build_method(cfg)
    torch.manual_seed(cfg.seed)  # as the runner does before building the network
    before = method.build_model().state_dict()
    train(build_method(cfg), cfg, tmp_path / "run")
    after = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["model"]
    steps = torch.cat([(after[k] - before[k]).flatten() for k in before])
    assert steps.abs().max().item() == pytest.approx(theta, rel=1e-2)  # float32 weights ~0.1: ~1e-8 rounding


def photo_patches(n: int, size: int) -> torch.Tensor:
    """``n`` uint8 patches of a real photograph (random noise cannot be super-resolved)."""
    from skimage import data

    image = torch.from_numpy(data.astronaut()).permute(2, 0, 1)
    corners = torch.randint(0, image.shape[-1] - size, (n, 2)).tolist()
    return torch.stack([image[:, y : y + size, x : x + size] for y, x in corners])


def test_tiny_training_lowers_the_loss():
    torch.manual_seed(0)
    for cls in (VDSR, AsymVDSR):
        cfg = load_config(REPO / "configs" / "asymsr" / "vdsr_x234_cpu.yaml", [], METHODS)
        method = Supervised(cfg, lambda: cls(channels=8, num_layers=5))
        model = method.build_model()
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        batch = method.training_batch(photo_patches(6, method.hr_patch_size))
        losses = []
        for _ in range(30):
            loss = method.loss(model, batch)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        assert losses[-1] < 0.7 * losses[0], (cls.__name__, losses[0], losses[-1])


def test_configs_load_and_build_the_paper_networks():
    expected = {"vdsr": 664_704, "asym_vdsr": 443_520}
    for path in sorted((REPO / "configs" / "asymsr").glob("*.yaml")):
        cfg = load_config(path, [], METHODS)
        model = build_method(cfg).build_model()
        assert cfg.train.scales == [2, 3, 4] and cfg.test.scales == [2, 3, 4]
        if "cpu" not in path.name:
            assert count_parameters(model) == expected[cfg.model["type"]], path.name
    paper = load_config(REPO / "configs" / "asymsr" / "vdsr_x234.yaml", [], METHODS).train
    assert (paper.patch_size, paper.batch_size, paper.loss, paper.optimizer.type) == (41, 64, "mse", "sgd")
    assert paper.optimizer.lr == 0.1 and paper.grad_clip_theta > 0 and paper.scheduler.gamma == 0.1


def test_benchmark_script_writes_its_table(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "scripts/benchmark_asymsr.py", "--device", "cpu", "--sizes", "32",
                           "--repeats", "1", "--out", str(out)], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    nets = result["networks"]
    assert set(nets) == {"vdsr", "asym_vdsr", "asym_vdsr_fused", "asym_vdsr_naive"}
    assert nets["vdsr"]["flops_per_pixel"] == pytest.approx(2 * 664_704, rel=1e-3)
    assert nets["asym_vdsr"]["checkpoint_mb"] < 0.7 * nets["vdsr"]["checkpoint_mb"]
    assert all(n["ms_32_default_alloc"] > 0 and n["ms_32_tuned_alloc"] > 0 for n in nets.values())
    assert "asym_over_vdsr" in result["ratios"]["32"]


@pytest.mark.parametrize("name", ["vdsr_x234_cpu", "asym_vdsr_x234_cpu"])
def test_shipped_cpu_weights_beat_bicubic_on_set5(name, shared_data, tmp_path):
    """The committed CPU-trained weights, through the real CLI: Set5 x2 at least +1.5 dB over bicubic."""
    proc = subprocess.run([sys.executable, "scripts/test.py", "--config", f"configs/asymsr/{name}.yaml",
                           "--checkpoint", f"weights/asymsr/{name}.pt", "--opt", "test.datasets=[Set5]",
                           "--scales", "2", "--out", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, env={**os.environ, "SR_DATA_ROOT": str(shared_data)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    (record,) = json.loads((tmp_path / "results.json").read_text())["records"]
    assert record["psnr_y"] >= record["bicubic_psnr_y"] + 1.5, record
