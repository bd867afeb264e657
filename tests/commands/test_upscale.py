"""srlab upscale and the Python API: tiled inference equals untiled, any checkpoint of a supervised
network works from anywhere, inputs are never overwritten."""
import json
import re
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import skimage.data
import torch
from conftest import REPO, run_inline, write_png

from srlab.api import load_upscaler
from srlab.data import load_image
from srlab.errors import UserError
from srlab.tiling import self_ensemble, tiles

ASYM = REPO / "weights" / "asymsr" / "asym_vdsr_x234_cpu.pt"
MSRRESNET = REPO / "weights" / "classsr" / "msrresnet_o_x4_cpu.pt"
CLASSSR = REPO / "weights" / "classsr" / "classsr_x4_cpu.pt"
META = REPO / "weights" / "mzsr" / "meta_x2_cpu.pt"


@pytest.fixture(scope="module")
def photo():
    return load_image(f"{skimage.data.data_dir}/chelsea.png")[:60, :80]


def test_tiles_cover_the_image_once():
    seen = np.zeros((70, 45), int)
    for core_y, core_x, padded_y, padded_x in tiles(70, 45, 32, 8):
        seen[core_y, core_x] += 1
        assert padded_y.start <= core_y.start and padded_y.stop >= core_y.stop
        assert padded_y.start >= 0 and padded_x.stop <= 45
    assert (seen == 1).all()


@pytest.mark.parametrize("checkpoint,scale", [(ASYM, 2), (ASYM, 3), (MSRRESNET, 4)],
                         ids=["asym-x2", "asym-x3", "msrresnet-x4"])
