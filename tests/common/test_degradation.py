import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from srlab.data import load_image
from srlab.degradation import (
    TEST_KERNELS,
    blur,
    degrade,
    gaussian_kernel,
    load_kernel,
    named_degradation,
    random_kernels,
)
from srlab.errors import UserError
from srlab.imresize import imresize


def second_moments(k: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    k = k.double().numpy()
    n = k.shape[0]
    y, x = np.mgrid[0:n, 0:n].astype(np.float64)
    mean = np.array([(k * x).sum(), (k * y).sum()])
    dx, dy = x - mean[0], y - mean[1]
    cov = np.array([[(k * dx * dx).sum(), (k * dx * dy).sum()], [(k * dx * dy).sum(), (k * dy * dy).sum()]])
    return mean, cov


@pytest.mark.parametrize("l1,l2,theta", [(2.0, 2.0, 0.0), (4.0, 1.0, -0.5), (3.0, 1.5, 1.0)])
def test_gaussian_kernel_sum_centre_covariance(l1, l2, theta):
    k = gaussian_kernel(41, l1, l2, theta, dtype=torch.float64)  # large support: no truncation
    assert k.sum().item() == pytest.approx(1.0, abs=1e-12)
    mean, cov = second_moments(k)
    np.testing.assert_allclose(mean, [20.0, 20.0], atol=1e-9)
    r = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    sigma = r @ np.diag([l1, l2]) @ r.T  # (x, y) covariance, theta from the x (column) axis
    np.testing.assert_allclose(cov, sigma, atol=1e-6)


def test_even_size_kernel_is_centred_between_pixels():
    mean, _ = second_moments(gaussian_kernel(20, 1.5, 1.5))
    np.testing.assert_allclose(mean, [9.5, 9.5], atol=1e-5)


def test_random_kernels_follow_the_mzsr_sampler():
    g = torch.Generator().manual_seed(1)
    ks = random_kernels(300, scale=2, size=31, generator=g).double()
    assert ks.shape == (300, 31, 31)
    torch.testing.assert_close(ks.sum(dim=(1, 2)), torch.ones(300, dtype=torch.float64))
    eig = np.array([np.linalg.eigvalsh(second_moments(k)[1]) for k in ks])
    lam2, lam1 = eig[:, 0], eig[:, 1]
    assert (lam1 >= 1 - 1e-3).all() and (lam1 <= 2.5 * 2 + 0.05).all()  # l1 in [1, 2.5 s]
    assert (lam2 >= 1 - 1e-3).all() and (lam2 <= lam1 + 1e-6).all()  # l2 in [1, l1]
    again = random_kernels(300, scale=2, size=31, generator=torch.Generator().manual_seed(1)).double()
    torch.testing.assert_close(again, ks)


@pytest.mark.parametrize("ksize", [15, 8, 21])
def test_blur_matches_scipy_correlate_reflect(ksize):
    x = torch.rand(3, 3, 19, 26, dtype=torch.float64)
    ks = torch.rand(3, ksize, ksize, dtype=torch.float64)
    out = blur(x, ks)
    ref = np.stack([[ndi.correlate(x[b, c].numpy(), ks[b].numpy(), mode="reflect") for c in range(3)] for b in range(3)])
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-12)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_degrade_direct_and_bicubic_match_scipy(scale):
    hr = torch.rand(4, 3, 24, 36, dtype=torch.float64)
    ks = random_kernels(4, scale).double()
    direct = degrade(hr, ks, scale, "direct")
    ref = np.stack([[ndi.correlate(hr[b, c].numpy(), ks[b].numpy(), mode="reflect")[::scale, ::scale]
                     for c in range(3)] for b in range(4)])
    np.testing.assert_allclose(direct.numpy(), ref, atol=1e-12)
    bic = degrade(hr, ks, scale, "bicubic")
    torch.testing.assert_close(bic, imresize(torch.from_numpy(np.stack([[ndi.correlate(hr[b, c].numpy(), ks[b].numpy(), mode="reflect") for c in range(3)] for b in range(4)])), 1 / scale))


def test_one_kernel_for_the_whole_batch_and_noise():
    hr = torch.rand(2, 3, 16, 16)
    k = gaussian_kernel(15, 2.0, 2.0)
    torch.testing.assert_close(degrade(hr, k, 2), degrade(hr, k.expand(2, 15, 15), 2))
    noisy = degrade(hr, k, 2, noise_sigma=0.05, generator=torch.Generator().manual_seed(0))
    assert 0.03 < (noisy - degrade(hr, k, 2)).std().item() < 0.07


def test_named_named_degradations():
    assert set(TEST_KERNELS) == {"gd_0.2", "gd_2.0", "gd_ani", "gb_1.3"}
    assert named_degradation("gb_1.3").mode == "bicubic"
    assert named_degradation("bicubic").kernel is None
    with pytest.raises(UserError, match="unknown degradation 'gd_9'"):
        named_degradation("gd_9")


def test_official_mzsr_inputs_are_reproduced_exactly(shared_data):
    """The MZSR repository's Set5 g^d_2.0 x2 LR PNGs, bit for bit."""
    ref = shared_data / "reference" / "mzsr_g20_x2"
    kernel = load_kernel(ref / "kernel.mat").double()
    assert kernel.shape == (21, 21)
    torch.testing.assert_close(named_degradation("gd_2.0").kernel.double(), kernel, atol=1e-7, rtol=0)
    for name in ("baby", "bird", "butterfly", "head", "woman"):
        hr_u8 = load_image(shared_data / "benchmarks" / "Set5" / "HR" / f"{name}.png")
        hr = torch.from_numpy(hr_u8).permute(2, 0, 1)[None].double() / 255  # float64 all the way
        lr = torch.round(degrade(hr, kernel, 2, "direct").clamp(0, 1) * 255)
        expected = torch.from_numpy(load_image(ref / "Set5" / f"{name}.png")).permute(2, 0, 1)[None].double()
        assert torch.equal(lr, expected), name


def test_kernel_files(tmp_path):
    np.save(tmp_path / "k.npy", np.ones((5, 5)))
    k = load_kernel(tmp_path / "k.npy")
    assert k.sum().item() == pytest.approx(1.0)
    assert named_degradation(str(tmp_path / "k.npy")).mode == "direct"
    assert named_degradation(f"bicubic:{tmp_path / 'k.npy'}").mode == "bicubic"
    (tmp_path / "bad.npy").write_text("nope")
    with pytest.raises(UserError, match="bad.npy"):
        load_kernel(tmp_path / "bad.npy")
