import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, run_inline

from srlab.config import Config, build, config_errors, load_config
from srlab.errors import ConfigError, UserError
from srlab.mzsr.model import MZSRNet
from srlab.registry import METHODS, MODELS, build_method

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
    (BASE, ["train.scales=[0]"], "train.scales: must list scales, integers >= 2 (x1 is not super-resolution), got [0]"),
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


# --------------------------------------------------------------------------- values that make no sense
def load_error(path, overrides=()) -> str:
    """The one-line message of the ConfigError that loading ``path`` raises."""
    with pytest.raises(ConfigError) as info:
        load_config(path, list(overrides), METHODS)
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("overrides,message", [
    (["train.scheduler.type=cosine", "train.optimizer.lr=1e-4", "train.scheduler.min_lr=1e-3"],
     "train.scheduler.min_lr: must be <= train.optimizer.lr (0.0001), got 0.001"),
    (["train.scheduler.warmup_iters=11"], "train.scheduler.warmup_iters: must be <= train.total_iters (10), got 11"),
])
def test_schedule_contradictions_are_refused(tmp_path, overrides, message):
    assert message in load_error(write(tmp_path, BASE), overrides)


def test_schedule_limits_are_inclusive(tmp_path):
    cfg = load_config(write(tmp_path, BASE), ["train.scheduler.type=cosine", "train.optimizer.lr=1e-3",
                                              "train.scheduler.min_lr=1e-3", "train.scheduler.warmup_iters=10"])
    s = cfg.train.scheduler
    assert s.min_lr == cfg.train.optimizer.lr and s.warmup_iters == cfg.train.total_iters


@pytest.mark.parametrize("section", ["train", "val", "test"])
@pytest.mark.parametrize("scales", ["[1]", "[2, 1]", "[0]"])
def test_scales_must_be_at_least_two(tmp_path, section, scales):
    message = load_error(write(tmp_path, BASE), [f"{section}.scales={scales}"])
    assert f"{section}.scales: must list scales, integers >= 2 (x1 is not super-resolution), got {scales}" in message


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\\b", "/abs", "../../etc", "C:\\runs", ".hidden", "-rf",
                                  "two words", "x" * 101])
def test_run_name_must_be_one_plain_folder_name(tmp_path, name):
    message = load_error(write(tmp_path, BASE + f"name: {json.dumps(name)}\n"))
    assert f"name: not a plain folder name, got {name!r}; use 1-100 letters, digits, '.', '_' or '-'" in message


def test_plain_run_names_are_accepted(tmp_path):
    for name in ["demo", "vdsr_x234-v2.1", "0", "x" * 100]:
        assert load_config(write(tmp_path, BASE + f"name: '{name}'\n")).name == name


def test_every_shipped_config_loads_and_builds():
    """The rules above hold for what we ship: names, scales, schedules, model sizes."""
    paths = sorted((REPO / "configs").rglob("*.yaml"))
    assert len(paths) > 30
    models = {}
    for path in paths:
        cfg = load_config(path, [], METHODS)
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", cfg.name), path
        if cfg.model:
            models[json.dumps(cfg.model, sort_keys=True)] = path
    for spec in models:
        build(json.loads(spec), MODELS, "model")


@pytest.mark.parametrize("text,message", [
    (BASE + "train: {total_iters: 5}\n", "train: key given twice (line 3 and line 4)"),
    ("method: supervised\ntrain:\n  total_iters: 10\n  batch_size: 4\n  total_iters: 20\n",
     "train.total_iters: key given twice (line 3 and line 5)"),
    ("method: supervised\nval:\n  datasets:\n    - {name: Set5, hr: a, hr: b}\n",
     "val.datasets[0].hr: key given twice (line 4 and line 4)"),
    ("method: supervised\nmodel: {type: mzsr_net, channels: 8, channels: 16}\n",
     "model.channels: key given twice (line 2 and line 2)"),
])
def test_duplicate_keys_are_refused_with_key_and_line(tmp_path, text, message):
    path = write(tmp_path, text)
    assert load_error(path) == f"{path}: {message}; each key may appear once in a mapping"


def test_merge_keys_may_be_overridden_and_aliases_still_work(tmp_path):
    text = BASE + "val: &eval {scales: [3], max_images: 2}\ntest:\n  <<: *eval\n  scales: [4]\n"
    cfg = load_config(write(tmp_path, text))
    assert cfg.val.scales == [3] and cfg.test.scales == [4] and cfg.test.max_images == 2


