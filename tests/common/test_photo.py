"""The photo suite: LR images made as Pillow, MATLAB and JPEG make them, each tool as a kernel, and
the suite's names in configs and results."""
import numpy as np
import pytest
import torch
from conftest import REPO
from PIL import Image

from srlab.config import load_config
from srlab.data import BenchmarkImages, list_images, modcrop, to_tensor
from srlab.degradation import degrade, expand_suites, named_degradation
from srlab.degradation.named import PHOTO_SUITE
from srlab.degradation.photo import TOOLS, jpeg_round_trip, shrink, tool_kernel
from srlab.errors import UserError
from srlab.evaluate import evaluate
from srlab.imresize import imresize
from srlab.method import Output, Row


@pytest.fixture
def hr():
    from skimage import data

    return modcrop(data.astronaut()[100:196, 60:204], 12)  # 96 x 144: a multiple of 2, 3 and 4


def test_pillow_tools_are_pillow_itself(hr):
    for tool, resample in [("pil_bicubic", Image.BICUBIC), ("box", Image.BOX), ("pil_lanczos", Image.LANCZOS)]:
        expected = np.asarray(Image.fromarray(hr).resize((hr.shape[1] // 3, hr.shape[0] // 3), resample))
        assert np.array_equal(shrink(hr, 3, tool), expected)


def test_matlab_tool_is_the_benchmarks_imresize(hr):
    expected = (imresize(to_tensor(hr).double(), scale=1 / 2)[0].permute(1, 2, 0).clamp(0, 1) * 255).round()
    assert np.array_equal(shrink(hr, 2, "matlab"), expected.byte().numpy())


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("tool", TOOLS)
def test_each_tool_is_its_kernel_then_every_sth_pixel(tool, scale, hr):
    """Away from the border the tool and its kernel agree to Pillow's 8-bit rounding (MATLAB's and
    the blur's exactly), so MZSR can adapt to a tool and meta-train on tools."""
    kernel = tool_kernel(tool, scale)
    assert kernel.shape[0] % 2 == 1 and abs(kernel.sum().item() - 1) < 1e-6
    by_kernel = degrade(to_tensor(hr).double(), kernel.double(), scale, "direct")
    by_kernel = (by_kernel[0].permute(1, 2, 0).clamp(0, 1) * 255).round().numpy()
    difference = np.abs(shrink(hr, scale, tool).astype(float) - by_kernel)[4:-4, 4:-4]
    assert difference.max() <= (1 if tool in ("matlab", "gauss") else 4)  # MATLAB, blur: sums in another order
    assert difference.mean() < 0.6


def test_jpeg_changes_the_image_and_keeps_its_size(hr):
    lr = shrink(hr, 2, "pil_bicubic")
    compressed = shrink(hr, 2, "pil_bicubic", jpeg=75)
    assert compressed.shape == lr.shape and compressed.dtype == np.uint8
    assert 0.5 < np.abs(compressed.astype(float) - lr).mean() < 8
    assert np.array_equal(compressed, jpeg_round_trip(lr, 75))
    with pytest.raises(ValueError, match="multiple of the scale 2"):
        shrink(hr[:95], 2, "box")


def test_the_photo_suite_is_every_tool_alone_and_as_jpeg_and_expands_in_configs():
    assert len(PHOTO_SUITE) == 3 * len(TOOLS) and "photo_box_jpeg75" in PHOTO_SUITE
    assert expand_suites(["bicubic", "photo", "photo_box"]) == ["bicubic", *PHOTO_SUITE]  # each once, in order
    cfg = load_config(REPO / "configs" / "bicubic.yaml", ["test.degradations=[photo, blind_mzsr]"])
    assert cfg.test.degradations == [*PHOTO_SUITE, "blind_mzsr"]
    for bad in ("photo_paint", "photo_box_jpeg0", "photo_box_jpegX"):
        with pytest.raises(UserError, match="photo_<tool>"):
            named_degradation(bad)


def test_a_photo_degradation_is_hidden_from_methods_and_revealed_to_the_oracle(hr):
    hidden = named_degradation("photo_pil_bicubic_jpeg90")
    assert hidden.blind and hidden.kernel is None
    with pytest.raises(ValueError, match="hidden from the method"):
        hidden.apply(to_tensor(hr), 2)
    true = hidden.for_image("set/img", 2)
    assert not true.blind and torch.equal(true.kernel, tool_kernel("pil_bicubic", 2)) and true.mode == "direct"
    lr = (true.apply(to_tensor(hr), 2)[0].permute(1, 2, 0) * 255).round().byte().numpy()
    assert np.array_equal(lr, shrink(hr, 2, "pil_bicubic", jpeg=90))  # the LR is the tool's, JPEG included


def test_evaluation_names_each_member_of_the_suite(tmp_path, hr):
    Image.fromarray(hr).save(tmp_path / "a.png")
    data = BenchmarkImages("tiny", list_images(tmp_path), crop=48)
    seen = []

    def bicubic(lr, scale, degradation):
        seen.append((tuple(lr.shape), degradation.blind))
        return Output(imresize(lr, scale=scale))

    from srlab.config import EvalConfig

    records = evaluate(Row("bicubic", bicubic), [data], EvalConfig(scales=[2], degradations=["photo"]),
                       torch.device("cpu"))
    assert [r.degradation for r in records] == list(PHOTO_SUITE)
    assert all(shape == (1, 3, 24, 24) and blind for shape, blind in seen)  # the 48x48 centre, hidden


def test_jpeg_blocks_are_seen_and_a_matching_quality_is_found(hr):
    from skimage import data

    from srlab.degradation.photo import JPEG_BLOCKINESS, blockiness, jpeg_quality_like

    lr = shrink(data.astronaut()[:256, :256], 2, "pil_bicubic")
    son = shrink(lr, 2, "pil_bicubic")
    assert blockiness(lr) < JPEG_BLOCKINESS and jpeg_quality_like(lr, son) is None
    heavy = jpeg_round_trip(lr, 50)
    assert blockiness(heavy) > blockiness(jpeg_round_trip(lr, 90)) > 1.0
    assert jpeg_quality_like(heavy, son) in (35, 50, 65)
