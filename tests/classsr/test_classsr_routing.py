"""ClassSR's routing: sub-images, stitching and blends, the Class-Module, the route bias, the edge router."""

import numpy as np
import pytest
import torch
from classsr_helpers import FixedClass, one_at_a_time
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from srlab.classsr.infer import Router, make_grid, route_and_upscale, split, stitch, upscale_tiled
from srlab.classsr.models import Classifier, ClassSR, MSRResNet


@pytest.mark.parametrize("blend", ["mean", "linear"])
@pytest.mark.parametrize("size_hw", [(32, 32), (45, 70), (20, 33), (60, 88)])
def test_split_and_stitch_cover_the_image_exactly(size_hw, blend):
    lr = torch.rand(1, 3, *size_hw)
    grid = make_grid(*size_hw, size=32, step=28)
    tiles = split(lr, grid)
    assert tiles.shape == (grid.rows * grid.cols, 3, 32, 32)
    torch.testing.assert_close(stitch(tiles, grid, 1, blend), lr)  # overlaps blended, padding cropped
    up = stitch(tiles.repeat_interleave(2, -1).repeat_interleave(2, -2), grid, 2, blend)
    torch.testing.assert_close(up, lr.repeat_interleave(2, -1).repeat_interleave(2, -2))


def test_linear_blend_fades_from_one_sub_image_to_the_next_across_the_overlap():
    grid = make_grid(32, 60, size=32, step=28)  # two sub-images side by side, overlapping in columns 28-31
    for scale in (1, 2):
        side = 32 * scale
        tiles = torch.stack([torch.zeros(1, side, side), torch.ones(1, side, side)])  # left 0, right 1
        mean, linear = stitch(tiles, grid, scale, "mean")[0, 0], stitch(tiles, grid, scale, "linear")[0, 0]
        overlap = slice(28 * scale, 32 * scale)
        assert torch.equal(mean[:, overlap], torch.full((side, 4 * scale), 0.5))
        # each side's weight falls linearly to its edge, so the value ramps from 0 to 1 (pixel centres)
        ramp = (torch.arange(4 * scale) + 0.5) / (4 * scale)
        torch.testing.assert_close(linear[:, overlap], ramp.expand(side, -1))
        for image in (mean, linear):  # outside the overlap each sub-image's own pixels, untouched
            assert torch.equal(image[:, : 28 * scale], torch.zeros(side, 28 * scale))
            assert torch.equal(image[:, 32 * scale :], torch.ones(side, 28 * scale))
    with pytest.raises(ValueError, match="blend must be one of mean, linear, got 'gauss'"):
        stitch(tiles, grid, 2, "gauss")


