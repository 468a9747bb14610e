"""SciPy sparse matrices and arrays: rows along `batch_dim` (0: rows, 1: columns); they join a
batch with the same format, dtype and size off that axis. A COO matrix is sliced as CSR (COO
has no slicing)."""

from __future__ import annotations

import sys
from collections.abc import Hashable, Sequence
from typing import Any

from runtime.rows.arrays import axis_length, off_axis
from runtime.rows.kind import RowKind


def _count(rows: Any, batch_dim: int) -> int:
    return axis_length(rows.shape, batch_dim, "a sparse matrix")


def _take(rows: Any, start: int, end: int, batch_dim: int) -> Any:
    sliceable = rows if rows.format in ("csr", "csc", "lil", "dok") else rows.tocsr()
    if batch_dim == 0:
        return sliceable[start:end]
    return sliceable[:, start:end]


def _concat(parts: Sequence[Any], batch_dim: int) -> Any:
    if len(parts) == 1:
        return parts[0]
    import scipy.sparse

    stack = scipy.sparse.vstack if batch_dim == 0 else scipy.sparse.hstack
    return stack(list(parts), format=parts[0].format)


def _key(rows: Any, batch_dim: int) -> Hashable:
    return (rows.format, rows.dtype.str, off_axis(rows.shape, batch_dim))


def _is_sparse(value: Any) -> bool:
    module = sys.modules.get("scipy.sparse")
    return module is not None and bool(module.issparse(value))


SPARSE = RowKind(
    name="scipy.sparse", types=("scipy.sparse:spmatrix", "scipy.sparse:sparray"),
    count=_count, take=_take, concat=_concat, key=_key, accepts=_is_sparse,
)
