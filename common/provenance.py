"""Where a result came from: the header of ``results.json``, and ``provenance.json`` in a run folder.

``provenance(...)`` records what a reader needs to trust or reproduce a number: the command, the
resolved config, the checkpoint (path and SHA-256), the code (the package version and, in a git
checkout, the commit and whether it had uncommitted changes), the software (Python, torch, CUDA)
and the hardware (device, its model name, threads), and the date.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def code_version() -> dict:
    """The package version, and the git commit when running from a checkout (``dirty``: uncommitted changes)."""
    try:
        version = metadata.version("srlab")
    except metadata.PackageNotFoundError:
        version = None
    info = {"version": version, "git_commit": None, "git_dirty": None}
    if (REPO_ROOT / ".git").exists():
        try:
            run = lambda *args: subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True,  # noqa: E731
                                               text=True, timeout=10)
            commit = run("rev-parse", "HEAD")
            if commit.returncode == 0:
                info["git_commit"] = commit.stdout.strip()
                info["git_dirty"] = bool(run("status", "--porcelain", "--untracked-files=no").stdout.strip())
        except (OSError, subprocess.TimeoutExpired):  # no git on this machine
            pass
    return info


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:  # the CPU model, as the timing tables name it
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def provenance(config: dict | None = None, checkpoint: str | Path | None = None,
               device: torch.device | str = "cpu") -> dict:
    return {
        "command": " ".join(sys.argv),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "checkpoint": None if checkpoint is None else {"path": str(checkpoint), "sha256": sha256(checkpoint)},
        "config": config,
        "code": code_version(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "device": str(device),
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
    }


def record_start(path: Path, header: dict, fresh: bool = False) -> None:
    """Append ``header`` to a run folder's ``provenance.json``: one entry per start or resume.
    ``fresh`` (``--overwrite``): the earlier run's entries go with its checkpoints."""
    from srlab.checkpoint import save_json

    try:
        starts = json.loads(path.read_text()) if path.exists() and not fresh else []
    except (OSError, ValueError):
        starts = []  # a damaged file: start the history again rather than stop the run
    save_json([*starts, header] if isinstance(starts, list) else [header], path, indent=1)