def test_duplicate_keys_in_an_override_value_are_refused(tmp_path):
    path = write(tmp_path, BASE)
    message = load_error(path, ["train={total_iters: 5, total_iters: 6}"])
    assert message.startswith(f"{path}, --opt train={{total_iters: 5, total_iters: 6}}: "
                              f"train.total_iters: key given twice")


def alias_bomb(levels: int = 9) -> bytes:
    """Each list holds ten aliases of the one before: 10**9 values once expanded, in 11 lines."""
    lines = ["method: supervised", "options:", "  l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"  l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "\n".join(lines).encode()


@pytest.mark.parametrize("content,message", [
    ("method: supervised\nname: caf\u00e9\n".encode("latin-1"),
     "not UTF-8 text (byte 0xe9 at offset 28); a config is YAML saved as UTF-8"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8 text (byte 0x89 at offset 0)"),
    (b"method: " + b"[" * 10_000, "nested more than 50 levels deep at line 1"),
    (b"method: supervised\nmodel: " + b"{a: " * 5_000, "nested more than 50 levels deep at line 2"),
    (b"method: supervised\noptions: &o {a: *o}\n", "options.a: refers to itself through an alias at line 2"),
    (alias_bomb(), "options.l4: expands through aliases to 111111 values 6 levels deep at line 7; "
                   "allowed: 100000 values"),
    (b"method: supervised\n" + b"#" * (1 << 20), "too large for a config, got 1048595 bytes"),
], ids=["latin-1", "binary", "nested-lists", "nested-mappings", "alias-cycle", "alias-bomb", "huge"])
def test_unreadable_config_files_are_one_line(tmp_path, content, message):
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    assert load_error(path).startswith(f"{path}: {message}")


@pytest.mark.parametrize("assignment,key", [
    ("train.total_iters=[1,", "train.total_iters"),
    ("name=[1,", "name"),
    ("val.degradations=[gd_2.0,", "val.degradations"),
    ("train.optimizer={lr: 1", "train.optimizer"),
])
def test_override_values_must_be_valid_yaml(tmp_path, assignment, key):
    path = write(tmp_path, BASE)
    raw = assignment.partition("=")[2]
    message = load_error(path, [assignment])
    assert message.startswith(f"{path}, --opt {assignment}: {key}: not valid YAML (")
    assert message.endswith(f"got {raw!r}; give a YAML value, quoting a string that contains YAML syntax")


def test_quoted_override_strings_and_sections(tmp_path):
    path = write(tmp_path, BASE)
    assert load_config(path, ["name='run-1.5'"]).name == "run-1.5"
    message = load_error(path, ["train.total_iters.x=1"])
    assert message == (f"{path}, --opt train.total_iters.x=1: train.total_iters.x: "
                       f"'train.total_iters' is not a section, got 10; only a mapping has keys to set")


@pytest.mark.parametrize("spec,message", [
    ({"type": "mzsr_net", "channels": 0},
     "model.channels: channels must be >= 1, got 0; sizes and counts of 'mzsr_net' are positive"),
    ({"type": "mzsr_net", "channels": -3}, "model.channels: channels must be >= 1, got -3"),
    ({"type": "mzsr_net", "in_channels": 0}, "model.in_channels: in_channels must be >= 1, got 0"),
    ({"type": "vdsr", "channels": 0}, "model.channels: channels must be >= 1, got 0; sizes and counts of 'vdsr'"),
    ({"type": "asym_vdsr", "num_layers": -1}, "model.num_layers: num_layers must be >= 1, got -1"),
    ({"type": "msrresnet", "in_channels": 0}, "model.in_channels: in_channels must be >= 1, got 0"),
    ({"type": "msrresnet", "nb": -1}, "model.nb: nb must be >= 0, got -1; a count of 'msrresnet', 0 allowed"),
    ({"type": "classsr", "widths": [4, 0]}, "model.widths: widths must be integers >= 1, got [4, 0]"),
    ({"type": "classsr", "tile": 0}, "model.tile: tile must be >= 1, got 0"),
])
def test_model_sizes_and_counts_must_be_positive(spec, message):
    with pytest.raises(ConfigError) as info:
        build(spec, MODELS, "model")
    assert str(info.value).startswith(message)


def test_zero_residual_blocks_is_a_valid_network():
    import torch

    net = build({"type": "msrresnet", "nf": 4, "nb": 0, "scale": 2}, MODELS, "model")
    assert net(torch.rand(1, 3, 8, 8)).shape == (1, 3, 16, 16)


# --------------------------------------------------------------------------- where the bad value came from
def test_errors_name_the_override_that_set_the_value(tmp_path):
    path = write(tmp_path, BASE + "seed: 1\n")
    lr = load_error(path, ["train.total_iters=20", "train.optimizer.lr=-1"])
    assert lr == f"{path}, --opt train.optimizer.lr=-1: train.optimizer.lr: must be > 0, got -1.0"
    # a whole section set by --opt, and a key inside a section that --opt names
    section = load_error(path, ["train={total_iters: 0}"])
    assert section.startswith(f"{path}, --opt train={{total_iters: 0}}: train.total_iters:")
    assert load_error(path, ["train.datasets=[{name: x, hr: a, lr: b, typo: 1}]"]).startswith(
        f"{path}, --opt train.datasets=[{{name: x, hr: a, lr: b, typo: 1}}]: train.datasets[0].typo: unknown key")


def test_errors_name_the_file_when_it_set_the_value(tmp_path):
    path = write(tmp_path, BASE.replace("scales: [2]", "scales: [2], optimizer: {lr: -1}"))
    assert load_error(path, ["train.total_iters=20", "seed=3"]) == f"{path}: train.optimizer.lr: must be > 0, got -1.0"


def test_a_check_across_two_keys_names_the_override_of_either(tmp_path):
    path = write(tmp_path, BASE.replace("scales: [2]", "scales: [2], scheduler: {type: cosine, min_lr: 1.0e-4}"))
    message = load_error(path, ["train.optimizer.lr=1e-5"])
    assert message.startswith(f"{path}, --opt train.optimizer.lr=1e-5: "
                              f"train.scheduler.min_lr: must be <= train.optimizer.lr")


def test_config_errors_attributes_model_errors_raised_after_loading(tmp_path):
    path = write(tmp_path, BASE)
    overrides = ["train.total_iters=20", "model.channels=0"]
    cfg = load_config(path, overrides, METHODS)
    with pytest.raises(ConfigError) as info, config_errors(path, overrides):
        build_method(cfg)
    assert str(info.value).startswith(f"{path}, --opt model.channels=0: model.channels: channels must be >= 1, got 0")
    # a constructor's own refusal ("model: ...") names the overrides inside model
    cfg = load_config(path, ["model.num_layers=1"], METHODS)
    with pytest.raises(ConfigError, match=re.escape(f"{path}, --opt model.num_layers=1: model: 'mzsr_net' rejected")), \
            config_errors(path, ["model.num_layers=1"]):
        build_method(cfg)
    # the same value from the file names only the file; nesting does not prefix twice
    bad = write(tmp_path, BASE.replace("channels: 8", "channels: 0"))
    cfg = load_config(bad, ["seed=2"], METHODS)
    with pytest.raises(ConfigError) as info, config_errors(bad, ["seed=2"]), config_errors(bad, ["seed=2"]):
        build_method(cfg)
    assert str(info.value).startswith(f"{bad}: model.channels: channels must be >= 1, got 0")
    # errors load_config raised already name their source: wrapping it does not prefix twice
    with pytest.raises(ConfigError) as info, config_errors(bad, ["train.optimizer.lr=-1"]):
        load_config(bad, ["train.optimizer.lr=-1"])
    assert str(info.value).startswith(f"{bad}, --opt train.optimizer.lr=-1: train.optimizer.lr:")
    with pytest.raises(ConfigError) as info, config_errors(tmp_path / "none.yaml"):
        load_config(tmp_path / "none.yaml")
    assert str(info.value) == f"{tmp_path / 'none.yaml'}: config file not found"
    # anything else passes through untouched
    with pytest.raises(KeyError), config_errors(bad):
        raise KeyError("x")


@pytest.mark.parametrize("content,args,message", [
    (b"method: " + b"[" * 10_000, [], "nested more than 50 levels deep"),
    (BASE.encode(), ["--opt", "train.total_iters=[1,"],
     "--opt train.total_iters=[1,: train.total_iters: not valid YAML"),
    (BASE.encode(), ["--opt", "model.channels=0"],
     "--opt model.channels=0: model.channels: channels must be >= 1, got 0"),
], ids=["nested", "opt-not-yaml", "model-zero-channels"])
def test_cli_refuses_nonsense_configs_in_one_line(tmp_path, content, args, message):
    path = tmp_path / "c.yaml"
    path.write_bytes(content)
    proc = run_inline("train.py", "--config", path, "--out", tmp_path / "run", *args)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}") and message in lines[0], proc.stderr


def test_paths_in_a_config_file_are_relative_to_it_and_command_line_ones_to_the_current_folder(tmp_path, monkeypatch):
    import numpy as np
    from conftest import write_png

    from srlab.data import resolve_files

    folder = tmp_path / "project" / "configs"
    folder.mkdir(parents=True)
    np.save(folder / "k.npy", np.full((3, 3), 1 / 9))
    (folder / "c.yaml").write_text(
        "method: classsr\nmodel: {type: classsr, nb: 1, widths: [4, 6, 8], scale: 4}\n"
        "options: {init: ../runs/s2.pt, branches: [b0.pt, /abs/b1.pt, $SR_DATA_ROOT/b2.pt]}\n"
        "test:\n  datasets: [Set5, {name: mine, hr: ../photos}, {name: data, hr: $SR_DATA_ROOT/mine}]\n"
        "  degradations: [bicubic, k.npy, 'bicubic:k.npy']\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(folder / "c.yaml", ["options.baseline=o.pt"], METHODS)
    resolved = lambda p: str(Path(p).resolve())  # noqa: E731
    assert resolved(cfg.options["init"]) == str((tmp_path / "project" / "runs" / "s2.pt").resolve())
    assert cfg.options["branches"] == [str(folder.resolve() / "b0.pt"), "/abs/b1.pt", "$SR_DATA_ROOT/b2.pt"]
    assert cfg.options["baseline"] == "o.pt"  # given on the command line: the current folder's
    assert [d.name for d in cfg.test.datasets] == ["Set5", "mine", "data"] and cfg.test.datasets[0].hr is None
    assert resolved(cfg.test.datasets[1].hr) == str((tmp_path / "project" / "photos").resolve())
    assert cfg.test.degradations == ["bicubic", str(folder.resolve() / "k.npy"), f"bicubic:{folder.resolve() / 'k.npy'}"]
    write_png(tmp_path / "root" / "mine" / "a.png", np.zeros((8, 8, 3), np.uint8))
    monkeypatch.setenv("SR_DATA_ROOT", str(tmp_path / "root"))
    assert resolve_files("data", cfg.test.datasets[2].hr, "benchmarks") == [tmp_path / "root" / "mine" / "a.png"]


def test_the_shipped_test_configs_point_at_shipped_weights_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for config, key in [("classsr/test_x4_cpu.yaml", "baseline"), ("mzsr/test_x2_cpu.yaml", "pretrained")]:
        cfg = load_config(REPO / "configs" / config, [], METHODS)
        assert Path(cfg.options[key]).is_file(), (config, cfg.options[key])
        build_method(cfg)


def test_resume_sees_a_file_option_named_relative_to_the_config_as_the_same_file(tmp_path, monkeypatch):
    """Runs saved before paths were config-relative hold "runs/..." (from the current folder); the
    same file named from the config's folder is no change (a changed file still is)."""
    from srlab.classsr.methods import BranchOptions
    from srlab.config import to_dict
    from srlab.resume import config_changes

    monkeypatch.chdir(tmp_path)
    (tmp_path / "configs" / "classsr").mkdir(parents=True)
    cfg = load_config(REPO / "configs" / "classsr" / "branch0_x4_cpu.yaml", [], METHODS)
    saved = to_dict(cfg)
    saved["options"] = {**saved["options"], "split": "runs/classsr_split_x4_cpu.json",
                        "init": "runs/classsr_msrresnet36_all_x4_cpu/checkpoints/last.pt"}
    cfg.options["split"] = str(tmp_path / "configs" / "classsr" / ".." / ".." / "runs" / "classsr_split_x4_cpu.json")
    cfg.options["init"] = saved["options"]["init"]
    assert config_changes(saved, cfg, "last.pt", BranchOptions, ("init",)) == []
    cfg.options["split"] = "runs/another_split.json"
    with pytest.raises(UserError, match="cannot resume with a changed options.split"):
        config_changes(saved, cfg, "last.pt", BranchOptions, ("init",))
