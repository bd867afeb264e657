"""Bad input is one line, nothing written (continues test_reliability.py): export's weights and
opset, crafted checkpoint metadata and resume states, absurd batches, ClassSR split entries,
infinite config values, a non-finite stop before the first save, --overwrite's provenance, and a
validation far below bicubic."""
import copy
import json

import pytest
import torch
from conftest import REPO, ActAt, run_inline

from srlab.checkpoint import load_checkpoint
from srlab.classsr.prepare import read_split
from srlab.errors import ConfigError, UserError
from srlab.loading import load
from srlab.registry import build_method
from srlab.runner import train
from srlab.stopping import TrainingStopped

MSRRESNET = REPO / "weights" / "classsr" / "msrresnet_o_x4_cpu.pt"
MZSR = REPO / "weights" / "mzsr" / "meta_x2_cpu.pt"


def crafted(tmp_path, source, change, name="crafted.pt"):
    """A copy of checkpoint ``source`` with ``change(state)`` applied."""
    state = copy.deepcopy(load_checkpoint(source))
    change(state)
    torch.save(state, tmp_path / name)
    return tmp_path / name


def one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    assert all(f in result.stderr for f in fragments), result.stderr


# --------------------------------------------------------------------------- rows 1-3: export
def _nan(state):
    key = next(iter(state["model"]))
    state["model"][key] = torch.full_like(state["model"][key], float("nan"))


def _missing(state):
    state["model"].pop("conv_last.bias")


def _extra(state):
    state["model"]["conv_last.extra"] = torch.zeros(3)


def _not_a_tensor(state):
    state["model"]["conv_last.bias"] = 5


@pytest.mark.parametrize("change, message", [
    (_nan, "hold NaN or infinity"), (_missing, "'conv_last.bias' is missing from the file"),
    (_extra, 'Unexpected key(s) in state_dict: "conv_last.extra"'),
    (_not_a_tensor, "'conv_last.bias' is a int in the file, not a tensor")], ids=["nan", "missing", "extra", "int"])
def test_export_refuses_weights_that_do_not_fit_the_network(tmp_path, change, message):
    pytest.importorskip("safetensors")
    checkpoint = crafted(tmp_path, MSRRESNET, change)
    for naming in ("srlab", "basicsr"):
        out = tmp_path / f"{naming}.safetensors"
        one_line_error(run_inline("export.py", "--checkpoint", checkpoint, "--out", out, "--naming", naming),
                       str(checkpoint), message)
        assert not out.exists()


def test_export_names_the_opsets_it_can_write(tmp_path):
    for opset in (0, 99, -1, 9):  # 9-10 export MSRResNet's bilinear skip as another interpolation
        result = run_inline("export.py", "--checkpoint", MSRRESNET, "--out", tmp_path / "n.onnx", "--opset", opset)
        one_line_error(result, f"--opset {opset}: allowed 11 to 20 (the default is 17)")
    assert not (tmp_path / "n.onnx").exists()


# --------------------------------------------------------------------------- row 4: crafted metadata
def _legacy(change):
    def apply(state):
        state.pop("card")
        change(state)
    return apply


@pytest.mark.parametrize("change, message", [
    (lambda s: s["card"]["arguments"].update(channels=200000), "card field arguments = {'channels': 200000} do not fit"),
    (_legacy(lambda s: s["config"]["model"].update(channels=200000)), "arguments = {'channels': 200000} do not fit"),
    (_legacy(lambda s: s.update(network="hello")), "its 'network' entry = 'hello'; a mapping"),
    (lambda s: s["card"]["recommended"].update(adapt_lrs="x"), "card field recommended.adapt_lrs"),
    (_legacy(lambda s: s.update(network={"scales": [-2]})), "its network.scales = [-2]; a list of distinct integers"),
    (_legacy(lambda s: s["config"]["train"].update(scales="abc")), "its config train.scales = 'abc'; a list of"),
], ids=["card-channels", "legacy-channels", "network-hello", "adapt-lrs", "network-scales", "train-scales"])
def test_crafted_checkpoint_metadata_is_one_line_naming_the_field(tmp_path, change, message):
    checkpoint = crafted(tmp_path, MZSR, change)
    with pytest.raises(UserError) as error:
        load(checkpoint)  # channels 200000 is built on the meta device only: an error, not 1.4 TB
    assert str(checkpoint) in str(error.value) and message in str(error.value) and "\n" not in str(error.value)


def test_a_crafted_card_is_one_line_through_the_command(tmp_path):
    checkpoint = crafted(tmp_path, MZSR, _legacy(lambda s: s.update(network="hello")))
    one_line_error(run_inline("export.py", "--checkpoint", checkpoint, "--out", tmp_path / "m.safetensors"),
                   "'network' entry = 'hello'")
    assert not (tmp_path / "m.safetensors").exists()


