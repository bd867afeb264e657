import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO
from skimage.metrics import structural_similarity

from srlab.metrics import psnr, psnr_rgb, quantize, rgb_to_y, ssim


def numpy_y(img: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> MATLAB rgb2ycbcr Y (rounded), written out independently."""
    r, g, b = (img[..., i].astype(np.float64) for i in range(3))
    return np.round(16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255)


def as_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255


def test_psnr_matches_numpy_and_ssim_matches_skimage():
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (2, 40, 52, 3), dtype=np.uint8)
    noise = rng.normal(0, 12, hr.shape)
    sr = np.clip(np.round(hr + noise), 0, 255).astype(np.uint8)
    sr_t = torch.cat([as_tensor(i) for i in sr])
    hr_t = torch.cat([as_tensor(i) for i in hr])
    for border in (0, 2, 4):
        got_psnr = psnr(sr_t, hr_t, border)
        got_ssim = ssim(sr_t, hr_t, border)
        assert got_psnr.shape == got_ssim.shape == (2,)
        for i in range(2):
            c = slice(border, -border or None)
            ya, yb = numpy_y(sr[i])[c, c], numpy_y(hr[i])[c, c]
            expected_psnr = 10 * np.log10(255**2 / np.mean((ya - yb) ** 2))
            expected_ssim = structural_similarity(ya, yb, data_range=255, gaussian_weights=True, sigma=1.5,
                                                  use_sample_covariance=False)
            assert got_psnr[i].item() == pytest.approx(expected_psnr, abs=1e-9)
            assert got_ssim[i].item() == pytest.approx(expected_ssim, abs=1e-9)


def test_y_channel_and_quantisation():
    x = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    assert rgb_to_y(x).item() == 81  # round(16 + 65.481)
    assert rgb_to_y(torch.ones(1, 3, 1, 1)).item() == 235
    assert torch.equal(quantize(torch.tensor([-0.1, 0.5, 1.2])), torch.tensor([0.0, 128 / 255, 1.0]))


def test_identical_images_and_rgb_psnr():
    x = torch.rand(1, 3, 20, 20)
    assert ssim(x, x, 2).item() == pytest.approx(1.0)
    y = quantize(x + 4 / 255)
    assert 30 < psnr_rgb(y, quantize(x), 2).item() < 50


# Published bicubic rows (PSNR_Y / SSIM_Y): VDSR / EDSR / RCAN papers.
PUBLISHED = {
    ("Set5", 2): (33.66, 0.9299), ("Set5", 3): (30.39, 0.8682), ("Set5", 4): (28.42, 0.8104),
    ("BSD100", 2): (29.56, 0.8431), ("BSD100", 3): (27.21, 0.7385), ("BSD100", 4): (25.96, 0.6675),
    ("Urban100", 2): (26.88, 0.8403), ("Urban100", 3): (24.46, 0.7349), ("Urban100", 4): (23.14, 0.6577),
}


def test_bicubic_baseline_reproduces_published_set5_rows(shared_data, tmp_path):
    """Through the real CLI: configs/bicubic.yaml on Set5 (BSD100/Urban100 are in the closing note)."""
    proc = subprocess.run(
        [sys.executable, "scripts/test.py", "--config", "configs/bicubic.yaml", "--out", str(tmp_path),
         "--opt", "test.datasets=[Set5]"],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "SR_DATA_ROOT": str(shared_data)},
    )
    assert proc.returncode == 0, proc.stderr
    records = json.loads((tmp_path / "results.json").read_text())["records"]
    assert {(r["dataset"], r["scale"]) for r in records} == {("Set5", 2), ("Set5", 3), ("Set5", 4)}
    for r in records:
        want_psnr, want_ssim = PUBLISHED[(r["dataset"], r["scale"])]
        assert abs(r["psnr_y"] - want_psnr) <= 0.05, r
        assert abs(r["ssim_y"] - want_ssim) <= 0.003, r
        assert r["n_images"] == 5 and len(r["images"]) == 5 and r["degradation"] == "bicubic"
        assert r["psnr_y"] == pytest.approx(r["bicubic_psnr_y"])


def test_strips_and_worker_threads_do_not_change_the_values(monkeypatch):
    """Metrics run in row strips (bounded memory) on single-threaded workers: any strip size, and
    one thread or several, give the whole-image values (PSNR exactly; SSIM to rounding)."""
    import srlab.metrics as metrics

    g = torch.Generator().manual_seed(0)
    hr = quantize(torch.rand(2, 3, 75, 61, generator=g))
    sr = quantize(hr + 0.05 * torch.randn(hr.shape, generator=g))
    monkeypatch.setattr(metrics, "STRIP_ROWS", 10_000)
    whole = psnr(sr, hr, 3), ssim(sr, hr, 3), metrics.y_channel(sr)
    threads = torch.get_num_threads()
    for rows, n_threads in [(1, 2), (7, 2), (32, 1)]:
        monkeypatch.setattr(metrics, "STRIP_ROWS", rows)
        torch.set_num_threads(n_threads)
        try:
            assert torch.equal(psnr(sr, hr, 3), whole[0])
            torch.testing.assert_close(ssim(sr, hr, 3), whole[1], rtol=0, atol=1e-12)
            assert torch.equal(metrics.y_channel(sr), whole[2])
        finally:
            torch.set_num_threads(threads)
    assert metrics.y_channel(sr).dtype == torch.uint8  # one byte a pixel, whatever the image size


def test_y_channel_equals_matlabs_float64_formula_at_every_rounding_tie():
    """194 of the 2^24 colours put 16 + (65.481 R + 128.553 G + 24.966 B) / 255 exactly on k + 0.5,
    where the rounding depends on how the float64 sum was formed; there, and on random colours,
    ``y_channel`` (8-bit levels in float32, summed in float64) gives the float64 formula's Y."""
    g_levels, b_levels = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    ties = []
    for r in range(256):
        n = 65481 * r + 128553 * g_levels + 24966 * b_levels  # 1000 x the numerator, exact integers
        hit = (n + 127500) % 255000 == 0
        ties += [(r, g, b) for g, b in zip(g_levels[hit], b_levels[hit])]
    assert len(ties) == 194
    rng = np.random.default_rng(0)
    colours = np.concatenate([np.array(ties), rng.integers(0, 256, (20000, 3))]).astype(np.uint8)
    image = colours[None]  # (1, N, 3)
    assert np.array_equal(rgb_to_y(as_tensor(image))[0, 0, 0].numpy(), numpy_y(image)[0])
