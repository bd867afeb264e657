"""A training run's folder: never overwritten by accident, never written by two runs at once.

``RunFolder(path)`` looks (read-only) at what the folder holds; ``check_start(resume, overwrite)``
refuses to start a new run over an old one unless the user said ``--resume`` or ``--overwrite``;
``lock()`` takes the folder for this process with a lock file holding its pid, host and start
time. A lock left by a process that is gone (same host, pid not running) is taken over with a
warning; a live one, or one from another host, is a one-line error. Under the lock, ``clear()``
(``--overwrite``) removes what an earlier run wrote and ``remove_orphans()`` the temporary files
of interrupted saves.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import time
import warnings
from pathlib import Path

from common.errors import UserError
from common.outputs import check_output_dir, pid_alive, remove_orphans

LOCK_NAME = ".lock"
# What a run writes into its folder; ``--overwrite`` removes exactly these, nothing else.
RUN_FILES = ("config.yaml", "log.txt")
RUN_FOLDERS = ("checkpoints", "tb")


class RunFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.lock_path = self.path / LOCK_NAME

    def holds_a_run(self) -> bool:
        return any((self.path / f).exists() for f in RUN_FILES) or any(self.checkpoints.glob("*.pt"))

    def check_start(self, resume: str | None, overwrite: bool) -> None:
        """Before anything is written: may a run start (or continue) here?"""
        if resume and overwrite:
            raise UserError("--resume and --overwrite exclude each other: continue the run, or start it over")
        check_output_dir(self.path)
        if resume or overwrite or not self.holds_a_run():
            return
        last = self.checkpoints / "last.pt"
        what = "a checkpoint" if last.exists() else "an earlier run"
        raise UserError(f"{self.path} already holds {what}; continue it with --resume auto, start over "
                        f"with --overwrite (deletes its checkpoints, log and TensorBoard files), or use another --out")

    def lock(self) -> None:
        """Take the folder for this process; ``unlock()`` gives it back."""
        self.path.mkdir(parents=True, exist_ok=True)
        self._owner_record = {"pid": os.getpid(), "host": socket.gethostname(),
                              "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(2):  # a second try after taking over a stale lock
            try:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(self._owner_record, f)
            return
        raise UserError(f"{self.lock_path}: could not take the lock")  # pragma: no cover - a race lost twice

    def unlock(self) -> None:
        if getattr(self, "_owner_record", None) is not None and self._owner() == self._owner_record:
            self.lock_path.unlink(missing_ok=True)
        self._owner_record = None

    def _owner(self) -> dict | None:
        try:
            return json.loads(self.lock_path.read_text())
        except (OSError, ValueError):
            return None

    def _take_over_if_stale(self) -> None:
        owner = self._owner()
        if owner is None:  # unreadable: a process died between creating and writing it
            age = time.time() - self.lock_path.stat().st_mtime if self.lock_path.exists() else 0
            if age < 10:  # or it is being written right now
                raise UserError(f"{self.path} is being taken by another run (lock file {self.lock_path})")
        elif owner.get("host") != socket.gethostname() or pid_alive(int(owner.get("pid", -1))):
            raise UserError(f"{self.path} is in use by another run (pid {owner.get('pid')} on {owner.get('host')}, "
                            f"since {owner.get('started')}); wait for it, or use another --out. If that process "
                            f"is gone, delete {self.lock_path}")
        warnings.warn(f"taking over the lock of {self.path}, left by a process that is gone ({owner})", stacklevel=3)
        self.lock_path.unlink(missing_ok=True)

    def clear(self) -> list[str]:
        """``--overwrite``: remove what an earlier run wrote here (call under the lock)."""
        removed = []
        for name in RUN_FILES:
            if (self.path / name).exists():
                (self.path / name).unlink()
                removed.append(name)
        for name in RUN_FOLDERS:
            if (self.path / name).exists():
                shutil.rmtree(self.path / name)
                removed.append(name + "/")
        return removed

    def remove_orphans(self) -> list[Path]:
        """Temporary files of saves that a dead process left (call under the lock)."""
        return remove_orphans(self.checkpoints) + remove_orphans(self.path)
