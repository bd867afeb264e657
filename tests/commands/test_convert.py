"""srlab convert: every foreign format becomes an ordinary checkpoint whose network, through the
loader, the Python API and srlab upscale, computes what the public project's own layout computes
(a plain forward pass written here from its state dict); its card names the source and its
SHA-256; every bad input is one line. Tiny files of each format are written here; the public
files are converted where the shared data has them. And srlab test evaluates a carded checkpoint
without a config."""
import json

import numpy as np
import pytest
import torch
from conftest import run_inline, write_png
from public_layouts import (
    carn_m_forward,
    carn_m_state,
    fsrcnn_forward,
    fsrcnn_state,
    msrresnet_forward,
    msrresnet_state,
    vdsr_forward,
    write_twtygqyy_vdsr,
)

from srlab.api import load_upscaler
from srlab.color import rgb_to_ycbcr, ycbcr_to_rgb
from srlab.commands.convert import convert
from srlab.data import to_uint8
from srlab.errors import UserError
from srlab.imresize import imresize
from srlab.loading import load
from srlab.network import InputConvention
from srlab.provenance import sha256


def write_vdsr(path):
    return write_twtygqyy_vdsr(path)


def write_fsrcnn(path):
    weights = fsrcnn_state()
    torch.save(weights, path)
    return weights


def write_carn_m(path):
    weights = carn_m_state()
    torch.save(weights, path)
    return weights


def write_basicsr(path):
    weights = msrresnet_state(scale=4)
    torch.save({"params": {k: v + 1 for k, v in weights.items()}, "params_ema": weights}, path)
    return weights


# arch, file name, writer, extra arguments, the card's input and scales, the public forward pass
FORMATS = {
    "vdsr": ("vdsr_epoch_3.pth", write_vdsr, [], InputConvention.Y_OF_BICUBIC_UPSCALE, [2, 3, 4],
             lambda w, x, scale: vdsr_forward(w, x)),
    "fsrcnn": ("fsrcnn_x3.pth", write_fsrcnn, [], InputConvention.Y_OF_LR, [3], fsrcnn_forward),
    "carn_m": ("carn_m.pth", write_carn_m, ["--scale", "4"], InputConvention.RGB_LR, [4],
               lambda w, x, scale: carn_m_forward(w, x, scale, group=2)),
    "basicsr": ("MSRResNet_x4.pth", write_basicsr, [], InputConvention.RGB_LR, [4], msrresnet_forward),
}


@pytest.fixture(params=sorted(FORMATS))
def converted(request, tmp_path):
    """(arch, the foreign weights, the source file, the converted checkpoint)."""
    arch = request.param
    name, writer, extra, *_ = FORMATS[arch]
    source = tmp_path / name
    torch.manual_seed(0)
    weights = writer(source)
    out = tmp_path / f"{arch}.pt"
    result = run_inline("convert.py", "--arch", arch, "--checkpoint", source, "--out", out, *extra)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"wrote {out}: ") and "parameters, serves x" in result.stdout
    return arch, weights, source, out


def network_input(convention: InputConvention, lr: torch.Tensor, scale: int) -> torch.Tensor:
    """What the network takes, made from the RGB LR image as the card's convention says."""
    image = imresize(lr, scale=scale) if convention.upsampled else lr
    return rgb_to_ycbcr(image)[:, :1] if convention.y_channel else image


def test_the_converted_network_is_the_public_layouts_forward_pass(converted):
    arch, weights, source, out = converted
    _, _, convention, scales, forward = FORMATS[arch][1:]
    method, network, card = load(out)
    assert card.input is convention and list(card.scales) == scales and card.method == "supervised"
    assert card.provenance["sha256"] == sha256(source) and card.provenance["source"] == source.name
    assert card.provenance["converted_by"] == f"srlab convert --arch {arch}"
    assert card.provenance["licence"].startswith("unknown")  # a file srlab does not know
    x = network_input(convention, torch.rand(1, 3, 11, 13), scales[-1])
    with torch.no_grad():
        torch.testing.assert_close(network.eval()(x), forward(weights, x, scales[-1]), atol=1e-5, rtol=1e-5)


