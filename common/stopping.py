"""How a training run stops without losing work: stop signals, dead data-loader workers, full disks.

Ctrl-C and SIGTERM do not kill the process: ``stop_requests`` turns them into a flag that the
training loop (``srlab.runner``) checks between iterations, so it finishes the iteration, saves and
raises ``Interrupted``. A data-loader worker killed from outside (``worker_died``) and a disk that
fills up (``DISK_ERRORS``) end the run with one line instead of a traceback; a non-finite loss ends
it with ``TrainingStopped`` before anything is saved.
"""
from __future__ import annotations

import contextlib
import errno
import signal
import threading

import torch

from srlab.errors import UserError


class TrainingStopped(UserError):
    """The run cannot go on (non-finite loss); the last good checkpoint, if one was written, is kept."""


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: a checkpoint was saved; the CLI exits with 128 + the signal number."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(f"stopped by signal {signum}")
        self.signum = int(signum)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)  # Ctrl-C, and what SLURM, Docker and systemd send


@contextlib.contextmanager
def stop_requests():
    """Ctrl-C and SIGTERM set the flag this yields (to the signal's number) instead of killing the
    process, so the loop can finish its iteration, save and stop. A second Ctrl-C stops at once; a
    second SIGTERM does not (torchrun forwards the one SLURM sent: a save must not be cut short).
    Outside the main thread (a notebook's worker thread) there are no signals to catch."""
    flag = torch.zeros((), dtype=torch.int32)
    previous = {}

    def request_stop(signum, frame):
        flag.fill_(signum)
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, previous[signal.SIGINT])

    if threading.current_thread() is threading.main_thread():
        # A handler installed from C shows as None and cannot be put back: the default then.
        previous = {sig: signal.getsignal(sig) or signal.SIG_DFL for sig in STOP_SIGNALS}
        for sig in STOP_SIGNALS:
            signal.signal(sig, request_stop)
            # Restart interrupted system calls: a signal that lands while a rank waits in a gloo or
            # NCCL socket call must not surface there as an error (it crashed a rank mid-collective).
            signal.siginterrupt(sig, False)
    try:
        yield flag
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def ignore_sigterm(worker_id: int) -> None:
    """Data-loader workers leave SIGTERM to the main process (PyTorch already has them ignore
    Ctrl-C): SLURM and systemd signal the whole process group, and a worker that died of it first
    would turn a clean stop into a failure. A ``DataLoader``'s ``worker_init_fn``."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def worker_died(exc: RuntimeError) -> bool:
    """PyTorch's words for a data-loader worker that was killed (the OOM killer's SIGKILL, mostly);
    an exception raised *inside* a worker is a bug and keeps its traceback."""
    message = str(exc)
    return "DataLoader worker" in message and ("killed by signal" in message or "exited unexpectedly" in message)


# A full disk, a quota, a read-only or vanished file system: not the run's fault, and not a bug.
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EIO)


@contextlib.contextmanager
def quiet_disk_errors_in_threads():
    """TensorBoard writes from a thread of its own. On a full or read-only disk that thread would
    print a traceback of its own; the loop's next write then fails too and says it in one line."""
    previous = threading.excepthook

    def hook(args):
        if not (isinstance(args.exc_value, OSError) and args.exc_value.errno in DISK_ERRORS):
            previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous
