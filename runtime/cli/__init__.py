"""The `nbento` command. Each sub-command group lives in its own module with a
`register(subparsers)` function; this module only wires them and maps errors to exit codes:
0 success, 1 a user error (an `NbentoError`, printed as one readable line), 2 usage errors.

`nbento` alone prints the help; `nbento --version` the version; `--log-level` sets how much
goes to stderr (long steps print their progress there at `info`, the default)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from runtime.errors import NbentoError
from runtime.version import __version__

# Sub-command modules, in the order `nbento --help` lists them.
_GROUPS = ("models", "serve", "capture", "build")
LOG_LEVELS = ("debug", "info", "warning", "error")
# Read by the server's logging setup, and inherited by the processes nbento starts.
LOG_LEVEL_ENV = "NBENTO_LOG_LEVEL"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nbento",
        description="Notebook cells as a batched model service: store, serve, build, export.",
        epilog="`nbento COMMAND --help` describes a command. In a notebook: %load_ext nbento.",
    )
    parser.add_argument("--version", action="version", version=f"nbento {__version__}")
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, type=str.lower, default=None,
        help=f"how much to say on stderr (default info, or ${LOG_LEVEL_ENV}); "
        "progress of long steps shows at info",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in _GROUPS:
        try:
            module = importlib.import_module(f"{__name__}.{group}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{group}":
                raise
            continue  # a group not written yet
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # `nbento` alone: what it can do, not a usage error
        parser.print_help()
        return 0
    level = args.log_level or os.environ.get(LOG_LEVEL_ENV, "info").lower()
    if level not in LOG_LEVELS:
        parser.error(f"${LOG_LEVEL_ENV} must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    args.log_level = level
    previous = os.environ.get(LOG_LEVEL_ENV)
    os.environ[LOG_LEVEL_ENV] = level  # for the server's logging and the processes it starts
    try:
        code = args.func(args)
    except NbentoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `nbento ... | head` stopped reading: no traceback for that
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    finally:  # main() also runs in-process (tests, the kernel's server): leave no trace
        if previous is None:
            os.environ.pop(LOG_LEVEL_ENV, None)
        else:
            os.environ[LOG_LEVEL_ENV] = previous
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