def public_pipeline(forward, weights, convention: InputConvention, lr_uint8: np.ndarray, scale: int) -> np.ndarray:
    """The public forward pass inside the harness's colour handling: a Y network's output joins the
    Cb/Cr of the MATLAB-bicubic upscale (as VDSR's and FSRCNN's own demos do with theirs)."""
    lr = torch.from_numpy(lr_uint8).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        out = forward(weights, network_input(convention, lr, scale), scale)
        if convention.y_channel:
            out = ycbcr_to_rgb(torch.cat([out, rgb_to_ycbcr(imresize(lr, scale=scale))[:, 1:]], dim=1))
    return to_uint8(out)


def test_through_the_api_and_srlab_upscale_it_gives_the_public_forward_pass(converted, tmp_path):
    arch, weights, _, out = converted
    _, _, convention, scales, forward = FORMATS[arch][1:]
    lr = (np.random.default_rng(0).random((17, 23, 3)) * 255).astype(np.uint8)
    expected = public_pipeline(forward, weights, convention, lr, scales[-1])
    # The API runs channels-last and tiled: equal up to float rounding (one 8-bit level, rarely).
    for tile in (10_000, 8):
        sr = load_upscaler(out, "cpu", tile=tile)(lr, scales[-1])
        difference = np.abs(sr.astype(int) - expected.astype(int))
        assert sr.shape == expected.shape and difference.max() <= 1 and (difference > 0).mean() < 0.01, tile
    write_png(tmp_path / "lr.png", lr)
    result = run_inline("upscale.py", "--checkpoint", out, "--input", tmp_path / "lr.png", "--out", tmp_path / "sr.png",
                        "--scale", str(scales[-1]))
    assert result.returncode == 0, result.stderr
    from srlab.data import load_image

    assert np.abs(load_image(tmp_path / "sr.png").astype(int) - expected.astype(int)).max() <= 1


def test_a_single_scale_carn_file_and_the_other_upsamplers_convert(tmp_path):
    torch.manual_seed(1)
    multi = carn_m_state(scales=(2, 3, 4))
    torch.save(multi, tmp_path / "multi.pth")
    x = torch.rand(1, 3, 9, 10)
    for scale in (2, 3):
        state = convert("carn_m", tmp_path / "multi.pth", scale=scale).state
        assert state["card"]["scales"] == [scale] and "multi-scale" in state["card"]["provenance"]["upsampler"]
        network = load_state(state, tmp_path)
        torch.testing.assert_close(network(x), carn_m_forward(multi, x, scale, group=2), atol=1e-5, rtol=1e-5)
    single = {k.replace("upsample.up3.", "upsample.up."): v for k, v in multi.items() if not k.startswith(
        ("upsample.up2.", "upsample.up4."))}
    torch.save(single, tmp_path / "single.pth")
    state = convert("carn_m", tmp_path / "single.pth").state  # its scale follows from its upsampler
    assert state["card"]["scales"] == [3]
    torch.testing.assert_close(load_state(state, tmp_path)(x), carn_m_forward(single, x, 3, 2, up="upsample.up"),
                               atol=1e-5, rtol=1e-5)


def load_state(state: dict, folder):
    from srlab.checkpoint import save_checkpoint

    save_checkpoint(state, folder / "state.pt")
    return load(folder / "state.pt")[1].eval()


