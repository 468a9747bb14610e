"""The one registry of row containers (like the store's serializers): which kinds of values a
batchable method takes as rows and returns per row. Built in, in lookup order: lists and tuples,
NumPy arrays, pandas DataFrames and Series, torch tensors, SciPy sparse matrices, and dicts of
arrays or tensors. `register_rows` adds a kind; it is looked up before the built-in ones.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

from runtime.errors import BatchInputError
from runtime.rows.arrays import ARRAYS
from runtime.rows.frames import FRAMES, SERIES
from runtime.rows.kind import RowKind, type_name
from runtime.rows.mappings import mapping_kind
from runtime.rows.sequences import SEQUENCES
from runtime.rows.sparse import SPARSE
from runtime.rows.tensors import TENSORS

_custom: list[RowKind] = []
# Kinds whose classes a type is an instance of, by type. A value's type can only be a subclass
# of a class whose module is imported already, so an entry never goes stale; registering a kind
# clears it.
_by_type: dict[type, tuple[RowKind, ...]] = {}


def kind_of(value: Any) -> RowKind | None:
    """The row kind of `value`, or None when it is not a row container."""
    cls = type(value)
    candidates = _by_type.get(cls)
    if candidates is None:
        candidates = tuple(
            kind for kind in (*_custom, *_BUILT_IN) if issubclass(cls, kind.classes())
        )
        _by_type[cls] = candidates
    for kind in candidates:
        if kind.accepts is None or kind.accepts(value):
            return kind
    return None


_BUILT_IN: tuple[RowKind, ...] = (
    SEQUENCES, ARRAYS, FRAMES, SERIES, TENSORS, SPARSE, mapping_kind(kind_of),
)


def supported() -> str:
    """The row kinds a message lists, custom ones first."""
    names = [kind.name for kind in (*_custom, *_BUILT_IN)]
    return ", ".join(name if name != "list" else "list, tuple" for name in names)


def kind_or_error(value: Any, what: str = "its rows") -> RowKind:
    """The row kind of `value`; a BatchInputError naming the type and the fix otherwise."""
    kind = kind_of(value)
    if kind is None:
        fix = "wrap a single item in a list: [item]"
        if type(value).__module__ != "builtins":
            fix += (
                f", or teach batching the type with runtime.rows.register_rows("
                f"{type(value).__name__}, count=..., take=..., concat=...)"
            )
        raise BatchInputError(
            f"a batchable method takes {what} as a row container ({supported()}), got "
            f"{type_name(value)}; {fix}"
        )
    return kind


def register_rows(
    cls: type | str,
    *,
    count: Callable[[Any, int], int],
    take: Callable[[Any, int, int, int], Any],
    concat: Callable[[Sequence[Any], int], Any],
    key: Callable[[Any, int], Hashable] | None = None,
    name: str | None = None,
    batch_axis: bool = True,
) -> RowKind:
    """Teach batching a new row container, e.g. a ragged-batch class:

        register_rows(Ragged, count=lambda r, dim: len(r.offsets) - 1,
                      take=lambda r, start, end, dim: r.slice(start, end),
                      concat=lambda parts, dim: Ragged.join(parts))

    `cls` is a class or `"module:Class"` (looked up only once that module is imported). `key`
    says which values may share a batch (default: any two of the kind). Register it where the
    model's service and the notebook both import it (the `%%nbento preprocess` cell)."""
    label = name or (cls if isinstance(cls, str) else f"{cls.__module__}.{cls.__qualname__}")
    kind = RowKind(
        name=label, types=(cls,), count=count, take=take, concat=concat,
        key=key or (lambda value, batch_dim: label), batch_axis=batch_axis,
    )
    _custom[:] = [k for k in _custom if k.types != kind.types]
    _custom.insert(0, kind)
    _by_type.clear()
    return kind


def unregister_rows(cls: type | str) -> None:
    """Forget a kind added with `register_rows` (tests, notebooks re-running a cell)."""
    _custom[:] = [k for k in _custom if k.types != (cls,)]
    _by_type.clear()
