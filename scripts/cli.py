"""What the command-line scripts share: the one-line error handling."""
from __future__ import annotations

import functools
import sys
import warnings

from common.errors import UserError


def main_guard(fn=None, *, interrupted: str = "nothing was written"):
    """Run ``fn``; a ``UserError`` becomes one line on stderr and exit status 2 (no traceback),
    Ctrl-C one line saying what happened to the output (``interrupted``) and exit status 130."""
    if fn is None:
        return functools.partial(main_guard, interrupted=interrupted)

    @functools.wraps(fn)
    def wrapper() -> None:
        warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"
        try:
            fn()
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print(f"\ninterrupted (Ctrl-C): {interrupted}", file=sys.stderr)
            sys.exit(130)

    return wrapper


def add_json_output(parser, flag: str, default: str | None) -> None:
    """``flag`` (a JSON results file) and ``--overwrite``; check them with ``json_output``."""
    parser.add_argument(flag, default=default, help=f"results as JSON (default: {default})")
    parser.add_argument("--overwrite", action="store_true", help=f"replace {flag} if it exists")


def json_output(path: str | None, flag: str, overwrite: bool):
    """The checked output path (or None): done before the timing starts, so no result is lost."""
    from common.outputs import check_output_file

    return None if path is None else check_output_file(path, flag, suffixes=[".json"], overwrite=overwrite)