# --------------------------------------------------------------------------- row 5: crafted resume states
def _bad_rng(state):
    state["rng"]["numpy"]["keys"] = torch.zeros(3, dtype=torch.int64)


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update(iteration=-5), "its iteration = -5; a whole number >= 0"),
    (lambda s: s.update(iteration="5"), "its iteration = '5'; a whole number >= 0"),
    (lambda s: s.update(best="high"), "its best = 'high'; a number"),
    (lambda s: s.update(best=float("nan")), "its best = nan; a number"),
    (_bad_rng, "its rng state cannot be restored"),
], ids=["negative", "string", "best-string", "best-nan", "rng"])
def test_a_crafted_resume_checkpoint_is_refused_before_training(tiny, tmp_path, change, message):
    cfg = tiny("train.total_iters=2")
    train(build_method(cfg), cfg, tmp_path / "run")
    checkpoint = crafted(tmp_path, tmp_path / "run" / "checkpoints" / "last.pt", change)
    method, longer = build_method(cfg), tiny("train.total_iters=4")
    rng = torch.get_rng_state()
    with pytest.raises(UserError, match=message):
        train(method, longer, tmp_path / "next", resume=str(checkpoint))
    assert not (tmp_path / "next").exists()
    assert torch.equal(torch.get_rng_state(), rng)  # the tried RNG state was put back


# --------------------------------------------------------------------------- row 6: sizes and split entries
def test_an_absurd_batch_is_refused_up_front(tiny, tmp_path):
    result = run_inline("train.py", "--config", tiny.path, "--out", tmp_path / "run",
                        "--opt", "train.batch_size=1000000000000")
    one_line_error(result, "train.batch_size: 1000000000000 patches of 16x16", "at most 1 GiB is allowed",
                   "batch_size <= 1398101")
    assert not (tmp_path / "run").exists()


def test_a_class_split_entry_of_the_wrong_type_names_the_file_and_entry(tmp_path):
    split = {"scale": 4, "lr_size": 8, "n_classes": 3, "images": ["a.png"],
             "sub_images": [[0, 0, 0, 30.5, 1], [0, 8, 0, 28.0, "hard"]]}
    path = tmp_path / "split.json"
    path.write_text(json.dumps(split))
    with pytest.raises(ConfigError, match=r"split.json: sub_images\[1\] = \[0, 8, 0, 28.0, 'hard'\]; allowed: "
                                          r"\[image index < 1, top >= 0, left >= 0, psnr, class 0 to 2\]"):
        read_split(path)
    split["sub_images"][1][4] = 2
    path.write_text(json.dumps(split))
    assert read_split(path)["sub_images"][1][4] == 2
    path.write_text(json.dumps({**split, "n_classes": "3"}))
    with pytest.raises(ConfigError, match="n_classes = '3'; a whole number >= 1"):
        read_split(path)


# --------------------------------------------------------------------------- row 7: infinite values
def test_an_infinite_config_value_names_its_key_and_writes_nothing(tiny, tmp_path):
    for opt, key in (("train.optimizer.lr=.inf", "train.optimizer.lr: must be finite, got inf"),
                     ("train.optimizer.betas=[0.9, .nan]", "train.optimizer.betas[1]: must be finite, got nan"),
                     ("model.channels=-.inf", "model.channels: must be finite, got -inf")):
        result = run_inline("train.py", "--config", tiny.path, "--out", tmp_path / "run", "--opt", opt)
        one_line_error(result, key)
    assert not (tmp_path / "run").exists()  # so the corrected run starts without --overwrite


# --------------------------------------------------------------------------- rows 8-10: the run itself
def test_a_nonfinite_stop_before_the_first_save_says_so_in_log_txt(tiny, tmp_path):
    cfg = tiny("train.checkpoint_every=4", "train.total_iters=4")
    nan = ActAt(build_method(cfg), 1, lambda: None)
    nan.loss = lambda model, batch: {"loss": torch.tensor(float("nan"), requires_grad=True)}
    with pytest.raises(TrainingStopped) as stop:
        train(nan, cfg, tmp_path / "run")
    assert "no checkpoint was written" in str(stop.value) and "last.pt" not in str(stop.value)
    assert not (tmp_path / "run" / "checkpoints" / "last.pt").exists()
    assert str(stop.value) in (tmp_path / "run" / "log.txt").read_text()


def test_overwrite_starts_a_fresh_provenance(tiny, tmp_path):
    cfg = tiny("train.total_iters=2")
    train(build_method(cfg), cfg, tmp_path / "run")
    train(build_method(cfg), tiny("train.total_iters=3"), tmp_path / "run", resume="auto")
    assert len(json.loads((tmp_path / "run" / "provenance.json").read_text())) == 2
    train(build_method(cfg), cfg, tmp_path / "run", overwrite=True)
    assert len(json.loads((tmp_path / "run" / "provenance.json").read_text())) == 1


def test_a_validation_far_below_bicubic_is_a_loud_warning_not_a_stop(tiny, tmp_path, capsys):
    cfg = tiny("train.optimizer.lr=1e6", "train.total_iters=2", "train.val_every=2", "train.scheduler.warmup_iters=0")
    records = train(build_method(cfg), cfg, tmp_path / "run")
    assert records and records[0].psnr_y < records[0].bicubic_psnr_y - 3  # Adam at lr 1e6: far below
    warning = [line for line in (tmp_path / "run" / "log.txt").read_text().splitlines() if "WARNING" in line]
    assert len(warning) == 1 and "dB below bicubic on skimage_test x2 bicubic" in warning[0]
    assert warning[0] in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["iteration"] == 2
