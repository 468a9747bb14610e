"""Lists and tuples of rows: one item per row, whatever the items are (texts, dicts, images)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from runtime.rows.kind import RowKind


def _count(rows: Any, batch_dim: int) -> int:
    return len(rows)


def _take(rows: Any, start: int, end: int, batch_dim: int) -> Any:
    return list(rows[start:end])


def _concat(parts: Sequence[Any], batch_dim: int) -> Any:
    # Always a list, also for one part: the model sees the same type however requests batch.
    joined: list[Any] = []
    for part in parts:
        joined.extend(part)
    return joined


def _key(rows: Any, batch_dim: int) -> Hashable:
    return "list"


SEQUENCES = RowKind(
    name="list", types=(list, tuple), count=_count, take=_take, concat=_concat, key=_key,
    batch_axis=False,
)
