"""Where the CLI's long steps (Bento build, model copy, containerize) say what they are doing."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable


def progress_printer(args: argparse.Namespace) -> Callable[[str], None]:
    """stderr at `--log-level info` (the default) or `debug`, nowhere above: stdout stays for
    the result (a table, JSON, the next command to run)."""
    level = getattr(args, "log_level", None) or "info"
    if logging.getLevelName(level.upper()) > logging.INFO:
        return lambda _line: None
    return lambda line: print(line, file=sys.stderr, flush=True)