def test_tiled_inference_equals_untiled(photo, checkpoint, scale):
    """The Y-channel network on the bicubic upscale (Asym-VDSR) and the LR-input one (MSRResNet)."""
    whole = load_upscaler(checkpoint, "cpu", tile=10_000)(photo, scale)
    tiled = load_upscaler(checkpoint, "cpu", tile=32, margin=24)(photo, scale)
    assert tiled.shape == (60 * scale, 80 * scale, 3) and tiled.dtype == np.uint8
    # Equal up to float rounding: the convolution kernels PyTorch picks depend on the input's size
    # and the CPU (on an AVX-512 machine one value in 130,000 rounds to the next 8-bit level).
    difference = np.abs(tiled.astype(int) - whole.astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-4


def test_the_upscaler_knows_its_scales_and_takes_any_image_type(photo):
    from PIL import Image

    up = load_upscaler(ASYM, "cpu")
    assert up.scales == [2, 3, 4]
    as_array = up(photo, 2)
    assert np.array_equal(up(Image.fromarray(photo), 2), as_array)
    assert np.array_equal(up(torch.from_numpy(photo).permute(2, 0, 1).float() / 255, 2), as_array)
    with pytest.raises(UserError, match="scale 5: this network was trained for x\\[2, 3, 4\\] only"):
        up(photo, 5)
    assert load_upscaler(MSRRESNET, "cpu").scales == [4]


def test_self_ensemble_averages_the_eight_symmetries():
    calls = []

    def identity_upscale(lr):
        calls.append(tuple(lr.shape))
        return lr.repeat_interleave(2, -1).repeat_interleave(2, -2)

    lr = torch.rand(1, 3, 5, 7)
    out = self_ensemble(identity_upscale)(lr)
    assert len(calls) == 8 and (1, 3, 7, 5) in calls  # transposed too
    assert torch.allclose(out, identity_upscale(lr))  # a symmetric operation is unchanged


def test_cli_upscales_a_folder_and_never_overwrites(tmp_path, photo):
    folder = tmp_path / "photos"
    write_png(folder / "a.png", photo)
    write_png(folder / "b.png", photo[:40, :50])
    result = run_inline("upscale.py", "--checkpoint", ASYM, "--input", folder, "--scale", 2, "--out", tmp_path / "sr",
                        "--tile", 32)
    assert result.returncode == 0, result.stderr
    assert load_image(tmp_path / "sr" / "b.png").shape == (80, 100, 3)
    again = run_inline("upscale.py", "--checkpoint", ASYM, "--input", folder, "--scale", 2, "--out", tmp_path / "sr")
    assert again.returncode == 2 and "exists; pass --overwrite" in again.stderr
    into_inputs = run_inline("upscale.py", "--checkpoint", ASYM, "--input", folder, "--out", folder, "--overwrite")
    assert into_inputs.returncode == 2 and "is an input of this command" in into_inputs.stderr
    assert np.array_equal(load_image(folder / "a.png"), photo)
    kernel = run_inline("upscale.py", "--checkpoint", ASYM, "--input", folder, "--out", tmp_path / "k", "--kernel",
                        "gd_2.0")
    assert kernel.returncode == 2 and "--kernel: " in kernel.stderr and "only MZSR checkpoints" in kernel.stderr
    half = run_inline("upscale.py", "--checkpoint", ASYM, "--input", folder, "--out", tmp_path / "h", "--device",
                      "cpu", "--precision", "fp16")
    assert half.returncode == 2 and "half precision is for CUDA GPUs" in half.stderr
    assert not (tmp_path / "k").exists() or not any((tmp_path / "k").iterdir())


def test_classsr_upscales_by_routing_and_a_branch_as_a_plain_network(tmp_path, photo):
    from srlab.data import to_tensor, to_uint8

    up = load_upscaler(CLASSSR, "cpu")
    assert up.scales == [4] and not up.adapts
    whole = up(photo, 4)  # one tile: ClassSR's own routed inference on the whole image
    assert np.array_equal(whole, to_uint8(up.method.infer(up.model, to_tensor(photo), 4).image))
    # ClassSR cuts its own sub-images; outer tiles move that grid near their borders: close, not equal
    tiled = load_upscaler(CLASSSR, "cpu", tile=32, margin=24)(photo, 4)
    mse = np.mean((tiled.astype(float) - whole.astype(float)) ** 2)
    assert tiled.shape == whole.shape and 10 * np.log10(255**2 / max(mse, 1e-10)) > 35

    state = torch.load(MSRRESNET, weights_only=True)
    state["config"] = {**state["config"], "method": "classsr_branch",
                       "options": {"split": str(tmp_path / "gone.json"), "branch_class": 1}}
    torch.save(state, tmp_path / "branch.pt")
    branch = load_upscaler(tmp_path / "branch.pt", "cpu")  # the split file it trained on is not needed
    assert np.array_equal(branch(photo, 4), load_upscaler(MSRRESNET, "cpu")(photo, 4))


def test_mzsr_upscale_adapts_to_the_kernel_like_zeroshot(tmp_path, photo):
    up = load_upscaler(META, "cpu", tile=32)
    assert up.adapts and up.scales == [2]
    plain, adapted = up(photo, 2, kernel="none"), up(photo, 2, kernel="gd_2.0")
    assert not np.array_equal(plain, adapted)
    assert np.array_equal(plain, up.run(photo, 2, kernel="none").image)
    image = write_png(tmp_path / "lr.png", photo)
    zeroshot = run_inline("zeroshot.py", "--checkpoint", META, "--image", image, "--kernel", "gd_2.0",
                          "--out", tmp_path / "z.png")  # 10 steps at the recommended rate, as upscale
    assert zeroshot.returncode == 0, zeroshot.stderr
    cli = run_inline("upscale.py", "--checkpoint", META, "--input", image, "--kernel", "gd_2.0",
                     "--out", tmp_path / "u.png", "--tile", 32)
    assert cli.returncode == 0, cli.stderr
    assert np.array_equal(load_image(tmp_path / "u.png"), load_image(tmp_path / "z.png"))
    assert np.array_equal(load_image(tmp_path / "u.png"), adapted)
    unknown = run_inline("upscale.py", "--checkpoint", META, "--input", image, "--kernel", "gd_9", "--out",
                         tmp_path / "x.png")
    assert unknown.returncode == 2 and "--kernel: unknown degradation 'gd_9'; allowed:" in unknown.stderr


def test_the_api_runs_from_another_folder(tmp_path, photo):
    write_png(tmp_path / "photo.png", photo)
    code = f"""
from srlab.api import load_upscaler
up = load_upscaler({str(ASYM)!r})
print(up.scales, up("photo.png", scale=2).shape)
up.upscale_file("photo.png", "photo_x2.png")
"""
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[2, 3, 4] (120, 160, 3)"
    assert load_image(tmp_path / "photo_x2.png").shape == (120, 160, 3)


def test_checkpoints_carry_a_card_of_their_network(tmp_path):
    from srlab.config import load_config
    from srlab.method import build_card
    from srlab.network import InputConvention
    from srlab.registry import build_method

    def card(config, *opts):
        method = build_method(load_config(REPO / "configs" / config, list(opts)))
        return build_card(method, method.model_factory())

    vdsr = card("asymsr/vdsr_x234_cpu.yaml")
    assert vdsr.input is InputConvention.Y_OF_BICUBIC_UPSCALE and vdsr.scales == (2, 3, 4)
    assert vdsr.architecture == "vdsr" and vdsr.method == "supervised" and vdsr.recommended == {}
    assert not vdsr.adapts
    msrresnet = card("classsr/msrresnet_o_x4_cpu.yaml")
    assert msrresnet.input is InputConvention.RGB_LR and msrresnet.scales == (4,)
    meta = card("mzsr/meta_x2_cpu.yaml", "options.pretrained=null")
    assert meta.input is InputConvention.RGB_BICUBIC_UPSCALE and meta.adapts and meta.method == "mzsr_meta"
    assert meta.recommended == {"adapt_lrs": [5e-3], "adapt_steps": 10, "adapt_backtrack": True}


def test_zeroshot_adapts_with_the_rates_the_checkpoint_recommends(tmp_path, photo):
    image = write_png(tmp_path / "lr.png", photo)
    args = ["--checkpoint", REPO / "weights" / "mzsr" / "meta_x2_cpu.pt", "--image", image, "--kernel", "gd_2.0",
            "--steps", 1]
    default = run_inline("zeroshot.py", *args, "--out", tmp_path / "a.png")
    assert default.returncode == 0 and "with lrs [0.005] (recommended by the checkpoint)" in default.stdout
    given = run_inline("zeroshot.py", *args, "--lrs", "0.02", "--out", tmp_path / "b.png")
    assert given.returncode == 0 and "with lrs [0.02] (--lrs)" in given.stdout


def test_evaluate_folder_and_train_from_the_api_in_a_worker_thread(tmp_path, photo):
    import threading

    from conftest import TINY

    from srlab.api import evaluate_folder, train
    from srlab.imresize import imresize

    hr = tmp_path / "hr"
    write_png(hr / "a.png", photo)
    write_png(hr / "b.png", photo[::-1].copy())
    (bicubic,) = evaluate_folder(lambda lr, scale: imresize(lr, scale=scale), hr, scales=[2])
    assert bicubic.n_images == 2 and bicubic.dataset == "hr"
    assert bicubic.psnr_y == pytest.approx(bicubic.bicubic_psnr_y)  # the protocol's own bicubic row
    (asym,) = evaluate_folder(load_upscaler(ASYM, "cpu"), hr, scales=[2])
    assert asym.method == "asym_vdsr" and asym.psnr_y > bicubic.psnr_y

    config = tmp_path / "tiny.yaml"
    config.write_text(TINY)
    results = []
    worker = threading.Thread(target=lambda: results.append(
        train(config, ["train.total_iters=2"], out=tmp_path / "run")))
    worker.start()
    worker.join(60)
    assert results and results[0] and (tmp_path / "run" / "checkpoints" / "last.pt").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_upscale_on_cuda_stays_close_to_fp32(photo, precision):
    full = load_upscaler(ASYM, "cuda")(photo, 2).astype(float)
    half = load_upscaler(ASYM, "cuda", precision=precision)(photo, 2).astype(float)
    assert 10 * np.log10(255**2 / max(np.mean((full - half) ** 2), 1e-10)) > 40


def test_a_photo_shrunk_by_pillow_gets_at_most_three_quarters_of_stage_1_and_beats_interpolation():
    """As a user makes one: a photo halved by Pillow's Lanczos, then the photo path. The estimate
    is a tool, so nothing adapts and the network runs blended with interpolation."""
    from PIL import Image

    from srlab.data import to_tensor
    from srlab.imresize import imresize
    from srlab.metrics import psnr_of_y, quantize, y_channel

    hr = load_image(f"{skimage.data.data_dir}/coffee.png")[50:250, 150:450]
    small = np.asarray(Image.fromarray(hr).resize((150, 100), Image.LANCZOS))
    result = load_upscaler(META, "cpu").run(small, 2)
    assert result.estimate.tool and re.match(r"ran (75|50|25)% of stage 1, \d+% interpolation|ran bicubic", result.said)
    truth = y_channel(to_tensor(hr))
    sr = psnr_of_y(y_channel(to_tensor(result.image)), truth, 2).item()
    interpolation = psnr_of_y(y_channel(quantize(imresize(to_tensor(small), scale=2))), truth, 2).item()
    assert sr > interpolation + 0.3, (sr, interpolation)


def test_max_share_caps_the_photo_paths_network_and_is_checked_before_any_image(tmp_path, photo):
    up = load_upscaler(META, "cpu", tile=32)
    result = up.run(photo[:40, :48], 2, max_share=0.3)
    assert re.match(r"ran (30|25)% of .*, (70|75)% interpolation|ran bicubic", result.said), result.said
    with pytest.raises(UserError, match="max_share 1.5: a number above 0 and at most 1"):
        up.run(photo[:40, :48], 2, max_share=1.5)
    for bad in (float("nan"), "0.5"):
        with pytest.raises(UserError, match="a number above 0 and at most 1"):
            up.run(photo[:40, :48], 2, max_share=bad)
    with pytest.raises(UserError, match="max_share: only MZSR's photo path"):
        up.run(photo[:40, :48], 2, kernel="gd_2.0", max_share=0.5)
    image = write_png(tmp_path / "lr.png", photo[:40, :48])
    zero = run_inline("upscale.py", "--checkpoint", META, "--input", image, "--out", tmp_path / "z.png",
                      "--max-share", "0")
    assert zero.returncode == 2 and "--max-share must be above 0 and at most 1, got 0.0" in zero.stderr
    nan = run_inline("upscale.py", "--checkpoint", META, "--input", image, "--out", tmp_path / "z.png",
                     "--max-share", "nan")
    assert nan.returncode == 2 and "--max-share must be above 0 and at most 1, got nan" in nan.stderr
    asym = run_inline("upscale.py", "--checkpoint", ASYM, "--input", image, "--out", tmp_path / "a.png",
                      "--max-share", "0.5")
    assert asym.returncode == 2 and "--max-share: only MZSR's photo path" in asym.stderr
    assert not list(tmp_path.glob("[za].png"))


def test_upscale_offers_the_kernel_estimators_mzsr_has():
    from srlab.commands.upscale import ESTIMATORS as offered
    from srlab.mzsr.estimate import ESTIMATORS

    assert list(offered) == list(ESTIMATORS)


def test_mzsr_without_a_kernel_takes_the_photo_path_and_says_what_ran(tmp_path, photo):
    """No silent MZSR(0): without --kernel the blur is estimated and the best candidate, chosen on
    the image itself, runs; the line names it. MZSR(0) only when asked for by name."""
    up = load_upscaler(META, "cpu", tile=32)
    result = up.run(photo[:40, :48], 2)
    assert result.said.startswith("ran ") and "gain over bicubic on the sons" in result.said and result.estimate
    chosen = result.said.split(" (")[0].removeprefix("ran ")
    blend = re.fullmatch(r"\d+% of (.*), \d+% interpolation", chosen)  # a candidate blended with interpolation
    network = blend.group(1) if blend else chosen
    assert network in ("stage 1", "MZSR(10) + bicubic", "bicubic") or network.startswith("MZSR(10) + Gaussian blur of")
    image = write_png(tmp_path / "lr.png", photo[:40, :48])
    cli = run_inline("upscale.py", "--checkpoint", META, "--input", image, "--out", tmp_path / "u.png")
    assert cli.returncode == 0 and f"ran {chosen} (gain over bicubic" in cli.stderr + cli.stdout, cli.stderr
    assert not (tmp_path / "u.kernel.npy").exists()  # only --kernel estimate writes the estimate
    none = run_inline("upscale.py", "--checkpoint", META, "--input", image, "--kernel", "none",
                      "--out", tmp_path / "n.png")
    assert none.returncode == 0 and "MZSR(0): not adapted, as asked" in none.stderr + none.stdout


def test_the_photo_benchmark_scores_what_upscale_does_on_photos_shrunk_by_tools(tmp_path, photo):
    write_png(tmp_path / "hr" / "cat.png", photo[:64, :64])
    result = run_inline("benchmark_photo.py", "--checkpoint", ASYM, META, "--dataset", f"cat={tmp_path / 'hr'}",
                        "--degradations", "photo_box", "photo_pil_bicubic_jpeg75", "--mzsr-rows", "none",
                        "--crop", 48, "--json", tmp_path / "photo.json")
    assert result.returncode == 0, result.stderr
    records = json.loads((tmp_path / "photo.json").read_text())["records"]
    assert {(r["method"], r["degradation"]) for r in records} == {
        (m, d) for m in ("asym_vdsr_x234_cpu", "meta_x2_cpu MZSR(0)") for d in ("photo_box", "photo_pil_bicubic_jpeg75")}
    assert all(r["n_images"] == 1 for r in records)
    assert "below bicubic - 0.1 dB" in result.stdout and "| asym_vdsr_x234_cpu |" in result.stdout
    bad = run_inline("benchmark_photo.py", "--checkpoint", ASYM, "--degradations", "photo_paint")
    assert bad.returncode == 2 and "--degradations: degradation 'photo_paint'" in bad.stderr
    share = run_inline("benchmark_photo.py", "--checkpoint", META, "--max-share", "2")
    assert share.returncode == 2 and "--max-share must be above 0 and at most 1, got 2.0" in share.stderr


def test_the_photo_benchmark_tells_the_photo_path_a_jpeg_as_its_file_would(monkeypatch):
    from srlab.commands.benchmark_photo import upscaler_rows
    from srlab.degradation import named_degradation

    up = load_upscaler(META, "cpu")
    told = []
    monkeypatch.setattr(up, "run", lambda image, scale, **options: told.append(
        (options["jpeg"], options["max_share"])) or SimpleNamespace(
        image=np.zeros((2 * image.shape[0], 2 * image.shape[1], 3), np.uint8)))
    (row,) = upscaler_rows("meta", up, ["photo"])
    for name in ("photo_box_jpeg75", "photo_box", "blind_mzsr"):
        row.infer(torch.rand(1, 3, 8, 8), 2, named_degradation(name))
    assert told == [(True, None), (False, None), (False, None)]
    photo, oracle = upscaler_rows("meta", up, ["photo", "oracle"], max_share=0.4)  # --max-share: the photo path's
    assert photo.name == "meta (photo path, max share 0.4)"
    photo.infer(torch.rand(1, 3, 8, 8), 2, named_degradation("photo_box"))
    oracle.infer(torch.rand(1, 3, 8, 8), 2, named_degradation("photo_box"))
    assert told[-2:] == [(False, 0.4), (False, None)]


def test_a_transparent_border_is_kept_and_the_colours_are_upscaled_as_without_it(tmp_path, photo):
    """A cut-out with a transparent border: the colours are super-resolved as any photo, the
    transparency interpolated (bicubic: no halo in it), and an output type without transparency
    says so on the line."""
    from PIL import Image

    from srlab.data import image_extras

    rgba = np.concatenate([photo, np.zeros((*photo.shape[:2], 1), np.uint8)], axis=2)
    rgba[10:50, 10:70, 3] = 255
    Image.fromarray(rgba).save(tmp_path / "cut.png")
    up = load_upscaler(ASYM, "cpu")
    up.upscale_file(tmp_path / "cut.png", tmp_path / "sr.png", scale=2)
    written = np.asarray(Image.open(tmp_path / "sr.png"))
    assert written.shape == (120, 160, 4)
    assert np.array_equal(written[..., :3], up(photo, 2))
    assert (written[24:96, 24:136, 3] == 255).all() and (written[:16, :, 3] == 0).all()
    assert image_extras(tmp_path / "sr.png").alpha is not None and image_extras(tmp_path / "cut.png").alpha.shape == (60, 80)
    result = up.upscale_file(tmp_path / "cut.png", tmp_path / "sr.bmp", scale=2)
    assert np.asarray(Image.open(tmp_path / "sr.bmp")).shape == (120, 160, 3)
    assert "its transparency is not in sr.bmp" in result.said


def test_what_a_photo_holds_besides_its_colours_is_kept(tmp_path, photo):
    """A photo tool's habits: a grey photo stays grey, EXIF and the ICC profile travel to the output
    (the orientation applied once, not twice), a JPEG output at --quality, --suffix and --ext."""
    from PIL import Image, ImageCms

    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(photo[..., 1]).save(folder / "grey.png")
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 6, "TestCam"  # "turn me 90 degrees", and the camera's make
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(photo).save(folder / "cam.jpg", exif=exif.tobytes(), icc_profile=srgb, quality=95)
    for quality in ("95", "40"):
        result = run_inline("upscale.py", "--checkpoint", ASYM, "--input", folder, "--scale", 2, "--out",
                            tmp_path / f"q{quality}", "--ext", "jpg", "--suffix", "_x2", "--quality", quality)
        assert result.returncode == 0, result.stderr
    grey, cam = Image.open(tmp_path / "q95" / "grey_x2.jpg"), Image.open(tmp_path / "q95" / "cam_x2.jpg")
    assert grey.mode == "L" and grey.size == (160, 120) and cam.format == "JPEG"
    assert cam.size == (120, 160)  # turned upright once (60x80 stored, orientation 6), not twice
    assert cam.getexif().get(0x010F) == "TestCam" and cam.getexif().get(0x0112) in (None, 1)
    assert cam.info["icc_profile"] == srgb
    assert (tmp_path / "q40" / "cam_x2.jpg").stat().st_size < (tmp_path / "q95" / "cam_x2.jpg").stat().st_size
    png = run_inline("upscale.py", "--checkpoint", ASYM, "--input", folder / "grey.png", "--scale", 2, "--out",
                     tmp_path / "grey.png")
    assert png.returncode == 0 and Image.open(tmp_path / "grey.png").mode == "L"
    bad = run_inline("upscale.py", "--checkpoint", ASYM, "--input", folder, "--out", tmp_path / "b", "--quality", "0")
    assert bad.returncode == 2 and "--quality must be 1-100" in bad.stderr


def test_two_inputs_writing_one_output_are_found_before_any_image(tmp_path, photo):
    folder = tmp_path / "in"
    write_png(folder / "a.png", photo)
    write_png(folder / "b.png", photo)
    (folder / "a.jpg").write_bytes((folder / "b.png").read_bytes())  # a PNG named .jpg reads fine
    clash = run_inline("upscale.py", "--checkpoint", ASYM, "--input", folder, "--scale", 2, "--out", tmp_path / "sr")
    assert clash.returncode == 2 and "would both write" in clash.stderr and "a.jpg" in clash.stderr
    assert not (tmp_path / "sr").exists() or not any((tmp_path / "sr").iterdir())
    apart = run_inline("upscale.py", "--checkpoint", ASYM, "--input", folder / "a.jpg", "--scale", 2, "--out",
                       tmp_path / "one.png")
    assert apart.returncode == 0, apart.stderr
    kernels = tmp_path / "k"
    write_png(kernels / "x.png", photo)
    write_png(kernels / "x.kernel.png", photo)  # its output would be x's kernel picture
    clash = run_inline("upscale.py", "--checkpoint", META, "--input", kernels, "--out", tmp_path / "sk", "--kernel",
                       "estimate")
    assert clash.returncode == 2 and "would both write" in clash.stderr and "x.kernel.png" in clash.stderr


def test_skip_existing_continues_an_interrupted_folder_run(tmp_path, photo):
    folder = tmp_path / "in"
    for name in ("a", "b", "c"):
        write_png(folder / f"{name}.png", photo[:40, :48])
    args = ["--checkpoint", ASYM, "--input", folder, "--scale", 2, "--out", tmp_path / "sr"]
    assert run_inline("upscale.py", *args).returncode == 0
    (tmp_path / "sr" / "b.png").unlink()  # as if stopped before b
    (tmp_path / "sr" / "a.png").write_bytes(b"kept as it is")
    again = run_inline("upscale.py", *args, "--skip-existing")
    assert again.returncode == 0, again.stderr
    assert "skipping 2 image(s)" in again.stdout and "b.png" in again.stderr + again.stdout
    assert (tmp_path / "sr" / "a.png").read_bytes() == b"kept as it is"
    assert load_image(tmp_path / "sr" / "b.png").shape == (80, 96, 3)
    both = run_inline("upscale.py", *args, "--skip-existing", "--overwrite")
    assert both.returncode == 2 and "not allowed with argument" in both.stderr


def test_bf16_on_a_cpu_with_bf16_units_and_a_clear_line_without(photo, monkeypatch):
    import srlab.device

    monkeypatch.setattr(srlab.device, "cpu_bf16_units", lambda: None)
    with pytest.raises(UserError, match="has no bf16 units .* use fp32"):
        load_upscaler(ASYM, "cpu", precision="bf16")
    monkeypatch.setattr(srlab.device, "cpu_bf16_units", lambda: "AMX")  # as on a CPU that has them
    fp32 = load_upscaler(ASYM, "cpu")(photo[:32, :40], 2).astype(float)
    bf16 = load_upscaler(ASYM, "cpu", precision="bf16")(photo[:32, :40], 2).astype(float)
    assert 10 * np.log10(255**2 / np.mean((bf16 - fp32) ** 2)) > 35  # close, not equal: bf16 keeps 8 bits


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_a_runtime_backend_gives_the_torch_paths_image(photo, backend, monkeypatch):
    pytest.importorskip(backend)
    for checkpoint, scale in [(ASYM, 2), (MSRRESNET, 4)]:  # a Y-channel network on the upscale, an RGB LR one
        ours = load_upscaler(checkpoint, "cpu", tile=32)(photo[:40, :48], scale).astype(int)
        theirs = load_upscaler(checkpoint, "cpu", tile=32, backend=backend)(photo[:40, :48], scale).astype(int)
        difference = np.abs(theirs - ours)
        assert difference.max() <= 1 and (difference > 0).mean() < 1e-3  # float rounding, nothing more
    for checkpoint, said in [(META, "adapts to each image"), (CLASSSR, "routes each sub-image")]:
        with pytest.raises(UserError, match=said):
            load_upscaler(checkpoint, "cpu", backend=backend)
    with pytest.raises(UserError, match="half precision is for CUDA GPUs"):
        load_upscaler(ASYM, "cpu", precision="fp16", backend=backend)
    import srlab.device

    monkeypatch.setattr(srlab.device, "cpu_bf16_units", lambda: "AMX")  # bf16: OpenVINO's hint, not ONNX Runtime
    if backend == "onnxruntime":
        with pytest.raises(UserError, match="the onnxruntime backend runs fp32"):
            load_upscaler(ASYM, "cpu", precision="bf16", backend=backend)


def test_openvino_takes_bf16_on_a_cpu_with_bf16_units_only(photo, monkeypatch):
    pytest.importorskip("openvino")
    import srlab.device

    monkeypatch.setattr(srlab.device, "cpu_bf16_units", lambda: None)
    with pytest.raises(UserError, match="has no bf16 units"):
        load_upscaler(ASYM, "cpu", precision="bf16", backend="openvino")
    monkeypatch.setattr(srlab.device, "cpu_bf16_units", lambda: "AMX")  # as on a CPU that has them
    fp32 = load_upscaler(ASYM, "cpu")(photo[:32, :40], 2).astype(float)
    bf16 = load_upscaler(ASYM, "cpu", precision="bf16", backend="openvino")(photo[:32, :40], 2).astype(float)
    assert 10 * np.log10(255**2 / max(np.mean((bf16 - fp32) ** 2), 1e-10)) > 35  # OpenVINO's bf16 hint: close


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_srlab_test_on_a_runtime_backend_scores_as_torch(tmp_path, photo, backend):
    pytest.importorskip(backend)
    write_png(tmp_path / "hr" / "a.png", photo[:40, :48])
    scores = {}
    for name in ("torch", backend):
        result = run_inline("test.py", "--checkpoint", ASYM, "--dataset", f"mine={tmp_path / 'hr'}", "--scales", 2,
                            "--backend", name, "--out", tmp_path / name)
        assert result.returncode == 0, result.stderr
        (record,) = json.loads((tmp_path / name / "results.json").read_text())["records"]
        scores[name] = record["psnr_y"]
    assert scores[backend] == pytest.approx(scores["torch"], abs=0.01)


def test_srlab_test_runs_bf16_on_a_cpu_with_bf16_units_and_says_why_not_without(tmp_path, photo, monkeypatch):
    import srlab.device

    write_png(tmp_path / "hr" / "a.png", photo[:40, :48])
    args = ["--checkpoint", ASYM, "--dataset", f"mine={tmp_path / 'hr'}", "--scales", 2]
    monkeypatch.setattr(srlab.device, "cpu_bf16_units", lambda: None)
    refused = run_inline("test.py", *args, "--precision", "bf16", "--out", tmp_path / "no")
    assert refused.returncode == 2 and "has no bf16 units" in refused.stderr and not (tmp_path / "no").exists()
    monkeypatch.setattr(srlab.device, "cpu_bf16_units", lambda: "AMX")  # as on a CPU that has them
    scores = {}
    for precision in ("fp32", "bf16"):
        result = run_inline("test.py", *args, "--precision", precision, "--out", tmp_path / precision)
        assert result.returncode == 0, result.stderr
        (record,) = json.loads((tmp_path / precision / "results.json").read_text())["records"]
        scores[precision] = record["psnr_y"]
    # autocast did run (bf16 keeps 8 bits), and close: a 40x48 image at 47 dB shows the last bits
    assert scores["bf16"] == pytest.approx(scores["fp32"], abs=0.5) and scores["bf16"] != scores["fp32"]


def test_the_inference_benchmark_reports_each_path_against_a_peak_estimate(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    result = run_inline("benchmark_inference.py", "--checkpoint", ASYM, "--size", 16, "--repeats", 1, "--json",
                        tmp_path / "b.json")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "b.json").read_text())
    paths = [row["path"] for row in report["rows"]]
    assert paths[:3] == ["torch fp32", "onnxruntime fp32", "openvino fp32"] and report["flops"] > 0
    assert all(row["gflops_per_s"] > 0 for row in report["rows"]) and "FLOPs/cycle" in report["peak_estimate"]
    bad = run_inline("benchmark_inference.py", "--checkpoint", ASYM, "--size", 2)
    assert bad.returncode == 2 and "--size must be at least 8" in bad.stderr
