"""Arguments of the `%nbento COMMAND` line magics, parsed with argparse and answered in plain
words (no usage dump, no SystemExit inside the kernel)."""

from __future__ import annotations

import argparse
import shlex

from jupyter_ext.capture.cell_args import RaisingParser
from runtime.errors import NbentoError


class CommandArgsError(NbentoError):
    """A `%nbento` line the magic cannot understand."""


class _Parser(RaisingParser):
    error_class = CommandArgsError


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a port is a number, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is between 1 and 65535, got {value}")
    return value


def _parsers() -> dict[str, _Parser]:
    parsers: dict[str, _Parser] = {}
    serve = parsers["serve"] = _Parser(prog="%nbento serve", add_help=False)
    serve.add_argument("--port", type=_port)
    serve.add_argument("--reload", action=argparse.BooleanOptionalAction, default=True)
    export = parsers["export"] = _Parser(prog="%nbento export", add_help=False)
    export.add_argument("target", choices=["k8s"])
    export.add_argument("--out", metavar="DIR")
    export.add_argument("--split-runners", action="store_true")
    for name in ("stop", "status", "show", "build"):
        parsers[name] = _Parser(prog=f"%nbento {name}", add_help=False)
    call = parsers["call"] = _Parser(prog="%nbento call", add_help=False)
    call.add_argument("api", metavar="API")
    call.add_argument("json", metavar="JSON")
    naming = parsers["name"] = _Parser(prog="%nbento name", add_help=False)
    naming.add_argument("name", metavar="NAME")
    naming.add_argument("--notebook", metavar="PATH")
    return parsers


_PARSERS = _parsers()


def parse_command(command: str, args: list[str]) -> argparse.Namespace:
    return _PARSERS[command].parse_args(args)


def split_command(line: str) -> list[str]:
    """Shell-like words; for `call API JSON` the JSON is the raw rest of the line (quotes
    around it optional), so apostrophes inside it need no escaping."""
    parts = line.strip().split(None, 2)
    if len(parts) == 3 and parts[0] == "call":
        body = parts[2].strip()
        if len(body) >= 2 and body[0] == body[-1] and body[0] in "'\"":
            body = body[1:-1]
        return [parts[0], parts[1], body]
    try:
        return shlex.split(line)
    except ValueError as exc:
        raise CommandArgsError(f"cannot read the command line ({exc}): {line}") from None
