"""A training run's folder: never overwritten by accident, never written by two runs at once.

``RunFolder(path)`` looks (read-only) at what the folder holds; ``check_start(resume, overwrite)``
refuses to start a new run over an old one unless the user said ``--resume`` or ``--overwrite``.
``lock()`` takes the folder for this process: an exclusive ``flock`` on ``<run>/.lock``, which the
kernel releases when the process ends however it ends (so a lock is never stale, whatever pids and
host names containers give), and which holds the owner's pid, host and start time for the message
a second run gets. Under the lock, ``clear()`` (``--overwrite``) removes what an earlier run wrote
and ``remove_orphans()`` the temporary files of interrupted saves.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import time
from pathlib import Path

from srlab.errors import UserError
from srlab.outputs import check_output_dir, remove_orphans, resolved

LOCK_NAME = ".lock"
# What a run writes into its folder; ``--overwrite`` removes exactly these, nothing else.
RUN_FILES = ("config.yaml", "log.txt")
RUN_FOLDERS = ("checkpoints", "tb")


class RunFolder:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.lock_path = self.path / LOCK_NAME
        self._lock_fd: int | None = None
        self.took_over: str | None = None  # who left the lock file that lock() found unheld

    def holds_a_run(self) -> bool:
        return any((self.path / f).exists() for f in RUN_FILES) or any(self.checkpoints.glob("*.pt"))

    def check_start(self, resume: str | None, overwrite: bool) -> None:
        """Before anything is written: may a run start (or continue) here?

        ``--resume auto`` continues this folder's run; ``--resume PATH`` continues the run of that
        checkpoint, here if the folder is empty, the checkpoint is its own, or ``--overwrite`` clears
        the folder first."""
        own = bool(resume) and resume != "auto" and resolved(resume).parent == resolved(self.checkpoints)
        if overwrite and (resume == "auto" or own):
            raise UserError("--resume and --overwrite exclude each other here: --overwrite would delete the "
                            "checkpoint to continue; continue the run, or start it over")
        check_output_dir(self.path)
        if overwrite or not self.holds_a_run() or resume == "auto" or own:
            return
        what = "a checkpoint" if (self.checkpoints / "last.pt").exists() else "an earlier run"
        if resume:
            raise UserError(f"{self.path} already holds {what} of another run; to continue {resume} there, "
                            f"pass --overwrite as well (deletes that run's checkpoints, log and TensorBoard files), "
                            f"or give an empty --out")
        raise UserError(f"{self.path} already holds {what}; continue it with --resume auto, start over "
                        f"with --overwrite (deletes its checkpoints, log and TensorBoard files), or use another --out")

    def lock(self) -> None:
        """Take the folder for this process; ``unlock()`` (or the process's end) gives it back."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            while self._lock_fd is None:
                fd = os.open(self.lock_path, os.O_CREAT | os.O_RDWR, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    raise UserError(f"{self.path} is in use by another run ({self._owner()}); wait for it to "
                                    f"end, or use another --out") from None
                # The owner before us may have removed the file between our open and our flock:
                # then we hold a lock on a file nobody else can see, and must try again.
                if not self.lock_path.exists() or os.stat(self.lock_path).st_ino != os.fstat(fd).st_ino:
                    os.close(fd)
                    continue
                self._lock_fd = fd
            # A lock file nobody holds: its run ended without removing it (killed, or a power cut).
            self.took_over = self._owner() if os.fstat(self._lock_fd).st_size else None
            owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
            os.ftruncate(self._lock_fd, 0)
            os.write(self._lock_fd, json.dumps(owner).encode())
        except OSError as exc:
            self.unlock()
            raise UserError(f"{self.lock_path}: cannot take the run folder ({exc.strerror or exc})") from None

    def unlock(self) -> None:
        if self._lock_fd is not None:
            self.lock_path.unlink(missing_ok=True)  # while still holding it: see lock()
            os.close(self._lock_fd)
            self._lock_fd = None

    def _owner(self) -> str:
        try:
            owner = json.loads(self.lock_path.read_text())
            return f"pid {owner['pid']} on {owner['host']}, since {owner['started']}"
        except (OSError, ValueError, KeyError, TypeError):
            return f"lock file {self.lock_path}"

    def clear(self) -> list[str]:
        """``--overwrite``: remove what an earlier run wrote here (call under the lock)."""
        removed = []
        try:
            for name in RUN_FILES:
                if (self.path / name).exists():
                    (self.path / name).unlink()
                    removed.append(name)
            for name in RUN_FOLDERS:
                if (self.path / name).exists():
                    shutil.rmtree(self.path / name)
                    removed.append(name + "/")
        except OSError as exc:
            raise UserError(f"--overwrite: cannot remove the earlier run in {self.path} ({exc})") from None
        return removed

    def remove_orphans(self) -> list[Path]:
        """Temporary files of saves that died half-way (under the lock every other writer is gone)."""
        return remove_orphans(self.checkpoints) + remove_orphans(self.path)