def test_bad_inputs_are_one_line_errors_naming_the_file_or_option(tmp_path):
    torch.manual_seed(0)
    write_twtygqyy_vdsr(tmp_path / "vdsr.pth")
    torch.save(fsrcnn_state(), tmp_path / "fsrcnn_x2.pth")
    torch.save(fsrcnn_state(), tmp_path / "fsrcnn.pth")
    torch.save(carn_m_state(), tmp_path / "carn_m.pth")
    carn = carn_m_state()
    torch.save({**carn, "b1.b2.body.0.weight": carn["b1.b1.body.0.weight"]}, tmp_path / "carn.pth")
    torch.save({**carn, "sub_mean.shifter.bias": torch.zeros(3)}, tmp_path / "shifted.pth")
    torch.save({"state_dict": msrresnet_state()}, tmp_path / "not_basicsr.pth")
    (tmp_path / "exists.pt").write_bytes(b"x")
    cases = [  # (arguments, the message's start after "error: ")
        (["vdsr", "vdsr.pth", "--scale", "2"], "--scale: --arch vdsr takes no scale"),
        (["fsrcnn", "fsrcnn.pth"], f"{tmp_path / 'fsrcnn.pth'}: yjn870's FSRCNN file does not record its scale"),
        (["fsrcnn", "fsrcnn_x2.pth", "--scale", "3"], f"{tmp_path / 'fsrcnn_x2.pth'}: --scale 3, but the file's name"),
        (["fsrcnn", "fsrcnn_x2.pth", "--scale", "5"], "--scale 5: allowed: 2, 3, 4"),
        (["fsrcnn", "fsrcnn_x2.pth", "--kind", "Directx2"], "--kind: for --arch mzsr_tf only"),
        (["carn_m", "carn_m.pth"], f"{tmp_path / 'carn_m.pth'}: a multi-scale CARN file"),
        (["carn_m", "carn.pth", "--scale", "2"], f"{tmp_path / 'carn.pth'}: CARN (three residual blocks"),
        (["carn_m", "shifted.pth", "--scale", "2"], f"{tmp_path / 'shifted.pth'}: its sub_mean / add_mean are not"),
        (["carn_m", "fsrcnn_x2.pth", "--scale", "2"], f"{tmp_path / 'fsrcnn_x2.pth'}: no entry.weight"),
        (["fsrcnn", "carn_m.pth", "--scale", "2"], f"{tmp_path / 'carn_m.pth'}: no first_part.0.weight"),
        (["vdsr", "fsrcnn_x2.pth"], f"{tmp_path / 'fsrcnn_x2.pth'}: a zip-format PyTorch file"),
        (["fsrcnn", "vdsr.pth"], f"{tmp_path / 'vdsr.pth'}: not a readable checkpoint"),
        (["basicsr", "not_basicsr.pth"], f"{tmp_path / 'not_basicsr.pth'}: a BasicSR file holds its weights"),
        (["vdsr", "missing.pth"], f"{tmp_path / 'missing.pth'}: checkpoint not found"),
        (["vdsr", "vdsr.pth", "--out", "exists.pt"], f"--out {tmp_path / 'exists.pt'}: exists; pass --overwrite"),
        (["vdsr", "vdsr.pth", "--out", "vdsr.pth"], f"--out {tmp_path / 'vdsr.pth'}: is an input of this command"),
    ]
    for (arch, source, *extra), message in cases:
        if "--out" not in extra:
            extra += ["--out", "new.pt"]
        extra = [str(tmp_path / a) if a.endswith((".pt", ".pth")) else a for a in extra]
        result = run_inline("convert.py", "--arch", arch, "--checkpoint", tmp_path / source, *extra)
        assert result.returncode == 2 and result.stderr.startswith(f"error: {message}"), (arch, result.stderr)
        assert result.stderr.count("\n") == 1, result.stderr
        assert not (tmp_path / "new.pt").exists()
    assert (tmp_path / "exists.pt").read_bytes() == b"x"


def test_a_legacy_file_that_runs_a_command_is_refused_by_convert(tmp_path, monkeypatch):
    import os

    class Payload:
        def __reduce__(self):
            return os.system, ("touch MARKER",)

    monkeypatch.chdir(tmp_path)
    torch.save({"model": Payload()}, tmp_path / "evil.pth", _use_new_zipfile_serialization=False)
    result = run_inline("convert.py", "--arch", "vdsr", "--checkpoint", tmp_path / "evil.pth", "--out",
                        tmp_path / "out.pt")
    assert result.returncode == 2 and "refused: its pickle names" in result.stderr and "system" in result.stderr
    assert not (tmp_path / "MARKER").exists() and not (tmp_path / "out.pt").exists()


