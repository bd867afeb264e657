import numpy as np
import pytest
import torch
from conftest import write_png
from PIL import Image

from srlab.config import EvalConfig
from srlab.data import BenchmarkImages, PatchSampler, embedded_files, list_images, load_image, modcrop, resolve_files
from srlab.errors import DataError
from srlab.evaluate import evaluate
from srlab.imresize import imresize
from srlab.method import Output, Row


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "I;16", "CMYK"])
def test_any_mode_loads_as_rgb_uint8(tmp_path, mode):
    rgb = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    img = Image.fromarray(rgb)
    if mode == "I;16":
        img = Image.fromarray((rgb[..., 0].astype(np.uint16) * 257))
    else:
        img = img.convert(mode)
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    img.save(path)
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == (10, 12, 3)
    if mode == "I;16":  # 16-bit is rescaled, not clipped
        np.testing.assert_array_equal(out[..., 1], rgb[..., 0])


def test_corrupt_truncated_and_non_images_name_the_file(tmp_path):
    (tmp_path / "text.png").write_text("hello")
    good = write_png(tmp_path / "good.png", np.zeros((40, 40, 3), np.uint8))
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(good.read_bytes()[:60])
    for path in (tmp_path / "text.png", truncated, tmp_path / "missing.png"):
        with pytest.raises(DataError, match=str(path.name)) as info:
            load_image(path)
        assert "\n" not in str(info.value)


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(DataError, match="nowhere: image folder not found"):
        list_images(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        list_images(tmp_path / "empty")


def test_training_skips_bad_and_small_images_with_warnings(tmp_path):
    rng = np.random.default_rng(0)
    write_png(tmp_path / "a.png", rng.integers(0, 256, (50, 60, 3), dtype=np.uint8))
    write_png(tmp_path / "small.png", rng.integers(0, 256, (20, 60, 3), dtype=np.uint8))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    with pytest.warns(UserWarning) as record:
        sampler = PatchSampler(list_images(tmp_path), patch_size=32, batch_size=4)
    messages = " ".join(str(w.message) for w in record)
    assert "broken.png" in messages and "small.png" in messages and "smaller than the patch size 32" in messages
    assert len(sampler.images) == 1
    with pytest.raises(DataError, match="no usable training images"):
        with pytest.warns(UserWarning):
            PatchSampler([tmp_path / "small.png"], patch_size=32, batch_size=4)


def test_patch_batches_are_a_function_of_seed_and_iteration_shared_across_processes(tmp_path):
    files = embedded_files("skimage_train")[:3]
    a = PatchSampler(files, patch_size=24, batch_size=6, seed=1)
    b = PatchSampler(files, patch_size=24, batch_size=6, seed=1)
    assert a[7].shape == (6, 3, 24, 24) and a[7].dtype == torch.uint8
    assert torch.equal(a[7], b[7])
    assert not torch.equal(a[7], a[8])
    assert not torch.equal(a[7], PatchSampler(files, patch_size=24, batch_size=6, seed=2)[7])
    # Three processes cut the one batch of the iteration into consecutive shares.
    shares = [PatchSampler(files, patch_size=24, batch_size=6, seed=1, rank=r, world_size=3)[7] for r in range(3)]
    assert [s.shape[0] for s in shares] == [2, 2, 2]
    assert torch.equal(torch.cat(shares), a[7])
    with pytest.raises(ValueError, match="does not split into 4"):
        PatchSampler(files, patch_size=24, batch_size=6, world_size=4)


def test_embedded_dataset_is_split_without_overlap():
    train, test = embedded_files("skimage_train"), embedded_files("skimage_test")
    assert len(train) >= 8 and len(test) >= 3 and not set(train) & set(test)
    assert all(p.exists() for p in train + test)
    assert resolve_files("skimage_test", None, "benchmarks") == test


def test_modcrop():
    assert modcrop(np.zeros((321, 481, 3)), 4).shape == (320, 480, 3)


def test_paired_lr_folder_is_used(tmp_path):
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
    write_png(tmp_path / "HR" / "img.png", hr)
    # An "official" LR that differs from our bicubic: evaluation must use the file.
    lr = np.full((16, 20, 3), 128, np.uint8)
    write_png(tmp_path / "LR_x2" / "imgx2.png", lr)
    data = BenchmarkImages("pair", list_images(tmp_path / "HR"), str(tmp_path / "LR_x{scale}"))
    seen = []

    def infer(lr_t, scale, degradation):
        seen.append(lr_t)
        return Output(imresize(lr_t, scale))

    records = evaluate(Row("bicubic", infer), [data], EvalConfig(scales=[2]), torch.device("cpu"))
    assert torch.equal(seen[0], torch.full((1, 3, 16, 20), 128 / 255))
    assert records[0].n_images == 1
    with pytest.raises(DataError, match="no LR image for img.png"):
        evaluate(Row("bicubic", infer), [data], EvalConfig(scales=[3]), torch.device("cpu"))


def test_evaluate_records_and_bicubic_gain(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(2):
        write_png(tmp_path / f"{i}.png", rng.integers(0, 256, (30, 33, 3), dtype=np.uint8))
    data = BenchmarkImages("tiny", list_images(tmp_path))
    cfg = EvalConfig(scales=[2, 3], degradations=["bicubic", "gd_2.0"], rgb_psnr=True)
    records = evaluate(Row("bicubic", lambda lr, s, d: Output(imresize(lr, s))), [data], cfg, torch.device("cpu"))
    assert [(r.scale, r.degradation) for r in records] == [(2, "bicubic"), (2, "gd_2.0"), (3, "bicubic"), (3, "gd_2.0")]
    for r in records:
        assert r.n_images == 2 and r.psnr_rgb is not None
        assert r.psnr_y == pytest.approx(r.bicubic_psnr_y)  # bicubic vs itself


def test_pack_data_writes_lossless_webp_that_reads_back_pixel_identical(tmp_path, monkeypatch):
    from pathlib import Path

    from conftest import run_inline

    rng = np.random.default_rng(0)
    root, out = tmp_path / "root", tmp_path / "pack"
    photos = {"train/T91/a.png": rng.integers(0, 256, (20, 30, 3), dtype=np.uint8),
              "train/T91/b.png": rng.integers(0, 256, (17, 9, 3), dtype=np.uint8),
              "benchmarks/Set5/HR/c.png": rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)}
    for name, pixels in photos.items():
        write_png(root / name, pixels)
    monkeypatch.setenv("SR_DATA_ROOT", str(root))
    result = run_inline("pack_data.py", "--out", out, "--sets", "train/T91", "benchmarks/Set5")
    assert result.returncode == 0, result.stderr
    assert "wrote 3 images" in result.stdout and "pixel-identical" in result.stdout
    for name, pixels in photos.items():
        assert np.array_equal(load_image(out / Path(name).with_suffix(".webp")), pixels)
    monkeypatch.setenv("SR_DATA_ROOT", str(out))  # the pack is a data root like any other
    assert [p.name for p in resolve_files("Set5", None, "benchmarks")] == ["c.webp"]
    into_itself = run_inline("pack_data.py", "--out", out, "--sets", "train/T91")
    assert into_itself.returncode == 2 and "the data root it packs from" in into_itself.stderr
    monkeypatch.setenv("SR_DATA_ROOT", str(root))
    again = run_inline("pack_data.py", "--out", out, "--sets", "train/T91")
    assert again.returncode == 2 and "exists; pass --overwrite" in again.stderr
    bad = run_inline("pack_data.py", "--out", out, "--sets", "T91")
    assert bad.returncode == 2 and "expected train/<name> or benchmarks/<name>" in bad.stderr
