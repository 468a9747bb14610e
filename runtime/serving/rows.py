"""Rows along `batch_dim`: count them, slice them, join requests into one batch and split a
batch's output back per request. The batcher works in rows, never in requests, so a request of
5 texts is 5 rows and a request of 100 rows may span several batches.

Inputs are lists (or tuples) of rows, or NumPy arrays along `batch_dim`. Outputs may be a list,
an array, or a tuple / dict of those (for example `(labels, scores)`), each with one entry per row.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from runtime.errors import BatchInputError, BatchOutputError


def count_rows(rows: Any, batch_dim: int = 0) -> int:
    """How many rows `rows` holds along `batch_dim`."""
    if isinstance(rows, np.ndarray):
        if rows.ndim == 0 or batch_dim >= rows.ndim:
            raise BatchInputError(
                f"a batchable method needs an array with a batch axis {batch_dim}, got shape "
                f"{rows.shape}; pass a list of rows or an array of shape (rows, ...)"
            )
        return int(rows.shape[batch_dim])
    if isinstance(rows, (list, tuple)):
        return len(rows)
    raise BatchInputError(
        f"a batchable method takes a list of rows or a NumPy array as its first argument, got "
        f"{type(rows).__name__}; wrap a single item in a list: [item]"
    )


def batch_key(rows: Any, batch_dim: int = 0) -> Hashable:
    """Requests join one batch only when their rows concatenate cleanly: same container kind,
    and for arrays the same dtype and the same shape off the batch axis."""
    if isinstance(rows, np.ndarray):
        shape = rows.shape[:batch_dim] + rows.shape[batch_dim + 1 :]
        return ("ndarray", rows.dtype.str, shape)
    return ("list",)


def take(rows: Any, start: int, end: int, batch_dim: int = 0) -> Any:
    """Rows `start:end` of `rows`, in the same container kind."""
    if isinstance(rows, np.ndarray):
        index = [slice(None)] * rows.ndim
        index[batch_dim] = slice(start, end)
        return rows[tuple(index)]
    return list(rows[start:end])


def concat(parts: Sequence[Any], batch_dim: int = 0) -> Any:
    """Join row containers (all lists, or all arrays) into one, in order."""
    if len(parts) == 1:
        first = parts[0]
        return list(first) if isinstance(first, tuple) else first
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts, axis=batch_dim)
    joined: list[Any] = []
    for part in parts:
        joined.extend(part)
    return joined


def split_output(output: Any, sizes: Sequence[int], batch_dim: int = 0) -> list[Any]:
    """Cut a batch's output into one piece per segment of `sizes` rows."""
    total = sum(sizes)
    if isinstance(output, tuple):
        columns = [split_output(item, sizes, batch_dim) for item in output]
        return [tuple(column[i] for column in columns) for i in range(len(sizes))]
    if isinstance(output, dict):
        split = {key: split_output(value, sizes, batch_dim) for key, value in output.items()}
        return [{key: split[key][i] for key in split} for i in range(len(sizes))]
    if isinstance(output, np.ndarray):
        if output.ndim <= batch_dim or output.shape[batch_dim] != total:
            raise BatchOutputError(
                f"a batch of {total} rows returned an array of shape {output.shape}; a batchable "
                f"method must return one row per input row along axis {batch_dim} (or mark the "
                f"method non-batchable)"
            )
    elif isinstance(output, list):
        if len(output) != total:
            raise BatchOutputError(
                f"a batch of {total} rows returned a list of {len(output)} items; a batchable "
                f"method must return one item per input row (or mark the method non-batchable)"
            )
    else:
        raise BatchOutputError(
            f"a batch of {total} rows returned {type(output).__name__}, which has no rows; a "
            f"batchable method must return a list, an array, or a tuple/dict of those"
        )
    pieces: list[Any] = []
    start = 0
    for size in sizes:
        pieces.append(take(output, start, start + size, batch_dim))
        start += size
    return pieces


def join_outputs(parts: Sequence[Any], batch_dim: int = 0) -> Any:
    """Reassemble the output pieces of one request (in row order) into one value."""
    if len(parts) == 1:
        return parts[0]
    first = parts[0]
    if isinstance(first, tuple):
        return tuple(join_outputs([p[i] for p in parts], batch_dim) for i in range(len(first)))
    if isinstance(first, dict):
        return {key: join_outputs([p[key] for p in parts], batch_dim) for key in first}
    return concat(parts, batch_dim)