def test_srlab_test_evaluates_a_carded_checkpoint_without_a_config(tmp_path, monkeypatch):
    torch.manual_seed(0)
    torch.save(fsrcnn_state(), tmp_path / "fsrcnn_x2.pth")
    assert run_inline("convert.py", "--arch", "fsrcnn", "--checkpoint", tmp_path / "fsrcnn_x2.pth", "--out",
                      tmp_path / "fsrcnn.pt").returncode == 0
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for name in ("Set5", "Set14", "BSD100", "Urban100"):  # the standard sets, one tiny image each
        write_png(root / "benchmarks" / name / "HR" / "a.png", (rng.random((24, 20, 3)) * 255).astype(np.uint8))
    monkeypatch.setenv("SR_DATA_ROOT", str(root))
    result = run_inline("test.py", "--checkpoint", tmp_path / "fsrcnn.pt", "--out", tmp_path / "test")
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "test" / "results.json").read_text())
    assert [(r["dataset"], r["scale"], r["method"]) for r in results["records"]] == [
        (name, 2, "fsrcnn") for name in ("Set5", "Set14", "BSD100", "Urban100")]
    header = results["header"]  # what ran: the checkpoint's card in place of a config
    assert header["config"]["card"]["architecture"] == "fsrcnn" and header["config"]["name"] == "fsrcnn"
    assert header["checkpoint"]["sha256"] == sha256(tmp_path / "fsrcnn.pt")
    result = run_inline("test.py", "--checkpoint", tmp_path / "fsrcnn.pt", "--dataset", f"mine={root / 'x'}",
                        "--out", tmp_path / "test2")
    assert result.returncode == 2 and "image folder not found" in result.stderr
    for extra, message in [
        (["--scales", "3"], "test.scales: FSRCNN upscales x2 only"),
        (["--opt", "model.d=3"], "model: without --config, --opt sets test.*, device and name only"),
        (["--opt", "test.max_images=-1"], "test.max_images: must be >= 0"),
    ]:
        result = run_inline("test.py", "--checkpoint", tmp_path / "fsrcnn.pt", *extra, "--out", tmp_path / "t3")
        assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert run_inline("test.py").stderr.startswith("error: give --config C")


PUBLIC = {  # file, --scale, the public forward pass, the input convention, the scales checked
    "vdsr": ("vdsr_model_epoch_50.pth", None, lambda w, x, s: vdsr_forward(w, x), [2]),
    "fsrcnn": ("fsrcnn_x3.pth", None, fsrcnn_forward, [3]),
    "carn_m": ("carn_m.pth", 4, lambda w, x, s: carn_m_forward(w, x, s, group=4), [4]),
}


@pytest.mark.parametrize("arch", sorted(PUBLIC))
def test_the_public_files_convert_to_their_own_forward_pass(arch, shared_data, tmp_path):
    name, scale, forward, scales = PUBLIC[arch]
    source = shared_data / "reference" / "public_weights" / name
    if not source.is_file():
        pytest.skip(f"no {name} in the shared data")
    converted = convert(arch, source, scale=scale)
    card = converted.state["card"]
    assert card["provenance"]["sha256"] == sha256(source) and card["provenance"]["licence"] != "unknown"
    network = load_state(converted.state, tmp_path)
    if arch == "vdsr":
        from srlab.legacy_pickle import read_legacy_file

        weights = read_legacy_file(source, {"vdsr": {"Net", "Conv_ReLU_Block"}})["model"].state_dict()
    else:
        weights = torch.load(source, weights_only=True, map_location="cpu")
    x = network_input(network.input_convention, torch.rand(1, 3, 12, 10), scales[0])
    with torch.no_grad():
        torch.testing.assert_close(network(x), forward(weights, x, scales[0]), atol=1e-5, rtol=1e-5)


def test_an_unknown_arch_is_refused_by_the_function_too():
    with pytest.raises(UserError, match="--arch 'edsr': unknown; allowed: vdsr, fsrcnn, carn_m, basicsr, mzsr_tf"):
        convert("edsr", "x.pth")
