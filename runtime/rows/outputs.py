"""A batch's output cut back per request, and a request's pieces (when its rows spanned several
batches) joined again. Outputs may be any row container, or a tuple / mapping / dataclass of
them: `(labels, scores)`, `{"value": ...}`, or a model output object whose fields are tensors
(transformers' `SequenceClassifierOutput.logits`), rebuilt as the same type. Fields that are
None stay None in every piece.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from runtime.errors import BatchOutputError
from runtime.rows.kind import type_name
from runtime.rows.mappings import rebuild
from runtime.rows.registry import kind_of, supported


def split_output(output: Any, sizes: Sequence[int], batch_dim: int = 0) -> list[Any]:
    """Cut a batch's output into one piece per segment of `sizes` rows."""
    return _split(output, sizes, batch_dim, "")


def join_outputs(parts: Sequence[Any], batch_dim: int = 0) -> Any:
    """Reassemble the output pieces of one request (in row order) into one value."""
    first = parts[0]
    if len(parts) == 1:
        return first
    if first is None:
        return None
    if isinstance(first, tuple):
        items = [join_outputs([p[i] for p in parts], batch_dim) for i in range(len(first))]
        return _same_tuple(first, items)
    kind = kind_of(first)
    if kind is not None and not isinstance(first, Mapping):
        return (kind.join_output or kind.concat)(parts, batch_dim)
    if isinstance(first, Mapping):
        joined = {key: join_outputs([p[key] for p in parts], batch_dim) for key in first}
        return rebuild(first, joined)
    if _is_dataclass_instance(first):
        names = [f.name for f in dataclasses.fields(first)]
        return dataclasses.replace(
            first, **{n: join_outputs([getattr(p, n) for p in parts], batch_dim) for n in names}
        )
    raise BatchOutputError(f"cannot join output pieces of type {type_name(first)}")


def _split(output: Any, sizes: Sequence[int], batch_dim: int, where: str) -> list[Any]:
    total = sum(sizes)
    if output is None and where:
        return [None] * len(sizes)
    if isinstance(output, tuple):
        columns = [
            _split(item, sizes, batch_dim, f"{where}[{i}]") for i, item in enumerate(output)
        ]
        return [_same_tuple(output, [c[i] for c in columns]) for i in range(len(sizes))]
    kind = kind_of(output)
    if kind is not None and not isinstance(output, Mapping):
        try:
            rows = kind.count(output, batch_dim)
        except Exception:
            rows = -1
        if rows != total:
            shape = getattr(output, "shape", None)
            what = f"shape {tuple(shape)}" if shape is not None else f"{rows} items"
            raise BatchOutputError(
                f"a batch of {total} rows returned {_named(output, where)} with {what}; a "
                f"batchable method must return one row per input row along axis {batch_dim} "
                f"(or mark the method non-batchable)"
            )
        if len(sizes) == 1:
            return [output]  # one request's rows: the model's own object, untouched
        take = kind.take_output or kind.take
        pieces: list[Any] = []
        start = 0
        for size in sizes:
            pieces.append(take(output, start, start + size, batch_dim))
            start += size
        return pieces
    if isinstance(output, Mapping):
        split = {
            key: _split(value, sizes, batch_dim, f"{where}[{key!r}]")
            for key, value in output.items()
        }
        return [rebuild(output, {k: split[k][i] for k in split}) for i in range(len(sizes))]
    if _is_dataclass_instance(output):
        names = [f.name for f in dataclasses.fields(output)]
        fields = {
            n: _split(getattr(output, n), sizes, batch_dim, f"{where}.{n}") for n in names
        }
        return [
            dataclasses.replace(output, **{n: fields[n][i] for n in names})
            for i in range(len(sizes))
        ]
    raise BatchOutputError(
        f"a batch of {total} rows returned {_named(output, where)}, which has no rows; a "
        f"batchable method must return a row container ({supported()}) or a tuple, dict or "
        f"dataclass of them"
    )


def _named(value: Any, where: str) -> str:
    return f"{type_name(value)} at output{where}" if where else type_name(value)


def _same_tuple(template: tuple[Any, ...], items: list[Any]) -> tuple[Any, ...]:
    if type(template) is tuple:
        return tuple(items)
    return type(template)(*items)  # a NamedTuple


def _is_dataclass_instance(value: Any) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type)
