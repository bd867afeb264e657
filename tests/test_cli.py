"""The installed ``srlab`` command: its subcommands are the scripts' code, reached without
``scripts/`` on the path."""
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

from common.cli import COMMANDS, main


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
    result = subprocess.run([sys.executable, "-m", "common.cli", "--help"], capture_output=True, text=True,
                            cwd=tmp_path)
    assert result.returncode == 0 and "srlab benchmark degradation" in result.stdout


def test_common_does_not_import_a_method_family():
    code = ("import sys, common.registry, common.cli, common.runner, common.commands.train, common.commands.test; "
            "print(sorted(m for m in ('mzsr', 'asymsr', 'classsr') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr
