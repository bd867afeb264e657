"""The installed ``srlab`` command: its subcommands are the scripts' code, reached without
``scripts/`` on the path."""
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

from srlab.cli import COMMANDS, main


def test_srlab_lists_its_commands_and_runs_them(tmp_path):
    srlab = shutil.which("srlab")
    if srlab is None:
        pytest.skip("the package is not installed (pip install -e .)")
    listing = subprocess.run([srlab, "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert listing.returncode == 0
    for command in COMMANDS:
        assert f"srlab {command}" in listing.stdout
    # From another folder, with nothing of the repository on the path: the installed code runs.
    test = subprocess.run([srlab, "test", "--config", str(REPO / "configs" / "bicubic.yaml"), "--dataset",
                           f"mine={tmp_path / 'missing'}", "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert test.returncode == 2 and test.stderr.startswith("error: ")
    assert "missing: image folder not found" in test.stderr


def test_every_command_imports_and_has_help(capsys):
    for command in COMMANDS:
        with pytest.raises(SystemExit) as exit_:
            main([*command.split(), "--help"])
        assert exit_.value.code == 0, command
        assert capsys.readouterr().out.startswith(f"usage: srlab {command}"), command


def test_unknown_commands_are_one_line_and_list_the_commands(capsys):
    for argv in (["nope"], ["benchmark"], ["benchmark", "nope"]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.startswith(f"error: unknown command {' '.join(argv[:2])!r}")
        assert "srlab train" in err


def test_python_dash_m_works_too(tmp_path):
    result = subprocess.run([sys.executable, "-m", "srlab.cli", "--help"], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 0 and "srlab benchmark degradation" in result.stdout


def test_common_does_not_import_a_method_family():
    code = ("import sys, srlab.registry, srlab.cli, srlab.runner, srlab.commands.train, srlab.commands.test; "
            "print(sorted(m for m in ('mzsr', 'asymsr', 'classsr') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


def test_gpu_bringup_script_checks_its_arguments_then_runs_every_step_of_a_part(tmp_path):
    """The prepared GPU call (README, "On a GPU") refuses a wrong part, missing data and an OUT it
    would overwrite, each in one line and before it runs anything; then each step of a part runs
    (here a stand-in python that succeeds or fails at once) and gets its line in steps.tsv."""
    if shutil.which("bash") is None or shutil.which("timeout") is None:
        pytest.skip("needs bash and coreutils' timeout")
    script = REPO / "scripts" / "gpu_bringup.sh"
    data = tmp_path / "data"
    (data / "benchmarks" / "Set5" / "HR").mkdir(parents=True)

    def run(*args, root=tmp_path / "nowhere", python="true"):
        return subprocess.run(["bash", str(script), *map(str, args)], capture_output=True, text=True,
                              env={"PATH": "/usr/bin:/bin", "SR_DATA_ROOT": str(root), "PYTHON": python})

    wrong = run(tmp_path / "a", "bench")
    assert wrong.returncode == 2
    assert wrong.stderr == "gpu_bringup: part must be checks, training, compile or all, got 'bench'\n"
    no_data = run(tmp_path / "b", "checks")
    assert no_data.returncode == 2 and "has no benchmarks/Set5/HR" in no_data.stderr
    assert not (tmp_path / "b" / "steps.tsv").exists()
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "steps.tsv").write_text("cuda_equivalence\t0\t60\n")
    again = run(tmp_path / "c", "checks", root=data)
    assert again.returncode == 2 and "steps.tsv exists" in again.stderr
    assert (tmp_path / "c" / "steps.tsv").read_text() == "cuda_equivalence\t0\t60\n"

    done = run(tmp_path / "d", "training", root=data)
    lines = [line.split("\t") for line in (tmp_path / "d" / "steps.tsv").read_text().splitlines()]
    assert [name for name, _, _ in lines] == ["training_vdsr_x234", "training_asym_vdsr_x234", "training_pretrain_x2",
                                              "training_msrresnet_o_x4", "training_meta_x2"]
    assert all(rc == "0" for _, rc, _ in lines) and done.stdout.endswith("5 steps, 0 failed\n")
    configs = next(line for line in script.read_text().splitlines() if line.startswith("configs="))
    assert all((REPO / "configs" / f"{name}.yaml").is_file() for name in configs.split('"')[1].split())
    failed = run(tmp_path / "e", "checks", root=data, python="false")  # every step fails; all of them still run
    assert len((tmp_path / "e" / "steps.tsv").read_text().splitlines()) == 8
    assert failed.stdout.endswith("8 steps, 8 failed\n")
