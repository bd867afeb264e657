"""Bad input and faults around photos, kernels and the API: one line, nothing lost, no wrong number."""
import errno
import os

import numpy as np
import pytest
import torch
from conftest import REPO, run_inline, write_png

from srlab.api import Upscaler, evaluate_folder, load_upscaler
from srlab.errors import UserError
from srlab.rundir import RunFolder

ASYM = REPO / "weights" / "asymsr" / "asym_vdsr_x234_cpu.pt"
STAGE1_X2 = REPO / "weights" / "mzsr" / "pretrain_x2_cpu.pt"  # a x2-only network


@pytest.fixture
def image():
    return (np.random.default_rng(0).random((24, 32, 3)) * 255).astype(np.uint8)


def test_two_upscale_runs_into_one_folder_do_not_interleave(tmp_path, image):
    write_png(tmp_path / "in" / "a.png", image)
    busy = RunFolder(tmp_path / "sr")
    busy.lock()  # another srlab upscale writing there
    try:
        second = run_inline("upscale.py", "--checkpoint", ASYM, "--input", tmp_path / "in", "--scale", 2, "--out",
                            tmp_path / "sr")
    finally:
        busy.unlock()
    assert second.returncode == 2 and "is in use by another run" in second.stderr
    assert not (tmp_path / "sr" / "a.png").exists()
    assert run_inline("upscale.py", "--checkpoint", ASYM, "--input", tmp_path / "in", "--scale", 2, "--out",
                      tmp_path / "sr").returncode == 0


def test_an_output_written_by_someone_else_meanwhile_is_kept(tmp_path, image, monkeypatch):
    write_png(tmp_path / "a.png", image)
    run = Upscaler.run

    def slow_run(self, *args, **kwargs):  # another program writes the output while we compute
        (tmp_path / "sr.png").write_bytes(b"theirs")
        return run(self, *args, **kwargs)

    monkeypatch.setattr(Upscaler, "run", slow_run)
    with pytest.raises(UserError, match="appeared while this image was being upscaled"):
        load_upscaler(ASYM, "cpu").upscale_file(tmp_path / "a.png", tmp_path / "sr.png", 2)
    assert (tmp_path / "sr.png").read_bytes() == b"theirs"


def test_pack_data_refuses_to_write_into_the_data_root_it_reads(tmp_path, image, monkeypatch):
    write_png(tmp_path / "root" / "benchmarks" / "Set5" / "HR" / "a.png", image)
    monkeypatch.setenv("SR_DATA_ROOT", str(tmp_path / "root"))
    result = run_inline("pack_data.py", "--out", tmp_path / "root", "--sets", "benchmarks/Set5")
    assert result.returncode == 2 and "the data root it packs from" in result.stderr
    assert not list((tmp_path / "root").rglob("*.webp"))


@pytest.mark.parametrize("shape", [(3, 7), (4, 4)])
def test_a_kernel_without_one_centre_pixel_is_refused(tmp_path, image, shape):
    np.save(tmp_path / "k.npy", np.ones(shape))
    lr = write_png(tmp_path / "lr.png", image)
    result = run_inline("zeroshot.py", "--checkpoint", REPO / "weights" / "mzsr" / "meta_x2_cpu.pt", "--image", lr,
                        "--kernel", tmp_path / "k.npy", "--out", tmp_path / "sr.png")
    assert result.returncode == 2 and "square with an odd side" in result.stderr, result.stderr
    assert not (tmp_path / "sr.png").exists()


def test_the_api_refuses_images_and_scales_it_cannot_answer_for(tmp_path, image):
    up = load_upscaler(STAGE1_X2, "cpu")
    with pytest.raises(UserError, match="NaN or infinity"):
        up(torch.full((1, 3, 8, 8), float("nan")), 2)
    with pytest.raises(UserError, match="an empty image"):
        up(np.zeros((0, 0, 3), np.uint8), 2)
    write_png(tmp_path / "hr" / "a.png", np.repeat(np.repeat(image, 2, 0), 2, 1))
    with pytest.raises(UserError, match=r"trained for x\[2\] only"):
        evaluate_folder(up, tmp_path / "hr", scales=[3])
    with pytest.raises(UserError, match="integers of 2 or more"):
        evaluate_folder(lambda lr, scale: lr, tmp_path / "hr", scales=[1], device="cpu")
    with pytest.raises(UserError, match="returned ndarray"):
        evaluate_folder(lambda lr, scale: np.zeros(3), tmp_path / "hr", scales=[2], device="cpu")


def test_symbolic_link_loops_are_one_line_wherever_they_are_given(tmp_path, image):
    os.symlink(tmp_path / "loop2.png", tmp_path / "loop1.png")
    os.symlink(tmp_path / "loop1.png", tmp_path / "loop2.png")
    folder = tmp_path / "in"
    write_png(folder / "a.png", image)
    os.symlink(tmp_path / "loop1.png", folder / "bad.png")
    cases = [("upscale.py", "--checkpoint", ASYM, "--input", folder, "--scale", 2, "--out", tmp_path / "sr"),
             ("upscale.py", "--checkpoint", ASYM, "--input", folder / "a.png", "--out", tmp_path / "loop1.png"),
             ("export.py", "--checkpoint", tmp_path / "loop1.png", "--out", tmp_path / "e.safetensors"),
             ("zeroshot.py", "--checkpoint", tmp_path / "loop1.png", "--image", folder / "a.png", "--kernel",
              "gd_2.0", "--out", tmp_path / "z.png")]
    for script, *args in cases:
        result = run_inline(script, *args)
        assert result.returncode == 2 and "a symbolic link that leads back to itself" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_a_full_disk_while_saving_is_one_line_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    from srlab.checkpoint import save_checkpoint
    from srlab.data import save_kernel_array

    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:783] . PytorchStreamWriter failed writing file "
                           "data/0: file write failed (unexpected pos 64 vs 0)")

    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(UserError, match="cannot write .*last.pt .*nothing was written"):
        save_checkpoint({"model": {}}, tmp_path / "last.pt")

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", no_space)
    with pytest.raises(UserError, match="No space left on device"):
        save_kernel_array(torch.ones(3, 3), tmp_path / "k.npy")
    assert list(tmp_path.iterdir()) == []


def test_the_recorded_command_is_the_one_typed(monkeypatch):
    """``srlab test --config C`` records "srlab test --config C" (not "srlab test test ...")."""
    import sys
    import types

    import srlab.cli

    seen = []
    fake = types.SimpleNamespace(main=lambda argv: seen.append(" ".join(sys.argv)))
    monkeypatch.setattr(srlab.cli.importlib, "import_module", lambda name: fake)
    monkeypatch.setattr(sys, "argv", ["srlab", "benchmark", "photo", "--crop", "64"])
    srlab.cli.main()
    assert seen == ["srlab benchmark photo --crop 64"]
