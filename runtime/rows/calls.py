"""A batchable call in rows: which of its arguments are rows, how many, which calls may share a
batch, and the call a slice of rows (or a join of slices) makes.

Rows are the first positional argument (any row container, lists included) and every other
argument, positional or keyword, that is a row container with a batch axis (an array, a frame,
a tensor, a sparse matrix, a dict of arrays), as BentoML's runners batch every argument:
`model.forward(input_ids=..., attention_mask=...)` is batched along both. All row arguments
hold the same number of rows. Other arguments are passed as given; calls share a batch only
when those are equal.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from runtime.errors import BatchInputError
from runtime.rows.kind import RowKind, type_name
from runtime.rows.outputs import join_outputs, split_output
from runtime.rows.registry import kind_of, kind_or_error

Slot = int | str
"""A positional index or a keyword name."""


@dataclass(slots=True)
class RowCall:
    """The arguments of one batchable call and where its rows are."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    batch_dim: int
    rows: int
    slots: tuple[tuple[Slot, RowKind], ...]
    key: Hashable

    def slice(self, start: int, end: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The call's arguments with every row argument cut to rows `start:end`."""
        if start == 0 and end == self.rows:
            return self.args, self.kwargs
        args, kwargs = list(self.args), dict(self.kwargs)
        for slot, kind in self.slots:
            if isinstance(slot, int):
                args[slot] = kind.take(args[slot], start, end, self.batch_dim)
            else:
                kwargs[slot] = kind.take(kwargs[slot], start, end, self.batch_dim)
        return tuple(args), kwargs

    def join(
        self, parts: Sequence[tuple[tuple[Any, ...], dict[str, Any]]]
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """One call from slices of calls that share this call's key, rows in order."""
        args, kwargs = list(parts[0][0]), dict(parts[0][1])
        for slot, kind in self.slots:
            if isinstance(slot, int):
                args[slot] = kind.concat([part[0][slot] for part in parts], self.batch_dim)
            else:
                kwargs[slot] = kind.concat([part[1][slot] for part in parts], self.batch_dim)
        return tuple(args), kwargs


def plan_call(args: tuple[Any, ...], kwargs: dict[str, Any], batch_dim: int = 0) -> RowCall:
    """Find the rows of a batchable call; BatchInputError when it has none, or row arguments of
    different lengths."""
    slots: list[tuple[Slot, RowKind]] = []
    counts: dict[Slot, int] = {}
    named: list[tuple[Slot, Any]] = [*enumerate(args), *kwargs.items()]
    for slot, value in named:
        if slot == 0:
            kind = kind_or_error(value, "its first argument")
            counts[slot] = kind.count(value, batch_dim)
        else:
            kind_found = kind_of(value)
            if kind_found is None or not kind_found.batch_axis:
                continue
            kind = kind_found
            try:
                counts[slot] = kind.count(value, batch_dim)
            except BatchInputError:  # no batch axis (a 0-d tensor): a plain argument
                continue
        slots.append((slot, kind))
    if not slots:
        given = ", ".join(f"{k}={type_name(v)}" for k, v in kwargs.items()) or "nothing"
        raise BatchInputError(
            f"a batchable method needs rows: a row container as its first argument or as a "
            f"keyword argument (an array, a tensor, a DataFrame ...), got {given}"
        )
    if len(set(counts.values())) > 1:
        found = ", ".join(f"{_slot_name(s)} {n}" for s, n in counts.items())
        raise BatchInputError(
            f"the row arguments of a batchable call hold different numbers of rows ({found}); "
            f"every row argument needs one entry per row along axis {batch_dim}"
        )
    row_slots = {slot for slot, _ in slots}
    key = (
        tuple((slot, kind.name, kind.key(_arg(args, kwargs, slot), batch_dim)) for slot, kind in slots),
        freeze(tuple(a for i, a in enumerate(args) if i not in row_slots)),
        freeze({k: v for k, v in kwargs.items() if k not in row_slots}),
    )
    return RowCall(args, kwargs, batch_dim, next(iter(counts.values())), tuple(slots), key)


def call_in_rows(
    function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], batch_dim: int = 0
) -> Any:
    """Call a batchable method as a batch of one request, the way the server's batcher does:
    the same row checks, the same joined arguments, the same output split and join. The kernel's
    model handles call this, so what fails in the server fails in the kernel first."""
    call = plan_call(args, kwargs, batch_dim)
    if call.rows == 0:
        return function(*args, **kwargs)
    call_args, call_kwargs = call.join([call.slice(0, call.rows)])
    output = function(*call_args, **call_kwargs)
    return join_outputs(split_output(output, [call.rows], batch_dim), batch_dim)


def freeze(value: Any) -> Hashable:
    """A hashable stand-in for extra call arguments; unhashable objects (arrays) compare by
    identity, so such requests simply do not share a batch."""
    if isinstance(value, dict):
        return tuple(sorted(((k, freeze(v)) for k, v in value.items()), key=repr))
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))
    return value


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], slot: Slot) -> Any:
    return args[slot] if isinstance(slot, int) else kwargs[slot]


def _slot_name(slot: Slot) -> str:
    return "the first argument" if slot == 0 else (
        f"argument {slot + 1}" if isinstance(slot, int) else f"'{slot}'"
    )
