"""ClassSR: the papers' sizes, the two classifier losses, and tiled routing/stitching."""
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from classsr.infer import make_grid, route_and_upscale, split, stitch
from classsr.losses import average_loss, class_loss
from classsr.models import Classifier, MSRResNet


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_and_flops_are_the_papers():
    assert n_params(Classifier()) == 60_035
    for nf, params, gflops in ((36, 481_683, 1.66), (52, 1_002_771, 3.44), (64, 1_517_571, 5.20)):
        model = MSRResNet(nf=nf)
        assert n_params(model) == params
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = model(torch.rand(1, 3, 32, 32))
        assert out.shape == (1, 3, 128, 128)
        assert counter.get_total_flops() / 1e9 == pytest.approx(gflops, rel=0.02)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_msrresnet_any_scale_starts_near_bilinear(scale):
    lr = torch.rand(2, 3, 7, 9)
    sr = MSRResNet(nf=8, nb=2, scale=scale)(lr)
    bilinear = nn.functional.interpolate(lr, scale_factor=scale, mode="bilinear", align_corners=False)
    assert sr.shape == (2, 3, 7 * scale, 9 * scale)
    assert (sr - bilinear).abs().mean() < 0.05  # 0.1-scaled initialisation


def test_class_loss_and_average_loss_on_hand_made_probabilities():
    one_hot = torch.eye(3)[[0, 1, 2, 0, 1, 2]]
    uniform = torch.full((6, 3), 1 / 3)
    all_first = torch.eye(3)[[0] * 6]
    assert class_loss(one_hot).item() == pytest.approx(0.0)
    assert class_loss(uniform).item() == pytest.approx(2.0)  # M - 1
    assert class_loss(all_first).item() == pytest.approx(0.0)
    assert average_loss(one_hot).item() == pytest.approx(0.0)  # each class used B/M times
    assert average_loss(uniform).item() == pytest.approx(0.0)
    assert average_loss(all_first).item() == pytest.approx(1.0)  # the maximum
    half = torch.tensor([[0.5, 0.5, 0.0]])
    assert class_loss(half).item() == pytest.approx(2 - (0 + 0.5 + 0.5))
    with pytest.raises(ValueError, match=r"\(B, M\)"):
        class_loss(torch.rand(3))


@pytest.mark.parametrize("size_hw", [(32, 32), (45, 70), (20, 33), (60, 88)])
def test_split_and_stitch_cover_the_image_exactly(size_hw):
    lr = torch.rand(1, 3, *size_hw)
    grid = make_grid(*size_hw, size=32, step=28)
    tiles = split(lr, grid)
    assert tiles.shape == (grid.rows * grid.cols, 3, 32, 32)
    torch.testing.assert_close(stitch(tiles, grid, 1), lr)  # overlaps averaged, padding cropped
    up = stitch(tiles.repeat_interleave(2, -1).repeat_interleave(2, -2), grid, 2)
    assert up.shape == (1, 3, size_hw[0] * 2, size_hw[1] * 2)


class FixedClass(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, x):
        return nn.functional.one_hot(torch.full((x.shape[0],), self.k), 3).float()


def test_routing_everything_to_one_branch_equals_that_branch_on_the_same_tiling():
    torch.manual_seed(0)
    branches = [MSRResNet(nf=nf, nb=1, scale=2).eval() for nf in (4, 6, 8)]
    lr = torch.rand(1, 3, 45, 70)
    grid = make_grid(45, 70, 32, 28)
    for k in range(3):
        sr, classes, _ = route_and_upscale(FixedClass(k), branches, lr, 2, max_tiles=4)
        assert torch.equal(classes, torch.full((6,), k))
        with torch.no_grad():
            expected = stitch(branches[k](split(lr, grid)), grid, 2)
        torch.testing.assert_close(sr, expected)
        assert sr.shape == (1, 3, 90, 140)


def test_mixed_routing_sends_each_sub_image_to_its_branch():
    class ByBrightness(nn.Module):  # class = which third of [0, 1] the tile's mean falls in
        def forward(self, x):
            return nn.functional.one_hot((x.mean(dim=(1, 2, 3)) * 3).long().clamp(0, 2), 3).float()

    branches = [lambda x, v=v: torch.full((x.shape[0], 3, 64, 64), v) for v in (0.0, 0.5, 1.0)]
    lr = torch.cat([torch.full((1, 3, 32, 32), v) for v in (0.1, 0.5, 0.9)], dim=-1)  # three 32-wide bands
    sr, classes, _ = route_and_upscale(ByBrightness(), branches, lr, 2, step=32)
    assert classes.tolist() == [0, 1, 2]
    assert sr[..., :, :64].eq(0).all() and sr[..., :, 64:128].eq(0.5).all() and sr[..., :, 128:].eq(1).all()
