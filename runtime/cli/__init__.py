"""The `nbento` command. Each sub-command group lives in its own module with a
`register(subparsers)` function; this module only wires them and maps errors to exit codes:
0 success, 1 a user error (an `NbentoError`, printed as one readable line), 2 usage errors."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from runtime.errors import NbentoError

# Sub-command modules, in the order `nbento --help` lists them.
_GROUPS = ("models", "serve", "capture", "build")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nbento",
        description="Notebook cells as a batched model service: store, serve, build, export.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
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
    try:
        code = args.func(args)
    except NbentoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
