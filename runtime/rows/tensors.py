"""torch tensors: rows along `batch_dim`; tensors join a batch with the same dtype, the same
device and the same shape off that axis (a tokenizer padding to a fixed length batches; one
padding to the longest text in each call batches with calls of the same length)."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from runtime.rows.arrays import axis_length, off_axis
from runtime.rows.kind import RowKind


def _count(rows: Any, batch_dim: int) -> int:
    return axis_length(tuple(rows.shape), batch_dim, "a tensor")


def _take(rows: Any, start: int, end: int, batch_dim: int) -> Any:
    return rows.narrow(batch_dim, start, end - start)


def _concat(parts: Sequence[Any], batch_dim: int) -> Any:
    if len(parts) == 1:
        return parts[0]
    import torch

    return torch.cat(list(parts), dim=batch_dim)


def _key(rows: Any, batch_dim: int) -> Hashable:
    return (str(rows.dtype), str(rows.device), off_axis(tuple(rows.shape), batch_dim))


TENSORS = RowKind(
    name="torch.Tensor", types=("torch:Tensor",), count=_count, take=_take, concat=_concat,
    key=_key,
)