@pytest.mark.parametrize("size_hw, step, scale", [((45, 70), 28, 2), ((20, 33), 28, 1), ((61, 50), 20, 2)])
def test_linear_blend_is_the_weighted_mean_of_every_sub_image_covering_a_pixel(size_hw, step, scale):
    """Against a plain reference: ragged last row and column, a wider overlap, x1 and x2."""
    torch.manual_seed(0)
    grid = make_grid(*size_hw, size=32, step=step)
    side, overlap = 32 * scale, (32 - step) * scale
    tiles = torch.rand(grid.rows * grid.cols, 1, side, side, dtype=torch.float64)
    ramp = torch.tensor([min(min(i + 0.5, side - i - 0.5) / overlap, 1.0) for i in range(side)], dtype=torch.float64)
    height, width = size_hw[0] * scale, size_hw[1] * scale
    total = torch.zeros(height, width, dtype=torch.float64)
    count = torch.zeros(height, width, dtype=torch.float64)
    for t, tile in enumerate(tiles[:, 0]):
        top, left = (t // grid.cols) * step * scale, (t % grid.cols) * step * scale
        h, w = min(side, height - top), min(side, width - left)  # the part inside the image
        weight = (ramp[:, None] * ramp[None, :])[:h, :w]
        total[top : top + h, left : left + w] += weight * tile[:h, :w]
        count[top : top + h, left : left + w] += weight
    torch.testing.assert_close(stitch(tiles, grid, scale, "linear")[0, 0], total / count)
    half = stitch(tiles.half(), grid, scale, "linear")  # blended in float32, returned in the tiles' dtype
    assert half.dtype == torch.float16 and torch.allclose(half[0, 0].double(), total / count, atol=1e-3)


@pytest.mark.parametrize("blend", ["mean", "linear"])
def test_routing_everything_to_one_branch_equals_that_branch_on_the_same_tiling(blend):
    torch.manual_seed(0)
    branches = [MSRResNet(nf=nf, nb=1, scale=2).eval() for nf in (4, 6, 8)]
    lr = torch.rand(1, 3, 45, 70)
    grid = make_grid(45, 70, 32, 28)
    for k in range(3):
        sr, classes, _ = route_and_upscale(FixedClass(k), branches, lr, 2, max_tiles=4, blend=blend)
        assert torch.equal(classes, torch.full((6,), k))
        with torch.no_grad():
            expected = one_at_a_time(branches[k], lr, grid, 2, blend)
        torch.testing.assert_close(sr, expected)
        tiled = upscale_tiled(branches[k], lr, 2, max_tiles=4, blend=blend)  # the "-O, sub-images" row
        torch.testing.assert_close(tiled, expected)
        assert sr.shape == (1, 3, 90, 140)
    other = "linear" if blend == "mean" else "mean"
    assert not torch.allclose(sr, route_and_upscale(FixedClass(2), branches, lr, 2, blend=other)[0])


def test_a_wrong_blend_in_a_config_is_a_one_line_error():
    from srlab.config import build
    from srlab.errors import ConfigError
    from srlab.registry import MODELS

    with pytest.raises(ConfigError) as info:
        build({"type": "classsr", "blend": "feather"}, MODELS, "model")
    assert "model.blend" in str(info.value) and "linear" in str(info.value) and "\n" not in str(info.value)
    assert build({"type": "classsr", "nb": 1, "blend": "linear"}, MODELS, "model").blend == "linear"


def test_edge_sub_images_are_ragged_so_no_branch_sees_padding_or_gets_called_empty():
    lr = torch.rand(1, 3, 45, 70)
    grid = make_grid(45, 70, 32, 28)  # rows at 0, 28 (17 high); columns at 0, 28 (32), 56 (14 wide)
    assert grid.sides() == ([32, 17], [32, 32, 14])
    assert int(grid.areas().sum()) == (32 + 17) * (32 + 32 + 14) < 2 * 3 * 32 * 32
    calls = []

    def nearest(x, k):  # pointwise: the stitched result must be exactly the whole image upscaled
        calls.append((k, tuple(x.shape)))
        return x.repeat_interleave(2, -1).repeat_interleave(2, -2)

    branches = [lambda x, k=k: nearest(x, k) for k in range(3)]
    sr, classes, _ = route_and_upscale(FixedClass(1), branches, lr, 2, max_tiles=2)
    torch.testing.assert_close(sr, lr.repeat_interleave(2, -1).repeat_interleave(2, -2))
    assert {k for k, _ in calls} == {1}  # the empty branches 0 and 2 were never called
    # one call per shape of sub-image (full, short at the bottom, at the right, both), batched
    assert sorted(shape for _, shape in calls) == [(1, 3, 17, 14), (1, 3, 32, 14), (2, 3, 17, 32), (2, 3, 32, 32)]
    calls.clear()
    route_and_upscale(FixedClass(1), branches, lr, 2, max_tiles=1)
    assert len(calls) == 6 and all(shape[0] == 1 for _, shape in calls)  # max_tiles bounds every batch


def test_the_class_module_runs_once_on_the_image_and_agrees_with_sub_image_by_sub_image():
    from srlab.classsr.infer import pad_to_grid, tile_logits

    torch.manual_seed(0)
    classifier = Classifier(width=8).eval()
    lr = torch.rand(1, 3, 45, 70)
    grid = make_grid(45, 70, 32, 28)
    with torch.no_grad():
        once = tile_logits(classifier, pad_to_grid(lr, grid), grid)
        each = classifier(split(lr, grid))
        assert classifier.tile_logits(torch.rand(1, 3, 40, 40), 30, 28) is None  # 30 is not a multiple of 4
    torch.testing.assert_close(once, each, rtol=1e-5, atol=1e-6)


def test_the_route_bias_moves_sub_images_between_classes_without_retraining():
    torch.manual_seed(0)
    net = ClassSR(widths=[4, 6, 8], nb=1, scale=2, classifier_width=8, tile=8, step=6).eval()
    lr = torch.rand(1, 3, 40, 52)
    shares = []
    for bias in (-100, -1, 0, 1, 100):
        _, classes, _ = net.upscale(lr, route_bias=bias)
        shares.append(torch.bincount(classes, minlength=3))
    assert shares[0].tolist() == [len(classes), 0, 0] and shares[-1].tolist() == [0, 0, len(classes)]
    mean_class = [float((s * torch.arange(3)).sum()) for s in shares]
    assert mean_class == sorted(mean_class)  # a larger bias never moves a sub-image to a narrower branch
    net.route_bias = 100.0
    assert net.upscale(lr)[1].eq(2).all()  # model.route_bias is the default


def test_routed_flops_equal_what_the_flop_counter_counts():
    from srlab.classsr.edge_router import EdgeRouter, edge_score, fit_thresholds
    from srlab.classsr.infer import classifier_flops, pad_to_grid, routed_flops, tile_logits
    from srlab.classsr.methods import tile_flops

    torch.manual_seed(0)
    cpu = torch.device("cpu")
    net = ClassSR(widths=[4, 6, 8], nb=1, scale=2, classifier_width=8, tile=8, step=6).eval()
    lr = torch.rand(1, 3, 29, 41) * torch.linspace(0, 1, 41)  # ragged in both directions, flat to busy
    grid = make_grid(29, 41, 8, 6)
    router = EdgeRouter(fit_thresholds(edge_score(split(lr, grid)), [1 / 3, 1 / 3, 1 / 3]))  # uses every branch
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        _, classes, grid = net.upscale(lr, classifier=router)
    per_pixel = [tile_flops(b, 8, cpu) / 64 for b in net.branches]
    assert set(classes.tolist()) == {0, 1, 2}
    expected = routed_flops(per_pixel, classes, grid) + tile_flops(router, 8, cpu) * len(classes)
    assert expected == pytest.approx(counter.get_total_flops(), rel=1e-6)
    # the Class-Module: once over the grid's canvas where its stride 4 divides size and step, else per sub-image
    for step in (4, 6):
        grid = make_grid(29, 41, 8, step)
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            tile_logits(net.classifier, pad_to_grid(lr, grid), grid)
        per_tile = tile_flops(net.classifier, 8, cpu)
        assert classifier_flops(net.classifier, grid, per_tile) == pytest.approx(counter.get_total_flops(), rel=1e-6)
    assert classifier_flops(net.classifier, make_grid(29, 41, 8, 4), per_tile) < 0.8 * per_tile * 7 * 9  # once < per tile


def test_the_edge_router_is_an_ordinal_classifier_fitted_to_shares():
    from srlab.classsr.edge_router import EdgeRouter, edge_score, fit_thresholds

    flat, busy = torch.full((1, 3, 8, 8), 0.5), torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert edge_score(busy) > edge_score(flat)
    scores = torch.arange(300, dtype=torch.float64)
    t = fit_thresholds(scores, [1 / 3, 1 / 3, 1 / 3])
    assert torch.bincount(torch.bucketize(scores, torch.tensor(t, dtype=torch.float64))).tolist() == [100, 100, 100]
    router = EdgeRouter([-3.0, -2.0])
    tiles = torch.rand(64, 3, 8, 8) * torch.linspace(0, 0.5, 64)[:, None, None, None]  # from flat to busy
    s = edge_score(tiles)
    expected = torch.bucketize(s, torch.tensor([-3.0, -2.0]))
    assert torch.equal(router(tiles).argmax(dim=1), expected)
    # a bias b on class k's logit (b x k) lowers both thresholds by b
    shifted = router(tiles) + 0.5 * torch.arange(3)
    assert torch.equal(shifted.argmax(dim=1), torch.bucketize(s, torch.tensor([-3.5, -2.5])))
    with pytest.raises(ValueError, match="increasing"):
        EdgeRouter([1.0, 0.0])


def test_mixed_routing_sends_each_sub_image_to_its_branch():
    class ByBrightness(Router):  # class = which third of [0, 1] the tile's mean falls in
        def forward(self, x):
            return nn.functional.one_hot((x.mean(dim=(1, 2, 3)) * 3).long().clamp(0, 2), 3).float()

    branches = [lambda x, v=v: torch.full((x.shape[0], 3, 64, 64), v) for v in (0.0, 0.5, 1.0)]
    lr = torch.cat([torch.full((1, 3, 32, 32), v) for v in (0.1, 0.5, 0.9)], dim=-1)  # three 32-wide bands
    sr, classes, _ = route_and_upscale(ByBrightness(), branches, lr, 2, step=32)
    assert classes.tolist() == [0, 1, 2]
    assert sr[..., :, :64].eq(0).all() and sr[..., :, 64:128].eq(0.5).all() and sr[..., :, 128:].eq(1).all()


def test_class_map_tints_each_sub_image_by_its_class():
    from srlab.classsr.infer import class_map

    grid = make_grid(4, 6, size=4, step=2)  # two sub-images side by side, overlapping in columns 2-3
    sr = torch.zeros(1, 3, 8, 12)
    picture = class_map(sr, torch.tensor([0, 2]), grid, scale=2, num_classes=3, opacity=0.5)
    assert picture.shape == (3, 8, 12)
    assert torch.allclose(picture[:, :, 0], torch.tensor([0.0, 0.5, 0.0])[:, None].expand(3, 8))  # class 0: green
    assert torch.allclose(picture[:, :, -1], torch.tensor([0.5, 0.0, 0.0])[:, None].expand(3, 8))  # class 2: red
    assert torch.allclose(picture[:, :, 5], torch.tensor([0.25, 0.25, 0.0])[:, None].expand(3, 8))  # overlap: mean


def test_sub_image_positions_cover_every_pixel():
    from srlab.classsr.prepare import sub_image_positions

    assert sub_image_positions(10, 10, 12, 4) == []
    pos = sub_image_positions(30, 21, 12, 8)
    assert {y for y, _ in pos} == {0, 8, 16, 18} and {x for _, x in pos} == {0, 8, 9}
    covered = np.zeros((30, 21), bool)
    for y, x in pos:
        covered[y : y + 12, x : x + 12] = True
    assert covered.all()

