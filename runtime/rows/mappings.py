"""Dicts of arrays or tensors (a tokenizer's output: `input_ids`, `attention_mask`, ...): every
value is rows along `batch_dim`, all with the same number of rows. A mapping joins a batch with
the same keys whose values would join too. The joined value has the first part's type when it
can be built from a dict (a `BatchEncoding` stays one), a dict otherwise."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from runtime.errors import BatchInputError
from runtime.rows.kind import RowKind

KindOf = Callable[[Any], RowKind | None]


def mapping_kind(kind_of: KindOf) -> RowKind:
    """The mapping kind, looking its values' kinds up with `kind_of` (the registry's)."""

    def value_kind(value: Any) -> RowKind:
        kind = kind_of(value)
        assert kind is not None  # `accepts` let only row values in
        return kind

    def accepts(value: Any) -> bool:
        if not value:
            return False
        for item in value.values():
            kind = kind_of(item)
            if kind is None or not kind.batch_axis:
                return False
        return True

    def count(rows: Any, batch_dim: int) -> int:
        counts = {key: value_kind(v).count(v, batch_dim) for key, v in rows.items()}
        if len(set(counts.values())) > 1:
            found = ", ".join(f"{key!r}: {n}" for key, n in counts.items())
            raise BatchInputError(
                f"the values of a dict of rows hold different numbers of rows ({found}); every "
                f"value needs one entry per row along axis {batch_dim}"
            )
        return next(iter(counts.values()))

    def take(rows: Any, start: int, end: int, batch_dim: int) -> Any:
        return rebuild(
            rows, {k: value_kind(v).take(v, start, end, batch_dim) for k, v in rows.items()}
        )

    def concat(parts: Sequence[Any], batch_dim: int) -> Any:
        first = parts[0]
        if len(parts) == 1:
            return first
        joined = {
            k: value_kind(v).concat([part[k] for part in parts], batch_dim)
            for k, v in first.items()
        }
        return rebuild(first, joined)

    def key(rows: Any, batch_dim: int) -> Hashable:
        return tuple(
            (k, value_kind(v).name, value_kind(v).key(v, batch_dim)) for k, v in rows.items()
        )

    return RowKind(
        name="dict of arrays", types=(Mapping,), count=count, take=take, concat=concat, key=key,
        accepts=accepts,
    )


def rebuild(template: Any, values: dict[Any, Any]) -> Any:
    """`values` in the mapping type of `template` when that type takes a dict, else a dict."""
    cls = type(template)
    if cls is dict:
        return values
    attempts = [lambda: cls(values), lambda: cls(**values)]
    if dataclasses.is_dataclass(template):  # transformers' ModelOutput: fields as keywords
        attempts.reverse()
    for attempt in attempts:
        try:
            built = attempt()
        except Exception:
            continue
        if isinstance(built, Mapping) and list(built.keys()) == list(values):
            return built
    return values
