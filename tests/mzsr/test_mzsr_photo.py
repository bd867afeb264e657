"""MZSR on photographs: meta-training tasks that include the tools people shrink photos with, the
photo path's self-validation, and the stage-1 weights a meta checkpoint carries for it."""
import numpy as np
import pytest
import torch
from conftest import REPO

from srlab.checkpoint import load_checkpoint, save_checkpoint
from srlab.degradation import Degradation, named_degradation, random_kernels
from srlab.degradation.photo import tool_kernel
from srlab.errors import UserError
from srlab.imresize import imresize
from srlab.loading import load
from srlab.mzsr.kernels import KernelEstimate
from srlab.mzsr.self_validation import (JPEG_MAX_BLEND, TOOL_MAX_BLEND, Candidate, Diverged, blend, candidates,
                                         choose, max_blend, network_weight)
from srlab.mzsr.tasks import PHOTO_TOOLS, canvas_size, task_kernels

META = REPO / "weights" / "mzsr" / "meta_x2_cpu.pt"


def test_without_photo_tasks_the_random_stream_is_mzsrs():
    torch.manual_seed(5)
    expected = random_kernels(6, torch.full((6,), 2), 15)
    torch.manual_seed(5)
    kernels, modes = task_kernels(torch.full((6,), 2), 15, "bicubic", 0.0)
    assert torch.equal(kernels, expected) and modes == ["bicubic"] * 6


