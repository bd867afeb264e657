import numpy as np
import pytest
import torch

from srlab.imresize import contributions, cubic, imresize, output_size


def test_output_sizes_follow_matlab_ceil():
    assert output_size((321, 481), 1 / 3) == (107, 161)
    assert output_size((321, 481), 1 / 2) == (161, 241)
    assert output_size((321, 481), 1 / 4) == (81, 121)
    x = torch.rand(2, 3, 321, 481)
    assert imresize(x, 1 / 3).shape == (2, 3, 107, 161)
    assert imresize(imresize(x, 1 / 3), 3).shape == (2, 3, 321, 483)
    assert imresize(x, size=(100, 50)).shape == (2, 3, 100, 50)


def test_identity_at_scale_one():
    x = torch.rand(3, 17, 23, dtype=torch.float64)
    assert torch.equal(imresize(x, 1), x)


def test_cubic_kernel_is_keys_a_minus_half():
    t = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    np.testing.assert_allclose(cubic(t), [1.0, 0.5625, 0.0, -0.0625, 0.0, 0.0])


def test_upscale_border_uses_symmetric_padding():
    # Hand-computed from MATLAB's algorithm: the first x2 output pixel of 0, 1, 2, ... sits at
    # u = 0.75 and reads samples at 1-based positions -1, 0, 1, 2, which symmetric padding maps
    # to values 1, 0, 0, 1, weighted cubic(1.75), cubic(0.75), cubic(-0.25), cubic(-1.25) =
    # -0.0234375, 0.2265625, 0.8671875, -0.0703125: -0.09375. ("reflect" padding without the
    # edge sample would read 2, 1, 0, 1 and give -0.1171875; edge replication gives 0.)
    ramp = torch.arange(8, dtype=torch.float64).view(1, 8)
    out = imresize(ramp, size=(1, 16))
    assert out[0, 0].item() == pytest.approx(-0.09375, abs=1e-12)
    # Interior: cubic convolution reproduces linear functions at MATLAB's sample positions
    # u = x / 2 + 0.25, i.e. value u - 1 on a 0-based ramp.
    np.testing.assert_allclose(out[0, 4:12].numpy(), np.arange(5, 13) / 2 + 0.25 - 1, atol=1e-12)


def test_downscale_maps_pixels_like_matlab():
    # x0.5: output pixel x (1-based) is centred at u = 2x - 0.5, so an interior pixel of the ramp
    # 0..15 equals u - 1; antialiasing keeps linear functions exact too.
    ramp = torch.arange(16, dtype=torch.float64).view(1, 16)
    out = imresize(ramp, size=(1, 8))
    np.testing.assert_allclose(out[0, 2:6].numpy(), [2 * x - 1.5 for x in range(3, 7)], atol=1e-12)
    idx, w = contributions(16, 8, 0.5)
    assert idx.shape[1] == 8  # 4 / 0.5 = 8 taps + 2, two all-zero columns dropped
    np.testing.assert_allclose(w.sum(axis=1), 1.0)


def test_constant_stays_constant_and_gradients_flow():
    x = torch.full((1, 1, 9, 13), 0.3, requires_grad=True)
    for s in (0.25, 1 / 3, 0.5, 2, 3, 4):
        y = imresize(x, s)
        torch.testing.assert_close(y, torch.full_like(y, 0.3))
    imresize(x, 0.5).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_leading_axes_are_independent():
    x = torch.rand(2, 3, 20, 20)
    batched = imresize(x, 0.5)
    single = imresize(x[1, 2], 0.5)
    torch.testing.assert_close(batched[1, 2], single)


def test_the_taps_are_summed_in_a_fixed_order_batch_by_batch_or_in_blocks():
    """One image alone or in a batch, or cut into row blocks (the W axis only): bit-identical, so
    an evaluation's numbers do not depend on how its images were batched."""
    g = torch.Generator().manual_seed(1)
    x = torch.rand(3, 3, 37, 50, generator=g)
    for scale in (1 / 4, 1 / 3, 0.5, 2, 3, 4):
        batch = imresize(x, scale)
        assert torch.equal(batch[1:2], imresize(x[1:2], scale))
        rows = imresize(x[..., :20, :], size=(20, batch.shape[-1]))
        assert torch.equal(rows, imresize(x, size=(37, batch.shape[-1]))[..., :20, :])


def test_integer_scales_run_phase_by_phase_with_the_gathers_exact_values(monkeypatch):
    """Integer scales and their inverses take the strided, phase-by-phase path; it must give the
    gather's values bit for bit, borders (mirrored, even past a tiny image's edge) included."""
    import srlab.imresize as resize

    g = torch.Generator().manual_seed(2)
    cases = [(torch.rand(2, 3, 23, 31, generator=g), s) for s in (2, 3, 4, 1 / 2, 1 / 3, 1 / 4)]
    cases += [(torch.rand(1, 1, 3, 2, generator=g), 4), (torch.rand(1, 3, 9, 12, dtype=torch.float64, generator=g), 1 / 3)]
    periodic = [resize.imresize(x, s) for x, s in cases]
    assert resize._period(23, 46, 2.0, torch.float32) == (2, 1) and resize._period(24, 8, 1 / 3, torch.float32) == (1, 3)
    monkeypatch.setattr(resize, "_period", lambda *args: None)
    for (x, s), fast in zip(cases, periodic):
        assert torch.equal(fast, resize.imresize(x, s)), s
