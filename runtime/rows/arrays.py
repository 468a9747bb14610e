"""NumPy arrays: rows along axis `batch_dim`; arrays join a batch with the same dtype and the
same shape off that axis."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from runtime.errors import BatchInputError
from runtime.rows.kind import RowKind


def axis_length(shape: Sequence[int], batch_dim: int, what: str) -> int:
    """The length of axis `batch_dim` of `shape`, or a BatchInputError saying there is none."""
    if batch_dim >= len(shape):
        raise BatchInputError(
            f"a batchable method needs {what} with a batch axis {batch_dim}, got shape "
            f"{tuple(shape)}; pass a list of rows or a value of shape (rows, ...)"
        )
    return int(shape[batch_dim])


def off_axis(shape: Sequence[int], batch_dim: int) -> tuple[int, ...]:
    return tuple(shape[:batch_dim]) + tuple(shape[batch_dim + 1 :])


def _count(rows: Any, batch_dim: int) -> int:
    return axis_length(rows.shape, batch_dim, "an array")


def _take(rows: Any, start: int, end: int, batch_dim: int) -> Any:
    index = [slice(None)] * rows.ndim
    index[batch_dim] = slice(start, end)
    return rows[tuple(index)]


def _concat(parts: Sequence[Any], batch_dim: int) -> Any:
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=batch_dim)


def _key(rows: Any, batch_dim: int) -> Hashable:
    return (rows.dtype.str, off_axis(rows.shape, batch_dim))


ARRAYS = RowKind(
    name="numpy.ndarray", types=(np.ndarray,), count=_count, take=_take, concat=_concat, key=_key
)