def test_photo_tasks_are_tools_and_sharp_gaussians_with_direct_subsampling():
    torch.manual_seed(0)
    kernels, modes = task_kernels(torch.full((400,), 2), 15, "bicubic", 0.5)
    assert kernels.shape == (400, canvas_size(15, [2], 0.5), canvas_size(15, [2], 0.5))
    assert torch.allclose(kernels.sum(dim=(1, 2)), torch.ones(400), atol=1e-5)
    photo = [i for i, m in enumerate(modes) if m == "direct"]
    assert 150 < len(photo) < 250  # about half
    tools = {t: tool_kernel(t, 2) for t in PHOTO_TOOLS}
    pad = lambda k: torch.nn.functional.pad(k, [(kernels.shape[-1] - k.shape[-1]) // 2] * 4)  # noqa: E731
    as_tool = [i for i in photo if any(torch.allclose(kernels[i], pad(k)) for k in tools.values())]
    assert 0.3 < len(as_tool) / len(photo) < 0.7  # half of them tools, the rest sharp Gaussians
    gaussian = [i for i in photo if i not in as_tool]
    for i in gaussian:  # variances at most 1 HR pixel^2: sharper than any of MZSR's (>= 1)
        k = kernels[i].double()
        x = torch.arange(k.shape[-1], dtype=torch.float64) - k.shape[-1] // 2
        assert (k.sum(0) * x**2).sum() <= 1.0 + 1e-6 and (k.sum(1) * x**2).sum() <= 1.0 + 1e-6


def test_the_meta_checkpoint_carries_its_stage1_weights_and_the_loader_checks_them(tmp_path):
    for shipped in (META, META.with_name("meta_x4_cpu.pt"), META.with_name("meta_bicubic_x2_cpu.pt")):
        assert load(shipped)[0].stage1 is not None, shipped  # the photo path's stage-1 candidate
    state = load_checkpoint(META)
    stage1 = load_checkpoint(REPO / "weights" / "mzsr" / "pretrain_x2_cpu.pt")["model"]
    if "other_weights" not in state:
        state["other_weights"] = {"stage1": stage1}
    save_checkpoint(state, tmp_path / "m.pt")
    method, network, card = load(tmp_path / "m.pt")
    assert all(torch.equal(method.stage1[k], v) for k, v in state["other_weights"]["stage1"].items())
    state["other_weights"] = {"stage1": {k: v[..., :1] for k, v in stage1.items()}}
    save_checkpoint(state, tmp_path / "bad.pt")
    with pytest.raises(UserError, match="other_weights.stage1 do not fit the network"):
        load(tmp_path / "bad.pt")
    state["other_weights"] = {"stage1": {k: v * float("nan") for k, v in stage1.items()}}
    save_checkpoint(state, tmp_path / "nan.pt")
    with pytest.raises(UserError, match="NaN or infinity"):
        load(tmp_path / "nan.pt")


class Scaled(torch.nn.Module):
    """A stand-in network: the upscaled input times ``gain`` (its one parameter)."""

    def __init__(self):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        return x * self.gain


def test_self_validation_picks_what_restores_the_image_from_its_son_best():
    torch.manual_seed(0)
    lr = imresize(torch.rand(1, 3, 6, 6), scale=4).clamp(0, 1)  # smooth: no part left to interpolation
    model = Scaled()
    right, darker = {"gain": torch.ones(())}, {"gain": torch.full((), 0.5)}
    options = [Candidate("darker", darker), Candidate("right", right), Candidate("bicubic", None)]
    choice = choose(model, lr, 2, options, [named_degradation("bicubic")])
    assert choice.chosen.name in ("right", "bicubic") and choice.son_gain["darker"] < choice.son_gain["right"]
    assert choice.son_gain["bicubic"] == 0 and choice.son_gain["darker"] < -3  # half as bright: far below
    assert "gain over bicubic on the sons made by bicubic" in choice.describe()
    several = choose(model, lr, 2, options, [named_degradation("bicubic"), named_degradation("photo_box").for_image(
        "son", 2)])
    assert several.sons == ("bicubic", "photo_box") and several.son_gain["darker"] <= choice.son_gain["darker"] + 1e-9


def test_blends_with_interpolation_are_candidates_too_and_a_jpeg_runs_at_most_half_a_network():
    from srlab.imresize import imresize

    torch.manual_seed(0)
    lr = imresize(torch.rand(1, 3, 6, 6), scale=4).clamp(0, 1)  # smooth: nowhere aliased
    assert torch.all(network_weight(lr, 2) == 1)
    model = Scaled()
    brighter = Candidate("brighter", {"gain": torch.full((), 1.3)})
    options = [brighter, Candidate("bicubic", None)]
    choice = choose(model, lr, 2, options, [named_degradation("bicubic")])
    assert set(choice.son_gain) == {"bicubic", "brighter", *(f"{a:.0%} of brighter, {1 - a:.0%} interpolation"
                                                               for a in (0.25, 0.5, 0.75))}
    # 30 % too bright: a quarter of it is less wrong than all of it
    assert choice.son_gain["25% of brighter, 75% interpolation"] > choice.son_gain["brighter"]
    capped = choose(model, lr, 2, options, [named_degradation("bicubic")], max_blend=0.5)
    assert "brighter" not in capped.son_gain and "75% of brighter, 25% interpolation" not in capped.son_gain
    assert capped.chosen.params is None or capped.chosen.blend <= 0.5
    half = brighter.blended(0.5)
    expected = 0.5 * imresize(lr, scale=2) * 1.3 + 0.5 * imresize(lr, scale=2)
    assert torch.allclose(half.run(model, lr, 2)(lr), expected, atol=1e-6)


def test_no_network_runs_where_the_photo_aliases_and_tiles_agree_with_the_whole_image():
    stripes = torch.tensor([0.2, 0.8]).repeat(8).view(1, 1, 1, 16).expand(1, 3, 16, 16)
    edge = torch.cat([torch.full((1, 3, 16, 8), 0.2), torch.full((1, 3, 16, 8), 0.8)], -1)
    ramp = torch.linspace(0, 1, 16).view(1, 1, 1, 16).expand(1, 3, 16, 16)
    assert network_weight(stripes, 2).shape == (1, 1, 32, 32) and torch.all(network_weight(stripes, 2) == 0)
    assert torch.all(network_weight(edge, 2) == 1) and torch.all(network_weight(ramp, 3) == 1)
    torch.manual_seed(0)
    grain_then_smooth = torch.cat([torch.rand(1, 3, 24, 12), imresize(torch.rand(1, 3, 6, 3), scale=4)], -1)
    whole = network_weight(grain_then_smooth.clamp(0, 1), 1)
    assert whole[..., :10].mean() < 0.5 and torch.all(whole[..., 17:] == 1)
    # a tile with 4 pixels of context weighs its core as the whole image does (srlab.tiling)
    tile = network_weight(grain_then_smooth.clamp(0, 1)[..., 5:21, 5:21], 1)
    assert torch.allclose(tile[..., 4:-4, 4:-4], whole[..., 9:17, 9:17])
    # the share fades to interpolation over the stripes, and stays as chosen on the flat side
    half = torch.cat([stripes[..., :8, :8], torch.full((1, 3, 8, 8), 0.5)], -1)
    shares = blend(torch.ones(1, 3, 16, 32), torch.zeros(1, 3, 16, 32), 0.75, network_weight(half, 2))
    assert torch.all(shares[..., :12] == 0) and torch.all(shares[..., 24:] == 0.75)
    # so a candidate on stripes, the whole network or a blend, gives interpolation (and fp16 input the same weight)
    for candidate in (Candidate("brighter", {"gain": torch.full((), 1.3)}), Candidate("b", {"gain": torch.ones(())},
                                                                                      blend=0.5)):
        assert torch.allclose(candidate.run(Scaled(), stripes, 2)(stripes), imresize(stripes, scale=2), atol=1e-6)
    assert torch.equal(network_weight(grain_then_smooth.clamp(0, 1).half(), 1), whole)


def test_barbara_shrunk_by_area_averaging_stays_with_interpolation_thanks_to_the_alias_share(shared_data,
                                                                                           monkeypatch):
    """Set14's barbara halved by Pillow's box filter, as a user would: her striped cloth aliases,
    and three quarters of stage 1 sharpen the aliasing (0.6 dB below interpolation on the crop);
    leaving the aliased parts to interpolation keeps the photo path level with it."""
    from PIL import Image

    import srlab.mzsr.self_validation as self_validation
    from srlab.api import load_upscaler
    from srlab.data import load_image, to_tensor
    from srlab.metrics import psnr_of_y, quantize, y_channel

    hr = load_image(shared_data / "benchmarks" / "Set14" / "HR" / "barbara.png")[80:280, 200:460]  # her cloth
    small = np.asarray(Image.fromarray(hr).resize((hr.shape[1] // 2, hr.shape[0] // 2), Image.BOX))
    truth = y_channel(to_tensor(hr))
    interpolation = psnr_of_y(y_channel(quantize(imresize(to_tensor(small), scale=2))), truth, 2).item()
    up = load_upscaler(META, "cpu")
    result = up.run(small, 2)
    assert result.said.startswith("ran 75% of stage 1")
    guarded = psnr_of_y(y_channel(to_tensor(result.image)), truth, 2).item()
    monkeypatch.setattr(self_validation, "network_weight", lambda lr, scale: torch.ones(()))
    unguarded = psnr_of_y(y_channel(to_tensor(up.run(small, 2).image)), truth, 2).item()
    assert guarded > interpolation - 0.1 and unguarded < guarded - 0.3, (guarded, unguarded, interpolation)


def test_a_photo_a_tool_shrank_runs_at_most_three_quarters_of_a_network_and_a_jpeg_half(monkeypatch):
    import srlab.mzsr.methods as methods
    from srlab.api import load_upscaler

    blur = KernelEstimate(tool_kernel("gauss", 2), "photo", 0.0)
    a_tool = KernelEstimate(tool_kernel("matlab", 2), "photo", 0.0, tool="bicubic")
    assert (max_blend(blur, False), max_blend(a_tool, False), max_blend(a_tool, True), max_blend(blur, True)) == (
        1.0, 0.75, 0.5, 0.5) == (1.0, TOOL_MAX_BLEND, JPEG_MAX_BLEND, JPEG_MAX_BLEND)
    # the photo path hands that cap to the choice
    up = load_upscaler(META, "cpu")
    seen = []
    choose_for_real = methods.choose
    monkeypatch.setattr(methods, "choose", lambda *a: seen.append(a[6]) or choose_for_real(*a))
    monkeypatch.setattr(up.method, "estimate_kernel", lambda *a: a_tool)
    image = np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)
    for jpeg in (False, True):
        said = up.run(image, 2, jpeg=jpeg).said  # names what ran and the best son gains: never the whole network
        assert "ran stage 1 (" not in said and "stage 1 +" not in said and ("75% of" not in said) == jpeg, said
    assert seen == [TOOL_MAX_BLEND, JPEG_MAX_BLEND]


def test_the_photo_path_knows_a_jpeg_by_its_file(tmp_path, monkeypatch):
    from PIL import Image

    from srlab.api import load_upscaler
    from srlab.data import read_image

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.jpg", quality=90)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    turned = Image.fromarray(pixels)
    exif = turned.getexif()
    exif[0x0112] = 6  # a phone's "rotate me": the turned copy must still know it was a JPEG
    turned.save(tmp_path / "turned.jpg", exif=exif)
    assert [read_image(tmp_path / n)[1].jpeg for n in ("a.jpg", "a.png", "turned.jpg")] == [True, False, True]
    up = load_upscaler(META, "cpu")
    seen = []
    monkeypatch.setattr(up.method, "photo_infer", lambda *a: seen.append(a[-2]) or (_ for _ in ()).throw(
        UserError("stop here")))
    for source in (tmp_path / "a.jpg", tmp_path / "a.png", Image.open(tmp_path / "a.jpg"), pixels):
        with pytest.raises(UserError, match="stop here"):
            up.run(source, 2)
    assert seen == [True, False, True, False]
    with pytest.raises(UserError, match="stop here"):
        up.upscale_file(tmp_path / "turned.jpg", tmp_path / "out.png", 2)
    assert seen[-1] is True


def test_a_candidate_whose_adaptation_diverges_is_never_chosen():
    lr = torch.rand(1, 3, 24, 24)
    model = Scaled()
    diverging = Candidate("diverges", {"gain": torch.ones(())}, named_degradation("bicubic"), (1e9,))
    with pytest.raises(Diverged):
        diverging.run(model, lr, 2)
    choice = choose(model, lr, 2, [diverging, Candidate("bicubic", None)], [named_degradation("bicubic")])
    assert choice.chosen.name == "bicubic" and np.isnan(choice.son_gain["diverges"])


def test_the_candidates_are_stage1_the_estimated_blur_bicubic_kernel_and_interpolation():
    estimate = KernelEstimate(tool_kernel("gauss", 2), "photo", 0.0)
    names = [c.name for c in candidates({}, {}, estimate, [5e-3] * 10)]
    assert names == ["stage 1", f"MZSR(10) + Gaussian blur of variance {estimate.variance:.2f} (photo)",
                     "MZSR(10) + bicubic", "bicubic"]
    # a tool shrank it: stage 1 is the network for that; MZSR adapts to bicubic only without stage 1
    a_tool = KernelEstimate(tool_kernel("matlab", 2), "photo", 0.0, tool="bicubic")
    assert [c.name for c in candidates({}, {}, a_tool, [5e-3])] == ["stage 1", "bicubic"]
    assert [c.name for c in candidates({}, None, a_tool, [5e-3])] == ["MZSR(1) + bicubic", "bicubic"]
    unreliable = KernelEstimate(tool_kernel("gauss", 2), "edges", 0.0, unreliable="too few edges")
    assert [c.name for c in candidates({}, None, unreliable, [5e-3])] == ["MZSR(1) + bicubic", "bicubic"]
    assert isinstance(candidates({}, None, estimate, [5e-3])[0].degradation, Degradation)


@pytest.mark.parametrize("case", ["flat grey", "noise", "16x16", "3x3"])
def test_hard_photos_get_a_correct_answer_and_a_line_saying_what_ran(case):
    """Never a picture darker, brighter or haloed against bicubic: a flat image stays flat, noise
    keeps its brightness, a tiny image gets bicubic interpolation with the reason."""
    from srlab.api import load_upscaler
    from srlab.data import to_tensor, to_uint8
    from srlab.imresize import imresize

    rng = np.random.default_rng(0)
    image = {"flat grey": np.full((40, 48, 3), 128, np.uint8),
             "noise": rng.integers(0, 256, (40, 48, 3), dtype=np.uint8),
             "16x16": rng.integers(60, 200, (16, 16, 3), dtype=np.uint8),
             "3x3": rng.integers(60, 200, (3, 3, 3), dtype=np.uint8)}[case]
    up = load_upscaler(META, "cpu")
    result = up.run(image, 2)
    bicubic = to_uint8(imresize(to_tensor(image), scale=2))
    assert result.image.shape == bicubic.shape and result.said.startswith("ran ")
    assert abs(result.image.astype(float).mean() - bicubic.astype(float).mean()) < 1.5
    if case == "flat grey":
        assert np.abs(result.image.astype(int) - 128).max() <= 1
    if case == "3x3":
        assert result.said == "ran bicubic: the image (3x3) is too small to check a network against itself"
        assert np.array_equal(result.image, bicubic)


def test_the_photo_estimator_says_gaussian_only_above_what_any_tool_makes(monkeypatch):
    import srlab.mzsr.estimate as estimate
    from srlab.mzsr.self_validation import TOOL_SONS, sons

    lr = torch.rand(1, 3, 40, 40)
    for blur, expected in [(estimate.BLUR_EVIDENCE[2] - 0.1, "bicubic"), (estimate.BLUR_EVIDENCE[2] + 0.1, "")]:
        monkeypatch.setattr(estimate.EdgeEstimator, "__call__", lambda self, lr, scale, blur=blur: KernelEstimate(
            tool_kernel("gauss", 2), "edges", 0.0, blur=blur))
        found = estimate.PhotoEstimator()(lr, 2)
        assert found.tool == expected and found.blur == blur and found.estimator == "photo"
        made = sons(found, 2)
        assert [d.name.split("/")[0] for d in made] == ([f"photo_{t}" for t in TOOL_SONS] if expected else
                                                        ["estimated by photo"])
    # without a measured blur, the kernel's own variance counts
    assert KernelEstimate(tool_kernel("gauss", 2), "prior", 0.0).variance == pytest.approx(1.0, abs=0.05)


def test_the_blur_evidence_threshold_bounds_what_tools_make(shared_data):
    """BLUR_EVIDENCE[2] is the most blurred any tool-shrunk image of the first 40 BSD200 images looks;
    the first one's centre is within it (the full recipe: ``pytest -m slow``)."""
    from srlab.data import load_image, modcrop, to_tensor
    from srlab.mzsr.estimate import BLUR_EVIDENCE, fit_blur_evidence

    first = sorted((shared_data / "train" / "BSD200").glob("*.png"))[0]
    fitted = fit_blur_evidence([to_tensor(modcrop(load_image(first)[80:240, 120:360], 2))], 2)
    assert 0.3 * BLUR_EVIDENCE[2] < fitted <= BLUR_EVIDENCE[2]


@pytest.mark.slow
def test_the_blur_evidence_threshold_is_its_recipe(shared_data):
    from srlab.data import load_image, modcrop, to_tensor
    from srlab.mzsr.estimate import BLUR_EVIDENCE, fit_blur_evidence

    files = sorted((shared_data / "train" / "BSD200").glob("*.png"))[:40]
    for scale in (2, 4):
        fitted = fit_blur_evidence([to_tensor(modcrop(load_image(f), scale)) for f in files], scale)
        assert fitted == pytest.approx(BLUR_EVIDENCE[scale], abs=0.01)
