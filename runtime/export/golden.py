"""Golden answers: what the notebook's kernel answered for a request, recorded next to the
service (`.nbento/<service>/golden.jsonl`, one JSON object a line) and shipped in the Bento
(`golden/golden.jsonl`). `nbento build` and `nbento verify` replay them against the built
service (see `runtime.export.golden_replay`); a different answer stops the build.

    {"api": "classify", "request": {"texts": ["I was charged twice"]},
     "answer": {"labels": ["billing"]}, "media_type": "application/json", "status": 200,
     "source": "sample", "cell_id": "3f2a...", "recorded_at": "2026-11-29T20:41:07Z",
     "module_sha256": "ab12..."}

Answers compare as JSON: same keys, same list lengths, equal strings and booleans, numbers
equal within a relative tolerance of 1e-6 (absolute 1e-9 near zero), because a float that
went through another BLAS build or a JSON round trip may differ in its last bits.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from runtime.atomic import atomic_write_text
from runtime.errors import GoldenError

GOLDEN_FILE = "golden.jsonl"
BENTO_GOLDEN_DIR = "golden"
REL_TOLERANCE = 1e-6
ABS_TOLERANCE = 1e-9


class Golden(BaseModel):
    """One recorded answer. `media_type` None means "as `%nbento call` saw it": a body that
    parses as JSON is JSON, anything else text."""

    model_config = ConfigDict(extra="ignore")

    api: str
    request: Any
    answer: Any
    media_type: str | None = "application/json"
    status: int = 200
    source: Literal["sample", "call"] = "call"
    cell_id: str | None = None
    recorded_at: str = ""
    module_sha256: str | None = None

    def key(self) -> tuple[str, str]:
        """Two goldens with the same key ask the same question (the newer one wins)."""
        return self.api, json.dumps(self.request, sort_keys=True)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def read_goldens(path: Path) -> list[Golden]:
    """The goldens of one file ([] when there is none), or `GoldenError` naming the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise GoldenError(f"cannot read golden answers {path}: {exc}") from None
    goldens = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            goldens.append(Golden.model_validate_json(line))
        except ValidationError as exc:
            problem = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in problem["loc"]) or "line"
            raise GoldenError(
                f"{path}:{number} is not a golden answer ({where}: {problem['msg']}); fix or "
                f"delete that line"
            ) from None
    return goldens


def write_goldens(path: Path, goldens: Iterable[Golden]) -> None:
    """Write the file atomically (a replay never reads half a file)."""
    atomic_write_text(path, "".join(g.model_dump_json() + "\n" for g in goldens))


def record_goldens(
    path: Path, new: Sequence[Golden], *, replace_samples_of: str | None = None
) -> list[Golden]:
    """Add `new` to the file: an older golden with the same API and request is replaced, and
    with `replace_samples_of` every sample recorded by that cell goes (it just re-ran)."""
    keys = {g.key() for g in new}
    kept = [
        g for g in read_goldens(path)
        if g.key() not in keys
        and not (replace_samples_of is not None and g.source == "sample"
                 and g.cell_id == replace_samples_of)
    ]
    result = [*kept, *new]
    if result or path.exists():
        write_goldens(path, result)
    return result


def json_diff(
    expected: Any, actual: Any, path: str = "$", *,
    rel: float = REL_TOLERANCE, abs_tol: float = ABS_TOLERANCE,
) -> list[str]:
    """The differences between two JSON values, one line each with its JSON path:
    `$.scores[0]: expected 0.91, got 0.87`. Empty when they are equal (within tolerance)."""
    if _is_number(expected) and _is_number(actual):
        if math.isclose(float(expected), float(actual), rel_tol=rel, abs_tol=abs_tol):
            return []
        return [f"{path}: expected {_short(expected)}, got {_short(actual)}"]
    if isinstance(expected, dict) and isinstance(actual, dict):
        diffs = []
        for key in expected:
            where = f"{path}.{key}" if str(key).isidentifier() else f"{path}[{json.dumps(key)}]"
            if key not in actual:
                diffs.append(f"{where}: missing (expected {_short(expected[key])})")
            else:
                diffs.extend(json_diff(expected[key], actual[key], where, rel=rel, abs_tol=abs_tol))
        for key in actual:
            if key not in expected:
                diffs.append(f"{path}.{key}: unexpected (got {_short(actual[key])})")
        return diffs
    if isinstance(expected, list) and isinstance(actual, list):
        diffs = []
        if len(expected) != len(actual):
            diffs.append(f"{path}: expected {len(expected)} items, got {len(actual)}")
        for index, (a, b) in enumerate(zip(expected, actual, strict=False)):
            diffs.extend(json_diff(a, b, f"{path}[{index}]", rel=rel, abs_tol=abs_tol))
        return diffs
    if type(expected) is type(actual) and expected == actual:
        return []
    return [f"{path}: expected {_short(expected)}, got {_short(actual)}"]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def ship_goldens(service_dir: Path, bento_dir: Path) -> list[Golden]:
    """Copy the service's `golden.jsonl` (if any) into the Bento's `golden/`; its goldens."""
    goldens = read_goldens(service_dir / GOLDEN_FILE)
    if goldens:
        write_goldens(bento_dir / BENTO_GOLDEN_DIR / GOLDEN_FILE, goldens)
    return goldens
