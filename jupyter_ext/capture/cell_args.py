"""The arguments of a capture cell, in one parser shared by the live magics, offline capture
(magic lines and `nbento:` cell tags) and cell metadata written by the JupyterLab panel.

    %%nbento preprocess
    %%nbento model NAME [--var VAR] [--batchable m1,m2] [--batch-dim 0] [--label k=v]
    %%nbento api NAME [--batchable] [--max-batch-size N] [--max-latency-ms N]
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field
from typing import Any

from runtime.errors import NbentoError

KINDS = ("preprocess", "model", "api")
MAGIC_PREFIX = "%%nbento"
TAG_PREFIX = "nbento:"


class CaptureArgsError(NbentoError):
    """A `%%nbento` line, an `nbento:` tag or `metadata.nbento` that cannot be understood."""


@dataclass(frozen=True)
class CellSpec:
    """What a capture cell asks for: its kind, its name and the options of that kind."""

    kind: str
    name: str | None = None
    # api: batchable, max_batch_size, max_latency_ms; model: var, batchable (list), batch_dim,
    # labels (dict). Only options the user gave are present, so rendering stays stable.
    options: dict[str, Any] = field(default_factory=dict)


class RaisingParser(argparse.ArgumentParser):
    """argparse that raises `error_class` with a readable message instead of printing usage
    and exiting (no SystemExit inside a kernel)."""

    error_class: type[Exception] = CaptureArgsError

    def error(self, message: str) -> Any:
        raise self.error_class(f"{message}. Usage: {self._one_line_usage()}")

    def exit(self, status: int = 0, message: str | None = None) -> Any:
        raise self.error_class(message or f"Usage: {self._one_line_usage()}")

    def _one_line_usage(self) -> str:
        # argparse wraps long usages; a magic's error is said on one line.
        return " ".join(self.format_usage().split()[1:])



def _whole_number(text: str, minimum: int, too_small: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(too_small.format(value=value))
    return value


def _positive_int(text: str) -> int:
    return _whole_number(text, 1, "expected a number of at least 1, got {value}")


def _non_negative_int(text: str) -> int:
    return _whole_number(text, 0, "expected 0 or more, got {value}")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of milliseconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected more than 0 ms, got {text}")
    return value


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"labels are written key=value, got {text!r}")
    return key, value


def _parsers() -> dict[str, RaisingParser]:
    pre = RaisingParser(prog="%%nbento preprocess", add_help=False)
    model = RaisingParser(prog="%%nbento model", add_help=False)
    model.add_argument("name", metavar="NAME")
    model.add_argument("--var", metavar="VAR")
    model.add_argument("--batchable", metavar="m1,m2")
    model.add_argument("--batch-dim", type=_non_negative_int, metavar="N")
    model.add_argument("--label", type=_label, action="append", metavar="k=v")
    api = RaisingParser(prog="%%nbento api", add_help=False)
    api.add_argument("name", metavar="NAME")
    api.add_argument("--batchable", action="store_true")
    api.add_argument("--max-batch-size", type=_positive_int, metavar="N")
    api.add_argument("--max-latency-ms", type=_positive_float, metavar="N")
    return {"preprocess": pre, "model": model, "api": api}


_PARSERS = _parsers()


def parse_cell_args(text: str) -> CellSpec:
    """Parse what follows `%%nbento` (or `nbento:` in a tag): `api classify --batchable`."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise CaptureArgsError(f"cannot read {text!r}: {exc}") from None
    if not words:
        raise CaptureArgsError(f"say what the cell is: {MAGIC_PREFIX} {' | '.join(KINDS)}")
    kind, rest = words[0], words[1:]
    if kind not in _PARSERS:
        raise CaptureArgsError(
            f"unknown capture kind {kind!r}; use one of: {', '.join(KINDS)} "
            f"(for example '{MAGIC_PREFIX} api classify')"
        )
    ns = _PARSERS[kind].parse_args(rest)
    return _spec_from_namespace(kind, vars(ns))


def _spec_from_namespace(kind: str, values: dict[str, Any]) -> CellSpec:
    name = values.pop("name", None)
    if name is not None and not name.isidentifier() and kind == "api":
        raise CaptureArgsError(f"API name {name!r} must be a Python identifier, like 'classify'")
    if kind == "model" and name is not None:
        from runtime.tags import validate_name

        validate_name(name, "model name")
    options: dict[str, Any] = {}
    if kind == "api":
        if values.get("batchable"):
            options["batchable"] = True
        for key in ("max_batch_size", "max_latency_ms"):
            if values.get(key) is not None:
                options[key] = values[key]
    elif kind == "model":
        if values.get("var"):
            if not values["var"].isidentifier():
                raise CaptureArgsError(f"--var takes a variable name, got {values['var']!r}")
            options["var"] = values["var"]
        if values.get("batchable"):
            methods = [m.strip() for m in values["batchable"].split(",") if m.strip()]
            bad = [m for m in methods if not m.isidentifier()]
            if bad or not methods:
                raise CaptureArgsError(
                    f"--batchable takes method names separated by commas, got {values['batchable']!r}"
                )
            options["batchable"] = methods
        if values.get("batch_dim") is not None:
            options["batch_dim"] = values["batch_dim"]
        if values.get("label"):
            options["labels"] = dict(values["label"])
    return CellSpec(kind=kind, name=name, options=options)


def spec_from_metadata(meta: Any) -> CellSpec:
    """`metadata.nbento` as the JupyterLab panel writes it: `{"kind": "api", "name": "classify",
    "batchable": true, ...}` (option keys as in `CellSpec.options`)."""
    if not isinstance(meta, dict) or meta.get("kind") not in KINDS:
        raise CaptureArgsError(
            f"cell metadata 'nbento' must be an object with kind one of {', '.join(KINDS)}, "
            f"got {meta!r}"
        )
    words = [meta["kind"]]
    if meta.get("name") is not None:
        words.append(str(meta["name"]))
    spec = parse_cell_args(shlex.join(words))
    options = {k: v for k, v in meta.items() if k not in ("kind", "name")}
    allowed = {
        "preprocess": set(),
        "api": {"batchable", "max_batch_size", "max_latency_ms"},
        "model": {"var", "batchable", "batch_dim", "labels"},
    }[spec.kind]
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise CaptureArgsError(
            f"cell metadata 'nbento' has unknown keys for a {spec.kind} cell: {', '.join(unknown)}"
        )
    if spec.kind == "api" and options.get("batchable") is False:
        options.pop("batchable")
    return CellSpec(kind=spec.kind, name=spec.name, options=options)


def split_magic(source: str) -> tuple[str, str] | None:
    """(`args after %%nbento`, `cell body`) when `source` starts with a `%%nbento` line (after
    blank lines, which IPython ignores too), else None."""
    lines = source.splitlines(keepends=True)
    index = 0
    while index < len(lines) and not lines[index].strip():
        index += 1
    if index == len(lines):
        return None
    first = lines[index].strip()
    if first != MAGIC_PREFIX and not first.startswith(MAGIC_PREFIX + " "):
        return None
    return first[len(MAGIC_PREFIX) :].strip(), "".join(lines[index + 1 :])
