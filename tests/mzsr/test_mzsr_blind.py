"""Blind zero-shot SR: the blind benchmarks (per-image kernels the method never sees), the kernel
error, KernelNet, KernelGAN's parts, the blind MZSR rows and ``zeroshot.py --kernel estimate``."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import REPO, run_inline, run_script, write_png

from srlab.checkpoint import save_checkpoint
from srlab.config import load_config, to_dict
from srlab.data import BenchmarkImages
from srlab.degradation import (
    analytic_x4,
    blind_family,
    degrade,
    gaussian_kernel,
    kernel_error,
    named_degradation,
)
from srlab.errors import UserError
from srlab.evaluate import evaluate
from srlab.method import Output, Row
from srlab.metrics import quantize
from srlab.mzsr.kernel_net import cholesky_kernels
from srlab.mzsr.kernelgan import Generator, drop_negligible, kernelgan_x2, penalty_mask
from srlab.registry import build_method

KERNEL_NET_CPU = REPO / "configs" / "mzsr" / "kernel_net_x2_cpu.yaml"
TEST_CPU = REPO / "configs" / "mzsr" / "test_x2_cpu.yaml"
TINY_MZSR = ["model.channels=4", "model.num_layers=3"]


def test_each_image_has_its_own_reproducible_kernel_whatever_else_is_tested():
    blind = named_degradation("blind_mzsr")
    a = blind.for_image("Set14/baboon", 2).kernel
    assert torch.equal(a, named_degradation("blind_mzsr").for_image("Set14/baboon", 2).kernel)
    assert not torch.equal(a, blind.for_image("Set14/barbara", 2).kernel)
    assert not torch.equal(a, blind.for_image("Set14/baboon", 4).kernel)
    assert not torch.equal(a, named_degradation("blind_mzsr@1").for_image("Set14/baboon", 2).kernel)
    assert a.shape == (15, 15) and abs(a.sum().item() - 1) < 1e-6
    div2krk = named_degradation("blind_div2krk")
    assert div2krk.for_image("x/y", 2).kernel.shape == (11, 11)
    assert div2krk.for_image("x/y", 4).kernel.shape == (31, 31)
    assert blind_family("gd_2.0") is None


def test_a_blind_degradation_refuses_to_degrade_and_bad_names_are_one_line_errors():
    with pytest.raises(ValueError, match="hidden"):
        named_degradation("blind_mzsr").apply(torch.rand(1, 3, 8, 8), 2)
    with pytest.raises(UserError, match="whole number"):
        named_degradation("blind_mzsr@x")
    with pytest.raises(UserError, match="blind_div2krk"):
        named_degradation("blind_other")


def test_kernel_error_forgives_shifts_and_sees_a_different_kernel():
    k = gaussian_kernel(15, 3.0, 1.0, 0.4).double()
    assert kernel_error(k, k)["kernel_l2"] < 1e-9
    moved = torch.roll(F.pad(k, (3, 3, 3, 3)), (1, -2), (0, 1))  # on a larger canvas too
    assert kernel_error(moved, k)["kernel_l2"] < 1e-4
    # Half a pixel off, and a smaller canvas: a Gaussian centred between pixels.
    y, x = torch.meshgrid(torch.arange(13.0), torch.arange(13.0), indexing="ij")
    half = torch.exp(-0.5 * ((x - 6.5) ** 2 / 3.0 + (y - 6) ** 2 / 1.0)).double()
    exact = torch.exp(-0.5 * ((x - 6) ** 2 / 3.0 + (y - 6) ** 2 / 1.0)).double()
    assert kernel_error(half / half.sum(), exact / exact.sum())["kernel_psnr"] > 40
    other = kernel_error(gaussian_kernel(15, 1.0, 1.0), k)
    assert other["kernel_l2"] > 0.05 and other["kernel_psnr"] < 30


def test_the_analytic_x4_kernel_degrades_as_twice_the_x2_kernel():
    k2 = gaussian_kernel(11, 2.0, 1.2, 0.3)
    hr = torch.rand(1, 3, 64, 64, dtype=torch.float64)
    twice = degrade(degrade(hr, k2.double(), 2), k2.double(), 2)
    once = degrade(hr, analytic_x4(k2).double(), 4)
    assert analytic_x4(k2).shape == (31, 31)
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))  # the borders are mirrored differently
    assert (twice - once)[inner].abs().max() < 1e-6


class Recorder:
    """A method row that records the degradation it is handed and returns bicubic + its kernel."""

    def __init__(self, kernel=None):
        self.seen, self.kernel = [], kernel

    def __call__(self, lr, scale, degradation):
        self.seen.append(degradation)
        sr = F.interpolate(lr, scale_factor=scale, mode="bicubic")
        return Output(sr, {"kernel": self.kernel} if self.kernel is not None else {})


def test_blind_rows_never_see_the_kernel_the_oracle_does_and_estimates_are_scored(tmp_path):
    for name in ("a", "b"):  # two images: the second runs after the first's estimate is saved
        write_png(tmp_path / "hr" / f"{name}.png", (np.random.default_rng(0).random((40, 44, 3)) * 255).astype(np.uint8))
    cfg = load_config(TEST_CPU, ["test.degradations=[blind_mzsr]", "test.scales=[2]", *TINY_MZSR]).test
    data = [BenchmarkImages("tiny", sorted((tmp_path / "hr").glob("*.png")), None, 0)]
    truth = named_degradation("blind_mzsr").for_image("tiny/a", 2).kernel
    blind_row, oracle_row = Recorder(kernel=truth), Recorder()
    [blind] = evaluate(Row("MZSR(1)+net", blind_row), data, cfg, torch.device("cpu"), kernel_dir=tmp_path / "k")
    evaluate(Row("MZSR(1) true kernel", oracle_row, sees_true_kernel=True), data, cfg, torch.device("cpu"))
    assert blind_row.seen[0].blind and blind_row.seen[0].kernel is None
    assert torch.equal(oracle_row.seen[0].kernel, truth)
    assert blind.images[0]["kernel_l2"] < 1e-6 and "kernel" not in blind.images[0]  # a's kernel, given for both
    saved = tmp_path / "k" / "tiny" / "x2_blind_mzsr"
    assert np.allclose(np.load(saved / "a.npy"), truth.numpy())
    assert (saved / "a.MZSR_1_net.npy").exists() and (saved / "b.MZSR_1_net.npy").exists()


def test_kernel_net_kernels_are_valid_for_any_output_and_training_lowers_its_loss():
    kernels = cholesky_kernels(torch.randn(5, 3) * 3, 15)
    assert torch.isfinite(kernels).all() and torch.allclose(kernels.sum(dim=(-2, -1)), torch.ones(5), atol=1e-5)
    method = build_method(load_config(KERNEL_NET_CPU, ["model.channels=8", "train.patch_size=32",
                                                       "options.patches_per_kernel=2"]))
    model = method.build_model()
    torch.manual_seed(0)
    batch = method.training_batch((torch.rand(8, 3, 32, 32) * 255).to(torch.uint8), 0)
    assert batch["lr"].shape == (8, 3, 16, 16) and batch["kernels"].shape == (4, 15, 15)  # one per 2 patches
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = method.loss(model, batch)["loss"]
        losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert losses[-1] < 0.8 * losses[0]


def test_kernelgan_generator_is_its_kernel_then_subsampling():
    torch.manual_seed(0)
    g = Generator(channels=8)
    image = torch.rand(1, 3, 40, 40)
    k = g.kernel()
    expected = F.conv2d(image.transpose(0, 1), k[None, None], stride=2).transpose(0, 1)  # valid correlation
    assert k.shape == (13, 13)
    assert torch.allclose(g(image), expected, atol=1e-6)


def test_kernelgan_post_processing_and_a_short_run():
    mask = penalty_mask()
    # Zero but for the outer two taps, 30 x (1 - a Gaussian of sigma 13) there: 5.76 in a corner.
    assert mask.shape == (13, 13) and mask[2:-2, 2:-2].abs().sum() == 0 and abs(mask[0, 0] - 5.756) < 1e-2
    taps = torch.rand(13, 13, dtype=torch.float64)
    k = drop_negligible(taps)
    floor = 0.75 * torch.sort(taps.flatten()).values[-41]
    assert torch.equal(k > 0, taps > floor) and abs(k.sum().item() - 1) < 1e-9
    lr = degrade(torch.rand(1, 3, 160, 160), gaussian_kernel(15, 2.0, 2.0), 2).clamp(0, 1)
    kernel = kernelgan_x2(lr, iters=10)
    assert kernel.shape == (13, 13) and torch.isfinite(kernel).all()


def test_the_edge_estimator_tells_wide_blur_from_narrow_and_refuses_a_flat_image():
    from skimage import data

    from srlab.mzsr.estimate import EdgeEstimator, PriorEstimator
    from srlab.mzsr.kernels import kernel_covariance

    hr = torch.from_numpy(data.astronaut()[:256, :256].copy()).permute(2, 0, 1)[None].float() / 255
    wide, narrow = gaussian_kernel(15, 4.5, 4.5), gaussian_kernel(15, 1.2, 1.2)
    estimates = {name: EdgeEstimator()(quantize(degrade(hr, k, 2).clamp(0, 1)), 2) for name, k in
                 (("wide", wide), ("narrow", narrow))}
    assert not estimates["wide"].unreliable and estimates["wide"].kernel.shape == (15, 15)
    variance = {name: kernel_covariance(e.kernel[None].double())[0, [0, 2]].sum().item() for name, e in estimates.items()}
    assert variance["wide"] > variance["narrow"] + 1  # true: 9.0 and 2.4 pixels^2 (xx + yy)
    lr = quantize(degrade(hr, wide, 2).clamp(0, 1))
    assert kernel_error(estimates["wide"].kernel, wide)["kernel_l2"] < 0.5 * kernel_error(PriorEstimator()(lr, 2).kernel, wide)["kernel_l2"]
    flat = EdgeEstimator()(torch.full((1, 3, 40, 40), 0.5), 2)
    assert "orientations" in flat.unreliable


def kernel_net_checkpoint(path):
    method = build_method(load_config(KERNEL_NET_CPU, ["model.channels=4"]))
    save_checkpoint({"model": method.build_model().state_dict(), "config": to_dict(method.cfg)}, path)
    return path


def mzsr_checkpoint(path):
    from srlab.mzsr.model import MZSRNet

    cfg = load_config(TEST_CPU, [*TINY_MZSR])
    torch.manual_seed(0)
    model = MZSRNet(channels=4, num_layers=3)
    save_checkpoint({"model": model.state_dict(), "config": to_dict(cfg)}, path)
    return path


def test_the_blind_table_has_the_oracle_the_estimates_and_their_kernel_errors(tmp_path):
    write_png(tmp_path / "hr" / "a.png", (np.random.default_rng(0).random((36, 40, 3)) * 255).astype(np.uint8))
    out = tmp_path / "out"
    opts = ["options.pretrained=null", "options.zssr=false", "options.adapt_steps=[0,1]", "options.estimators=[net]",
            f"options.kernel_net={kernel_net_checkpoint(tmp_path / 'kn.pt')}", *TINY_MZSR,
            "test.degradations=[blind_mzsr]", "test.scales=[2]"]
    result = run_script("test.py", "--config", TEST_CPU, "--checkpoint", mzsr_checkpoint(tmp_path / "m.pt"),
                        "--dataset", f"tiny={tmp_path / 'hr'}", "--out", out, *sum((["--opt", o] for o in opts), []))
    assert result.returncode == 0, result.stderr
    records = {r["method"]: r for r in json.loads((out / "results.json").read_text())["records"]}
    assert set(records) == {"MZSR(0)", "MZSR(1) true kernel", "MZSR(1)+net"}
    assert {"kernel_l2", "kernel_psnr", "estimate_s"} <= records["MZSR(1)+net"]["extras"].keys()
    assert (out / "kernels" / "tiny" / "x2_blind_mzsr" / "a.npy").exists()


def test_zeroshot_estimates_the_kernel_and_writes_it_beside_the_output(tmp_path):
    image = write_png(tmp_path / "lr.png", (np.random.default_rng(0).random((20, 24, 3)) * 255).astype(np.uint8))
    checkpoint, kn = mzsr_checkpoint(tmp_path / "m.pt"), kernel_net_checkpoint(tmp_path / "kn.pt")
    args = ["--checkpoint", checkpoint, "--image", image, "--kernel", "estimate", "--estimator", "net", "--steps", 1,
            "--out", tmp_path / "sr.png"]
    missing = run_inline("zeroshot.py", *args)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "--kernel-net" in missing.stderr
    result = run_inline("zeroshot.py", *args, "--kernel-net", kn)
    assert result.returncode == 0, result.stderr
    assert "estimated the kernel with net in" in result.stdout
    kernel = np.load(tmp_path / "sr.kernel.npy")
    assert kernel.shape == (15, 15) and abs(kernel.sum() - 1) < 1e-6
    assert (tmp_path / "sr.kernel.png").exists()
    (tmp_path / "sr.png").unlink()  # the kernel files alone still stop a second run
    again = run_inline("zeroshot.py", *args, "--kernel-net", kn)
    assert again.returncode == 2 and "sr.kernel.npy" in again.stderr


def test_upscale_estimates_each_images_kernel_and_writes_it_beside_the_output(tmp_path):
    from skimage import data

    folder = tmp_path / "in"
    write_png(folder / "cat.png", data.chelsea()[:64, :80])
    checkpoint = meta_checkpoint(tmp_path / "meta.pt")
    result = run_inline("upscale.py", "--checkpoint", checkpoint, "--input", folder, "--out", tmp_path / "out",
                        "--kernel", "estimate", "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert "kernel by photo in" in result.stderr + result.stdout  # the default estimator
    assert np.load(tmp_path / "out" / "cat.kernel.npy").shape == (15, 15)
    assert (tmp_path / "out" / "cat.png").exists() and (tmp_path / "out" / "cat.kernel.png").exists()


def meta_checkpoint(path):
    """An MZSR meta-trained checkpoint as train.py writes it (a tiny network)."""
    cfg = load_config(REPO / "configs" / "mzsr" / "meta_x2_cpu.yaml", ["options.pretrained=null", *TINY_MZSR])
    from srlab.mzsr.model import MZSRNet

    torch.manual_seed(0)
    save_checkpoint({"model": MZSRNet(channels=4, num_layers=3).state_dict(), "config": to_dict(cfg)}, path)
    return path


def test_the_shipped_edge_calibration_is_what_the_training_images_give(shared_data):
    """EDGE_CALIBRATION at x2 is calibrate_edges on the first 40 BSD200 images (its documented recipe)."""
    from srlab.data import load_image, modcrop, to_tensor
    from srlab.mzsr.estimate import EDGE_CALIBRATION, calibrate_edges

    files = sorted((shared_data / "train" / "BSD200").glob("*.png"))[:40]
    fitted = calibrate_edges([to_tensor(modcrop(load_image(f), 2)) for f in files], 2)
    assert np.allclose(fitted, EDGE_CALIBRATION[2], atol=2e-3)
