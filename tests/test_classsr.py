"""ClassSR: the papers' sizes, the two classifier losses, and tiled routing/stitching."""
import json

import numpy as np
import pytest
import torch
from conftest import REPO, run_script, write_png
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from srlab.classsr.infer import Router, make_grid, route_and_upscale, split, stitch, upscale_tiled
from srlab.classsr.losses import average_loss, class_loss
from srlab.classsr.models import Classifier, ClassSR, MSRResNet
from srlab.data import resolve_files
from srlab.imresize import imresize

CONFIGS = REPO / "configs" / "classsr"
O_CPU = CONFIGS / "msrresnet_o_x4_cpu.yaml"  # the base the stage tests override


def write_fake_split(path, scale: int = 4) -> list:
    """A class split of the embedded training images: one 16-px LR sub-image per image, class i % 3."""
    files = resolve_files("skimage_train", None, "train")
    rows = [[i, 0, 0, 30.0 + i, i % 3] for i in range(len(files))]
    path.write_text(json.dumps({"scale": scale, "lr_size": 16, "step": 16, "n_classes": 3,
                                "images": [str(f) for f in files], "sub_images": rows}))
    return files


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


def test_fsrcnn_carn_and_rcan_backbones_have_the_papers_sizes_at_classsrs_widths():
    from srlab.classsr.backbones import CARN, FSRCNN, RCAN

    # FSRCNN d = 16 / 36 / 56 (s 12, m 4), CARN-M 36 / 52 / 64 and RCAN-O, x4, per 32x32 LR sub-image;
    # the ClassSR paper's CARN-O: 295K weights, 1.15 GFLOPs; RCAN-O: 15.6M weights, 32.60 GFLOPs.
    for make, width, params, gflops in ((FSRCNN, 16, 10_843, 0.0218), (FSRCNN, 36, 17_763, 0.0358),
                                        (FSRCNN, 56, 24_683, 0.0498), (CARN, 36, 94_395, 0.380),
                                        (CARN, 52, 195_003, 0.772), (CARN, 64, 294_147, 1.155),
                                        (RCAN, 64, 15_592_355, 32.60)):
        model = make(width)
        assert n_params(model) == params
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            out = model(torch.rand(1, 3, 32, 32))
        assert out.shape == (1, 3, 128, 128)
        assert counter.get_total_flops() / 1e9 == pytest.approx(gflops, rel=0.01)
    for scale in (2, 3, 4):  # any size, any scale: the ragged sub-images need both
        for model in (FSRCNN(d=8, m=1, scale=scale), CARN(nf=8, blocks=1, scale=scale), RCAN(8, 1, 1, scale=scale)):
            assert model(torch.rand(2, 3, 7, 9)).shape == (2, 3, 7 * scale, 9 * scale)
    for backbone, widths in (("fsrcnn", [16, 36, 56]), ("carn", [36, 52, 64])):
        net = ClassSR(widths=widths, backbone=backbone, nb=1, classifier_width=8).eval()
        assert type(net.branches[0]).__name__ == backbone.upper() and net.widest == 2
        sr, classes, _ = net.upscale(torch.rand(1, 3, 45, 70))
        assert sr.shape == (1, 3, 180, 280) and classes.shape == (6,)
    with pytest.raises(ValueError, match="backbone must be one of msrresnet, fsrcnn, carn, rcan, got 'vgg'"):
        ClassSR(backbone="vgg")


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


class FixedClass(Router):
    def __init__(self, k):
        super().__init__()
        self.k = k

    def forward(self, x):
        return nn.functional.one_hot(torch.full((x.shape[0],), self.k), 3).float()


