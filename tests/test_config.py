import re
import subprocess
import sys

import pytest

from common.config import Config, build, load_config
from common.errors import ConfigError
from conftest import REPO
from mzsr.model import MZSRNet
from registry import METHODS, MODELS, build_method

BASE = """\
method: supervised
model: {type: mzsr_net, channels: 8, num_layers: 3}
train: {total_iters: 10, patch_size: 24, scales: [2]}
"""


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_valid_config_and_overrides(tmp_path):
    cfg = load_config(write(tmp_path, BASE), ["train.total_iters=50", "train.optimizer.lr=1e-3", "val.scales=[3, 4]"])
    assert isinstance(cfg, Config)
    assert cfg.train.total_iters == 50 and cfg.train.optimizer.lr == 1e-3 and cfg.val.scales == [3, 4]
    assert isinstance(build_method(cfg).build_model(), MZSRNet)


@pytest.mark.parametrize("text,overrides,message", [
    (BASE + "trian: {}\n", [], "trian: unknown key; did you mean 'train'?"),
    (BASE, ["train.batch_sz=4"], "train.batch_sz: unknown key; did you mean 'batch_size'?"),
    (BASE, ["train.batch_size=many"], "train.batch_size: expected an integer, got 'many'"),
    (BASE, ["train.amp=fp8"], "train.amp: 'fp8' is not allowed; allowed: 'off', 'bf16', 'fp16'"),
    (BASE, ["train.scales=[0]"], "train.scales: scales must be integers >= 1, got 0"),
    (BASE, ["train.patch_size=3"], "train.patch_size: must be at least twice every scale, got 3 for scale 2"),
    (BASE, ["train.grad_clip_theta=-1"], "train.grad_clip_theta: must be >= 0"),
    (BASE, ["train.optimizer.lr=-1"], "train.optimizer.lr: must be > 0"),
    (BASE, ["train.ema_decay=1.5"], "train.ema_decay: must be in [0, 1)"),
    (BASE.replace("method: supervised\n", ""), [], "method: missing required field"),
    (BASE, ["method=magic"], "method: unknown 'magic'; allowed: bicubic, supervised"),
    ("method: [unclosed\n", [], "not valid YAML"),
])
def test_config_errors_name_the_key(tmp_path, text, overrides, message):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), overrides, METHODS)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_model_options_are_checked_against_the_constructor():
    with pytest.raises(ConfigError, match=r"model.chanels: unknown option for 'mzsr_net' \(allowed: channels, num_layers"):
        build({"type": "mzsr_net", "chanels": 8}, MODELS, "model")
    with pytest.raises(ConfigError, match="model.channels: expected an integer, got 'wide'"):
        build({"type": "mzsr_net", "channels": "wide"}, MODELS, "model")
    with pytest.raises(ConfigError, match="model.type: unknown 'vdsr9'"):
        build({"type": "vdsr9"}, MODELS, "model")


@pytest.mark.parametrize("script,args,message", [
    ("train.py", ["--config", "nope.yaml"], "nope.yaml: config file not found"),
    ("train.py", ["--config", "configs/demo.yaml", "--opt", "train.batchsize=3"], "train.batchsize: unknown key"),
    ("test.py", ["--config", "configs/demo.yaml"], "needs --checkpoint PATH"),
    ("test.py", ["--config", "configs/demo.yaml", "--checkpoint", "missing.pt"], "missing.pt: checkpoint not found"),
    ("test.py", ["--config", "configs/bicubic.yaml", "--dataset", "X=/no/such/folder"], "/no/such/folder: image folder not found"),
    ("train.py", ["--config", "configs/bicubic.yaml"], "has nothing to train"),
])
def test_cli_bad_input_is_one_line_without_traceback(script, args, message):
    proc = subprocess.run([sys.executable, f"scripts/{script}", *args], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    proc = subprocess.run([sys.executable, "scripts/test.py", "--config", "configs/demo.yaml", "--checkpoint", str(bad)],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and "not a readable checkpoint" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("overrides,message", [
    (["val.degradations=[gd_9]"], "val.degradations: unknown degradation 'gd_9'"),
    (["val.scales=[]"], "val.scales: must list scales"),
    (["seed=-1"], "seed: must be in [0, 2**63)"),
    (["model.num_layers=1"], "model: 'mzsr_net' rejected these options"),
])
def test_more_config_errors(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        cfg = load_config(write(tmp_path, BASE), overrides, METHODS)
        build_method(cfg)


def test_yaml_off_means_off(tmp_path):
    assert load_config(write(tmp_path, BASE), ["train.amp=off"]).train.amp == "off"
