"""What a row container is: how to count, slice and join one kind of value along `batch_dim`.

A `RowKind` names the classes it handles either as classes or as `"module:Class"` strings; a
string is looked up only once its module is imported, so checking a value never imports pandas,
torch or SciPy (a kernel without torch stays fast).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any

Count = Callable[[Any, int], int]
Take = Callable[[Any, int, int, int], Any]
Concat = Callable[[Sequence[Any], int], Any]
Key = Callable[[Any, int], Hashable]


@dataclass(frozen=True)
class RowKind:
    """One kind of row container.

    - `count(value, batch_dim)`: rows along `batch_dim` (raise `BatchInputError` when it has
      no such axis)
    - `take(value, start, end, batch_dim)`: rows `start:end`, same kind
    - `concat(parts, batch_dim)`: parts joined in order (parts share a `key`)
    - `key(value, batch_dim)`: values join one batch only when their keys are equal (dtype,
      shape off the batch axis, columns ...)
    - `batch_axis`: False for lists and tuples, which are rows only as the first positional
      argument (a keyword such as `size=(224, 224)` is a setting, not rows)
    - `take_output` / `join_output`: for outputs, when cutting a batch's output per request
      differs from cutting input (frames renumber a fresh default index)
    """

    name: str
    types: tuple[type | str, ...]
    count: Count
    take: Take
    concat: Concat
    key: Key
    batch_axis: bool = True
    accepts: Callable[[Any], bool] | None = None
    take_output: Take | None = None
    join_output: Concat | None = None

    def classes(self) -> tuple[type, ...]:
        """The classes of this kind whose modules are imported right now."""
        found: list[type] = []
        for spec in self.types:
            cls = spec if isinstance(spec, type) else _lookup(spec)
            if cls is not None:
                found.append(cls)
        return tuple(found)


def type_name(value: Any) -> str:
    """`module.Class` of a value, as error messages show it."""
    cls = type(value)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


_found: dict[str, type] = {}


def _lookup(spec: str) -> type | None:
    """The class `"module:Class"` names, if its module is imported (remembered once found)."""
    cls = _found.get(spec)
    if cls is not None:
        return cls
    module_name, _, qualname = spec.partition(":")
    obj: Any = sys.modules.get(module_name)
    if obj is None:
        return None
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if not isinstance(obj, type):
        return None
    _found[spec] = obj
    return obj