def one_at_a_time(branch, lr, grid, scale, blend="mean"):
    """The routed result written out sub-image by sub-image: each ragged edge one cut to the image."""
    heights, widths = grid.sides()
    side = grid.size * scale
    outs = []
    for i, tile in enumerate(split(lr, grid).split(1)):
        h, w = heights[i // grid.cols], widths[i % grid.cols]
        outs.append(nn.functional.pad(branch(tile[..., :h, :w]), (0, side - w * scale, 0, side - h * scale)))
    return stitch(torch.cat(outs), grid, scale, blend)


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


def test_psnr_quantiles_split_sub_images_into_three_equal_classes():
    from srlab.classsr.prepare import assign_classes, class_thresholds, score_sub_images

    psnrs = torch.arange(30, dtype=torch.float64)  # 0 .. 29 dB
    thresholds = class_thresholds(psnrs)
    classes = assign_classes(psnrs, thresholds)
    assert torch.bincount(classes).tolist() == [10, 10, 10]
    assert classes[-1] == 0 and classes[0] == 2  # highest PSNR = simple, lowest = hard
    # Scoring: the bicubic "network" scores flat sub-images higher than textured ones.
    image = np.zeros((64, 96, 3), np.uint8)
    image[:, 48:] = np.random.default_rng(0).integers(0, 256, (64, 48, 3), dtype=np.uint8)
    positions, scores, edges = score_sub_images(lambda lr: imresize(lr, scale=2), image, 2, 16, 16)
    assert len(positions) == len(scores) == len(edges) == 2 * 3
    flat = [s for (y, x), s in zip(positions, scores) if x + 32 <= 48]
    textured = [s for (y, x), s in zip(positions, scores) if x >= 48]
    assert min(flat) > max(textured)
    assert max(e for (y, x), e in zip(positions, edges) if x + 32 <= 48) < min(e for (y, x), e in zip(positions, edges) if x >= 48)


def test_prepare_script_writes_an_equal_three_way_split(tmp_path):
    from srlab.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = MSRResNet(nf=4, nb=1, scale=4)
    save_checkpoint({"model": model.state_dict()}, tmp_path / "o.pt")
    opts = ["model.nf=4", "model.nb=1", "train.datasets=[skimage_train]", "device=cpu"]
    result = run_script("prepare_classsr.py", "--config", O_CPU, "--checkpoint", tmp_path / "o.pt", "--out",
                        tmp_path / "split.json", "--lr-size", "16", "--step", "64", *sum((["--opt", o] for o in opts), []))
    assert result.returncode == 0, result.stderr
    split = json.loads((tmp_path / "split.json").read_text())
    rows = split["sub_images"]
    counts = np.bincount([r[4] for r in rows], minlength=3)
    assert split["scale"] == 4 and len(split["thresholds_psnr_y"]) == 2 and len(split["images"]) == 10
    assert abs(counts - len(rows) / 3).max() <= 1  # quantile split: equal thirds
    t1, t2 = split["thresholds_psnr_y"]
    assert all((r[3] >= t2) == (r[4] == 0) and (r[3] < t1) == (r[4] == 2) for r in rows)
    e1, e2 = split["edge_thresholds"]
    assert e1 < e2 and f"[{e1:.4f}, {e2:.4f}]" in result.stdout  # printed for the test config


def test_patch_sampler_cuts_patches_inside_the_regions_only(tmp_path):
    from conftest import write_png

    from srlab.data import PatchSampler, list_images

    rng = np.random.default_rng(0)
    for i in range(2):
        write_png(tmp_path / f"{i}.png", rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
    files = list_images(tmp_path)
    regions = np.array([[1, 8, 20, 16]])  # one 16x16 square of the second image
    batch = PatchSampler(files, patch_size=16, batch_size=3, augment=False, regions=regions)[0]
    from srlab.data import load_image

    expected = torch.from_numpy(load_image(files[1])[8:24, 20:36].copy()).permute(2, 0, 1)
    assert all(torch.equal(patch, expected) for patch in batch)


def test_branch_stage_trains_on_its_class_and_rejects_a_foreign_split(tmp_path):
    from srlab.config import load_config
    from srlab.errors import ConfigError, UserError
    from srlab.registry import build_method
    from srlab.runner import train

    files = write_fake_split(tmp_path / "split.json")
    opts = ["method=classsr_branch", f"options.split={tmp_path / 'split.json'}", "options.branch_class=1",
            "model.nf=4", "model.nb=1", "train.datasets=[skimage_train]", "train.total_iters=2",
            "train.scheduler.warmup_iters=0", "train.num_workers=0",
            "train.log_every=1", "val.datasets=[skimage_test]", "val.max_images=1"]
    cfg = load_config(O_CPU, opts)
    method = build_method(cfg)
    regions = method.training_regions(files)
    assert regions[:, 0].tolist() == [1, 4, 7] and (regions[:, 3] == 64).all()
    records = train(method, cfg, tmp_path / "run")
    assert records and records[0].method == "msrresnet_class1"  # named by what ran
    from srlab.checkpoint import load_checkpoint

    last = tmp_path / "run" / "checkpoints" / "last.pt"
    warm = build_method(load_config(O_CPU, [*opts, f"options.init={last}"]))
    assert torch.equal(warm.build_model().conv_first.weight, load_checkpoint(last)["model"]["conv_first.weight"])
    wrong = build_method(load_config(O_CPU, [*opts, "model.nf=5", f"options.init={last}"]))
    with pytest.raises(UserError, match="options.init"):
        wrong.build_model()
    with pytest.raises(ConfigError, match="other images than train.datasets"):
        method.training_regions(files[:-1])
    with pytest.raises(ConfigError, match="branch_class must be in \\[0, 2\\]"):
        build_method(load_config(O_CPU, [*opts[:2], "options.branch_class=3"])).training_regions(files)


@pytest.mark.parametrize("scale", [4, 2])
def test_tiny_three_stage_run_on_cpu(tmp_path, scale):
    """Stage 1 (each branch on its class), stage 2 (Class-Module, branches frozen), stage 3 (all)."""
    from srlab.checkpoint import load_checkpoint
    from srlab.config import load_config
    from srlab.registry import build_method
    from srlab.runner import train

    write_fake_split(tmp_path / "split.json", scale)
    common = [f"model.scale={scale}", f"train.scales=[{scale}]", f"val.scales=[{scale}]", "train.datasets=[skimage_train]",
              "train.total_iters=2", "train.scheduler.warmup_iters=0", "train.num_workers=0", "train.batch_size=4",
              "train.patch_size=32",
              "val.datasets=[skimage_test]", "val.max_images=1"]
    widths = [4, 6, 8]
    for k, nf in enumerate(widths):
        opts = ["method=classsr_branch", f"options.split={tmp_path / 'split.json'}", f"options.branch_class={k}",
                f"model.nf={nf}", "model.nb=1", *common]
        cfg = load_config(O_CPU, opts)
        train(build_method(cfg), cfg, tmp_path / f"branch{k}")

    model = [f"model={{type: classsr, widths: {widths}, nb: 1, scale: {scale}, classifier_width: 8, tile: 8, step: 6}}"]
    branch_ckpts = [str(tmp_path / f"branch{k}" / "checkpoints" / "last.pt") for k in range(3)]
    cfg2 = load_config(O_CPU, ["method=classsr", *model, f"options.branches={branch_ckpts}", *common])
    train(build_method(cfg2), cfg2, tmp_path / "stage2")
    stage2 = load_checkpoint(tmp_path / "stage2" / "checkpoints" / "last.pt")["model"]
    branch0 = load_checkpoint(branch_ckpts[0])["model"]
    assert torch.equal(stage2["branches.0.conv_first.weight"], branch0["conv_first.weight"])  # frozen

    cfg3 = load_config(O_CPU, ["method=classsr", *model, f"options.init={tmp_path / 'stage2' / 'checkpoints' / 'last.pt'}",
                               "options.freeze_branches=false", *common])
    records = train(build_method(cfg3), cfg3, tmp_path / "stage3")
    stage3 = load_checkpoint(tmp_path / "stage3" / "checkpoints" / "last.pt")["model"]
    assert not torch.equal(stage3["branches.0.conv_first.weight"], stage2["branches.0.conv_first.weight"])
    assert not torch.equal(stage3["classifier.fc.weight"], stage2["classifier.fc.weight"])
    assert records[0].method == "classsr" and records[0].scale == scale and records[0].psnr_y > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = EventAccumulator(str(tmp_path / "stage3" / "tb")).Reload().Tags()
    assert {"train/class_share/0", "train/class_loss", "train/average_loss"} <= set(tags["scalars"])
    assert any(t.startswith("val/class_map/skimage_test/") for t in tags["images"])


def test_collapse_warning(recwarn):
    from srlab.config import load_config
    from srlab.registry import build_method

    cfg = load_config(O_CPU, ["method=classsr", "model={type: classsr, widths: [4, 4, 4], nb: 1, classifier_width: 4}",
                              "train.patch_size=32"])
    method = build_method(cfg)
    for _ in range(49):
        method._watch_collapse(torch.tensor([0.0, 0.0, 1.0]))
    assert len(recwarn) == 0
    for _ in range(10):
        method._watch_collapse(torch.tensor([0.0, 0.0, 1.0]))
    assert len(recwarn) == 1 and "collapsing: class 2" in str(recwarn[0].message)


def test_test_script_reports_cost_by_sub_image_count_and_draws_the_knob_curve(tmp_path):
    from srlab.checkpoint import save_checkpoint
    from srlab.config import load_config, to_dict
    from srlab.registry import build_method

    model_opt = "model={type: classsr, widths: [4, 6, 8], nb: 1, scale: 4, classifier_width: 8, tile: 8, step: 4}"
    cfg = load_config(O_CPU, ["method=classsr", model_opt, "train.patch_size=32"])
    torch.manual_seed(0)
    net = build_method(cfg).build_model()
    save_checkpoint({"model": net.state_dict(), "config": to_dict(cfg)}, tmp_path / "c.pt")
    rng = np.random.default_rng(0)
    write_png(tmp_path / "hr" / "a.png", rng.integers(0, 256, (60, 72, 3), dtype=np.uint8))
    write_png(tmp_path / "hr" / "b.png", (rng.integers(0, 256, (120, 160, 3)) * np.linspace(0, 1, 160)[:, None]).astype(np.uint8))
    result = run_script("test.py", "--config", O_CPU, "--checkpoint", tmp_path / "c.pt", "--dataset",
                        f"tiny={tmp_path / 'hr'}", "--out", tmp_path / "out", "--opt", "method=classsr",
                        "--opt", model_opt, "--opt", "train.patch_size=32", "--opt", "options.route_biases=[-100, 100]",
                        "--opt", "options.edge_thresholds=[-4.0, -3.0]")
    assert result.returncode == 0, result.stderr
    records = {r["method"]: r for r in json.loads((tmp_path / "out" / "results.json").read_text())["records"]}
    assert set(records) == {"ClassSR", "ClassSR bias -100", "ClassSR bias +100", "edge router", "edge router bias -100",
                            "edge router bias +100", "widest branch alone", "widest branch alone, sub-images"}
    cost = json.loads((tmp_path / "out" / "cost.json").read_text())[0]
    rows = {r["method"]: r for r in cost["rows"]}
    images = records["ClassSR"]["images"]

    def total(method, key):
        return sum(image[key] for image in records[method]["images"])

    # set-level numbers are sums over the images (weighted by sub-image count), not means of percentages
    assert rows["ClassSR"]["flops_vs_whole"] == pytest.approx(total("ClassSR", "GFLOPs") / total("widest branch alone", "GFLOPs"))
    shares = rows["ClassSR"]["class_shares"]
    assert shares == pytest.approx([total("ClassSR", f"class {k} sub-images") / total("ClassSR", "sub-images") for k in range(3)])
    assert sum(shares) == pytest.approx(1) and len({image["sub-images"] for image in images}) == 2
    # the whole-image baseline: its FLOPs per LR pixel times the image
    from srlab.classsr.methods import tile_flops

    per_pixel = tile_flops(net.branches[2], 8, torch.device("cpu")) / 64
    assert total("widest branch alone", "GFLOPs") == pytest.approx(per_pixel * (15 * 18 + 30 * 40) / 1e9)
    # the knob's ends: every sub-image to the narrowest / the widest branch
    assert rows["ClassSR bias -100"]["class_shares"] == [1, 0, 0] and rows["edge router bias -100"]["class_shares"] == [1, 0, 0]
    assert rows["ClassSR bias +100"]["class_shares"] == [0, 0, 1]
    assert 1 < rows["ClassSR bias +100"]["flops_vs_same_sub_images"] < 1.05  # the widest everywhere, plus the Class-Module
    assert rows["widest branch alone, sub-images"]["flops_vs_whole"] > 1  # overlapping sub-images cost more than the image
    assert (tmp_path / "out" / "curve_tiny_x4_bicubic.png").stat().st_size > 1000
    assert "FLOPs vs -O whole" in result.stdout and "cost.json" in result.stdout
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    pictures = EventAccumulator(str(tmp_path / "out" / "tb")).Reload().Tags()["images"]
    assert pictures == ["test/class_map/tiny/a", "test/class_map/tiny/b"]


def test_benchmark_script_times_every_version(tmp_path):
    out = tmp_path / "bench.json"
    result = run_script("benchmark_classsr.py", "--config", CONFIGS / "test_x4_cpu.yaml", "--opt",
                        "model={type: classsr, widths: [4, 6, 8], nb: 1, scale: 4, classifier_width: 8, tile: 8, step: 6, "
                        "blend: linear}", "--dataset", "skimage_test", "--images", "1", "--repeats", "1", "--route-biases", "-100", "--out", out)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["batched_equals_one_by_one"] is True  # same classes and SR images, every image
    rows = report["versions"]
    assert set(rows) == {"widest_whole", "widest_tiled", "classsr", "classsr_one_by_one", "branch0_tiled", "branch1_tiled",
                         "classsr_bias-100"}
    assert rows["classsr_bias-100"]["gflops_per_image"] == pytest.approx(rows["branch0_tiled"]["gflops_per_image"])
    assert rows["classsr"]["gflops_per_image"] == pytest.approx(rows["classsr_one_by_one"]["gflops_per_image"])
    assert rows["widest_tiled"]["gflops_per_image"] > rows["widest_whole"]["gflops_per_image"]  # overlap costs
    assert sum(report["class_shares"]) == pytest.approx(1)


def test_every_classsr_config_loads():
    from srlab.config import build, load_config
    from srlab.registry import METHODS, MODELS

    paths = sorted(CONFIGS.rglob("*.yaml"))
    counts = {b: len([p for p in paths if p.parent.name == b]) for b in ("fsrcnn", "carn", "rcan")}
    assert counts == {"fsrcnn": 14, "carn": 14, "rcan": 7}  # -O, 3 branches, stages 2 and 3, test (CPU and full)
    widths = {"classsr": [36, 52, 64], "fsrcnn": [16, 36, 56], "carn": [36, 52, 64], "rcan": [36, 50, 64]}  # the paper's
    for path in paths:
        cfg = load_config(path, [], METHODS)
        folder = path.parent.name
        if cfg.model["type"] == "classsr":
            assert cfg.model["widths"] == widths[folder] and cfg.model.get("backbone", "msrresnet") == \
                {"classsr": "msrresnet"}.get(folder, folder)
        if folder != "rcan":  # RCAN's full-size branches take seconds to build
            model = build(cfg.model, MODELS, "model")
            if folder == "classsr" and "_cpu" not in path.name:
                nets = model.branches if hasattr(model, "branches") else [model]
                assert all(len(b.body) == 16 for b in nets)  # the paper's 16 residual blocks
        if path.name.startswith("stage") and (folder != "classsr" or path.name.startswith("stage2") and "_cpu" not in path.name):
            assert cfg.train.batch_size == (60 if folder == "rcan" else 96)  # the official stage-2 batch


# measured on bird: MSRResNet (route bias -5, linear blend) 32.61 dB against 32.66, 32% of "-O" on the same sub-images;
# FSRCNN 30.99 dB (bicubic 30.18), 114%: there the Class-Module costs 15% of FSRCNN-O per sub-image;
# CARN-M (route bias +0.1: every sub-image to the widest branch) 31.92 dB against 32.15, 101%
@pytest.mark.parametrize("config, weights, baseline, name, gain, cost_range", [
    ("test_x4_cpu.yaml", "classsr_x4_cpu.pt", "msrresnet_o_x4_cpu.pt", "MSRResNet-O", 1.5, (0.25, 0.5)),
    ("fsrcnn/test_x4_cpu.yaml", "classsr_fsrcnn_x4_cpu.pt", "fsrcnn_o_x4_cpu.pt", "FSRCNN-O", 0.5, (0.9, 1.2)),
    ("carn/test_x4_cpu.yaml", "classsr_carn_x4_cpu.pt", "carn_o_x4_cpu.pt", "CARN-O", 1.5, (0.9, 1.2)),
])
def test_committed_cpu_weights_route_a_set5_image(tmp_path, shared_data, config, weights, baseline, name, gain,
                                                  cost_range):
    """The shipped CPU weights through the real CLI on Set5's 'bird' (seconds), at the configs' route bias."""
    import shutil

    shutil.copy(shared_data / "benchmarks" / "Set5" / "HR" / "bird.png", tmp_path / "bird.png")
    folder = REPO / "weights" / "classsr"
    result = run_script("test.py", "--config", CONFIGS / config, "--checkpoint", folder / weights,
                        "--opt", f"options.baseline={folder / baseline}", "--opt", "options.route_biases=[]",
                        "--opt", "options.edge_thresholds=[]", "--dataset", f"bird={tmp_path}", "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    records = {r["method"]: r for r in json.loads((tmp_path / "out" / "results.json").read_text())["records"]}
    classsr, o = records["ClassSR"], records[name]
    assert classsr["psnr_y"] >= classsr["bicubic_psnr_y"] + gain
    assert classsr["psnr_y"] >= o["psnr_y"] - 0.25
    cost = {r["method"]: r for r in json.loads((tmp_path / "out" / "cost.json").read_text())[0]["rows"]}
    assert cost_range[0] < cost["ClassSR"]["flops_vs_same_sub_images"] < cost_range[1]


@pytest.mark.parametrize("config, weights", [("test_x4_cpu.yaml", "classsr_x4_cpu.pt"),
                                             ("fsrcnn/test_x4_cpu.yaml", "classsr_fsrcnn_x4_cpu.pt"),
                                             ("carn/test_x4_cpu.yaml", "classsr_carn_x4_cpu.pt")])
def test_shipped_weights_recommend_the_test_configs_routing_and_upscale_takes_it(config, weights):
    """`srlab upscale` routes the shipped weights as `test.py` with their test config does, although
    the config stored in a file is the training one (MSRResNet's: 16-pixel sub-images, no knob)."""
    from srlab.api import load_upscaler
    from srlab.config import load_config

    test_model = load_config(CONFIGS / config).model
    net = load_upscaler(REPO / "weights" / "classsr" / weights, device="cpu").model
    assert (net.tile, net.step, net.route_bias, net.blend) == (test_model["tile"], test_model["step"],
                                                              test_model.get("route_bias", 0.0),
                                                              test_model.get("blend", "mean"))


def test_prepare_test8k_makes_classsrs_large_sets_from_div8k(tmp_path, capsys):
    from srlab.classsr.test8k import main
    from srlab.data import load_image, to_tensor, to_uint8

    rng = np.random.default_rng(0)
    div8k = tmp_path / "DIV8K"
    for i in range(1201, 1501):
        write_png(div8k / f"{i:04d}.png", rng.integers(0, 256, (10, 13, 3), dtype=np.uint8))
    out = tmp_path / "benchmarks"
    main(["--div8k", str(div8k), "--out", str(out), "--sets", "Test2K", "Test8K"])
    test2k, test8k = sorted((out / "Test2K" / "HR").iterdir()), sorted((out / "Test8K" / "HR").iterdir())
    assert [p.name for p in test2k] == [f"{i}.png" for i in range(1201, 1301)] and len(test8k) == 100
    source = load_image(div8k / "1201.png")
    expected = to_uint8(imresize(to_tensor(source[:8, :12]), scale=1 / 4))  # cropped to a multiple of 4, MATLAB bicubic
    assert np.array_equal(load_image(test2k[0]), expected) and expected.shape == (2, 3, 3)
    assert np.array_equal(load_image(test8k[0]), load_image(div8k / "1401.png"))  # Test8K: as it is
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["--div8k", str(div8k), "--out", str(out), "--sets", "Test2K"])
    assert "Test2K/HR exists; pass --overwrite" in capsys.readouterr().err
    (div8k / "1350.png").unlink()
    with pytest.raises(SystemExit):
        main(["--div8k", str(div8k), "--out", str(out), "--sets", "Test4K"])
    assert "Test4K needs DIV8K images 1301-1400; missing 1, e.g. 1350.png" in capsys.readouterr().err
    assert not (out / "Test4K").exists()  # checked before anything is written


def test_a_bad_recommendation_in_a_checkpoint_names_the_file(tmp_path):
    from srlab.api import load_upscaler
    from srlab.checkpoint import load_checkpoint, save_checkpoint
    from srlab.errors import UserError

    state = load_checkpoint(REPO / "weights" / "classsr" / "classsr_x4_cpu.pt")
    state["network"]["recommended"]["blend"] = "feather"  # a checkpoint from before cards: its "network" entry
    save_checkpoint(state, tmp_path / "bad.pt")
    with pytest.raises(UserError, match=r"bad.pt: card field recommended.blend: 'feather' is not allowed"):
        load_upscaler(tmp_path / "bad.pt", device="cpu")
