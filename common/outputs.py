"""Writing results without losing any: paths checked before the work, files written atomically.

* ``check_output_file`` / ``check_output_dir``: called by every command *before* its long work, so
  a typo in ``--out`` costs a second, not an hour. A file output must not exist (unless the user
  said ``--overwrite``), must not be one of the command's inputs, must have a suffix the writer
  knows, and its folder must be creatable and writable.
* ``atomic_write(path, write)``: ``write(file)`` fills a temporary file in the same folder, which is
  flushed to disk and renamed over ``path``. A crash, a full disk or a read-only folder leaves the
  previous file as it was; the failure is one line (``UserError``), not a traceback.
* ``remove_orphans(folder)``: temporary files left by a process that died mid-write.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Iterable

from srlab.errors import UserError

# The temporary name of ``path`` while process ``pid`` writes it: hidden, next to it, pid-tagged
# (two processes never share one; an orphan names the process that left it).
_TEMP = re.compile(r"^\.(?P<name>.+)\.tmp(?P<pid>\d+)$")


def temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def atomic_write(path: str | Path, write: Callable[[object], None]) -> None:
    """Write ``path`` through a temporary file; a failed write (``OSError``, or the ``RuntimeError``
    torch.save raises on a full disk) becomes one line and ``path`` is unchanged."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as RuntimeError ("unexpected pos")
        kept = "the previous file is unchanged" if path.exists() else "nothing was written"
        reason = getattr(exc, "strerror", None) or str(exc).strip().split("\n")[0][:200] or type(exc).__name__
        raise UserError(f"cannot write {path} ({reason}); {kept}") from None
    finally:
        tmp.unlink(missing_ok=True)


def remove_orphans(folder: str | Path) -> list[Path]:
    """Delete the temporary files in ``folder`` left by other processes; returns them.

    Call it only where no other process can be writing (a run folder under its lock)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for f in folder.iterdir():
        match = _TEMP.match(f.name)
        if match and int(match["pid"]) != os.getpid():
            f.unlink(missing_ok=True)
            removed.append(f)
    return removed


def resolved(path: str | Path) -> Path:
    """``path`` made absolute with its links followed; a link that leads back to itself is one line."""
    try:
        return Path(path).resolve()
    except (RuntimeError, OSError) as exc:  # Python raises RuntimeError("Symlink loop from ...") on loops
        raise UserError(f"{path}: a symbolic link that leads back to itself ({exc})") from None


def _writable_folder(folder: Path, what: str) -> None:
    """``folder`` exists as a writable folder, or can be created (its nearest existing parent is one)."""
    probe = folder
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{what} {folder}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"{what} {folder}: {probe} is not writable")


def check_output_dir(path: str | Path, what: str = "--out") -> Path:
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path}: is a file; give a folder")
    _writable_folder(path, what)
    return path


def check_output_file(path: str | Path, what: str = "--out", inputs: Iterable[str | Path] = (),
                      suffixes: Iterable[str] | None = None, overwrite: bool = False) -> Path:
    """Check an output file before the work; ``suffixes``: the ones its writer knows (any if None)."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path}: is a folder; give a file name")
    if suffixes is not None:
        suffixes = tuple(suffixes)
        if path.suffix.lower() not in suffixes:
            raise UserError(f"{what} {path}: unknown file type {path.suffix!r}; allowed: {', '.join(suffixes)}")
    for source in inputs:
        source = Path(source)
        if resolved(path) == resolved(source) or (path.exists() and source.exists() and path.samefile(source)):
            raise UserError(f"{what} {path}: is an input of this command ({source}); write somewhere else")
    if path.exists() and not overwrite:
        raise UserError(f"{what} {path}: exists; pass --overwrite to replace it, or choose another name")
    _writable_folder(path.parent, what)
    return path
