"""pandas DataFrames and Series: rows along the index (`batch_dim` 0).

Frames join a batch only with the same columns in the same order, the same dtypes and the same
index dtype, so the joined frame has exactly the columns and dtypes each request sent; every
row keeps its index
label, so a model that carries the index over hands each request its own labels back. An output
frame with a fresh default index (0..n-1 over the batch) is renumbered per request, as the
model would have numbered a call with that request alone. pandas is imported by the caller.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

from runtime.errors import BatchInputError
from runtime.rows.kind import RowKind


def _check_axis(batch_dim: int, what: str) -> None:
    if batch_dim != 0:
        raise BatchInputError(
            f"{what} rows are along the index, so its batch_dim must be 0 (the signature says "
            f"{batch_dim}); save the model with batch_dim 0 or pass a NumPy array"
        )


def _count_frame(rows: Any, batch_dim: int) -> int:
    _check_axis(batch_dim, "a DataFrame's")
    return len(rows)


def _count_series(rows: Any, batch_dim: int) -> int:
    _check_axis(batch_dim, "a Series'")
    return len(rows)


def _take(rows: Any, start: int, end: int, batch_dim: int) -> Any:
    return rows.iloc[start:end]


def _concat(parts: Sequence[Any], batch_dim: int) -> Any:
    if len(parts) == 1:
        return parts[0]
    import pandas as pd

    return pd.concat(list(parts), axis=0)


def _fresh_index(index: Any, length: int) -> bool:
    import pandas as pd

    return isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1 and (
        len(index) == length
    )


def _take_output(rows: Any, start: int, end: int, batch_dim: int) -> Any:
    piece = rows.iloc[start:end]
    if start and _fresh_index(rows.index, len(rows)):
        piece = piece.reset_index(drop=True)
    return piece


def _join_output(parts: Sequence[Any], batch_dim: int) -> Any:
    if len(parts) == 1:
        return parts[0]
    import pandas as pd

    fresh = all(_fresh_index(part.index, len(part)) for part in parts)
    return pd.concat(list(parts), axis=0, ignore_index=fresh)


# The index dtype too: joining a text index with a numeric one would hand both requests an
# object index back.
def _frame_key(rows: Any, batch_dim: int) -> Hashable:
    return (tuple(rows.columns), tuple(rows.dtypes), rows.columns.name, rows.index.dtype)


def _series_key(rows: Any, batch_dim: int) -> Hashable:
    return (rows.dtype, rows.name, rows.index.dtype)


FRAMES = RowKind(
    name="pandas.DataFrame", types=("pandas:DataFrame",), count=_count_frame, take=_take,
    concat=_concat, key=_frame_key, take_output=_take_output, join_output=_join_output,
)
SERIES = RowKind(
    name="pandas.Series", types=("pandas:Series",), count=_count_series, take=_take,
    concat=_concat, key=_series_key, take_output=_take_output, join_output=_join_output,
)
