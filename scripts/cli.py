"""What train.py and test.py share: argument parsing helpers and the one-line error handling."""
from __future__ import annotations

import functools
import sys
import warnings

from common.errors import UserError


def main_guard(fn):
    """Run ``fn``; a ``UserError`` becomes one line on stderr and exit status 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper() -> None:
        warnings.formatwarning = lambda message, category, *args, **kwargs: f"warning: {message}\n"
        try:
            fn()
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)

    return wrapper
