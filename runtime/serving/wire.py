"""The bytes between an API server and its runners (HTTP, split layout) and between a runner and
its worker processes (pipes): msgpack with two extensions, never pickle, so a runner never runs
code it was sent.

- ext 1, ndarray: msgpack `[dtype.str, shape, raw bytes]` (C order; object arrays refused)
- ext 2, tuple: the msgpack of its items as a list (so `(labels, scores)` stays a tuple)

Everything else is plain msgpack: None, bool, int, float, str, bytes, list, dict. NumPy scalars
travel as Python scalars.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

from runtime.errors import WireError

CONTENT_TYPE = "application/vnd.nbento.msgpack"

_EXT_NDARRAY = 1
_EXT_TUPLE = 2


def encode(value: Any) -> bytes:
    """`value` as bytes; raises WireError naming the type that cannot be sent."""
    try:
        return msgpack.packb(value, default=_default, use_bin_type=True, strict_types=True)
    except WireError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise WireError(f"cannot send this value to a runner: {exc}") from exc


def decode(data: bytes) -> Any:
    """The value `encode` wrote; raises WireError on bytes it did not write."""
    try:
        return msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    except WireError:
        raise
    except Exception as exc:
        raise WireError(f"malformed runner payload ({len(data)} bytes): {exc}") from exc


def _default(value: Any) -> Any:
    # strict_types sends every subclass here, so tuples are kept apart from lists.
    if isinstance(value, tuple):
        return msgpack.ExtType(_EXT_TUPLE, encode(list(value)))
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise WireError(
                f"cannot send an object array (dtype {value.dtype}) to a runner; send a list "
                f"or an array of a numeric/string dtype"
            )
        array = np.ascontiguousarray(value)
        body = [array.dtype.str, list(array.shape), array.tobytes()]
        return msgpack.ExtType(_EXT_NDARRAY, msgpack.packb(body, use_bin_type=True))
    if isinstance(value, np.generic):
        return value.item()
    bases: tuple[Any, ...] = (bool, int, float, str, bytes, list, dict)
    for base in bases:
        if isinstance(value, base):
            return base(value)  # enum members, OrderedDict, numpy float64 ...
    raise WireError(
        f"cannot send a {type(value).__module__}.{type(value).__name__} to a runner; runner "
        f"arguments and results must be lists, dicts, scalars, strings or NumPy arrays "
        f"(or run the runner in-process: workers mode 'thread')"
    )


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _EXT_TUPLE:
        return tuple(decode(data))
    if code == _EXT_NDARRAY:
        dtype, shape, raw = msgpack.unpackb(data, raw=False)
        # bytearray: the array owns writable memory (models may write into their inputs).
        return np.frombuffer(bytearray(raw), dtype=np.dtype(dtype)).reshape(shape)
    raise WireError(f"unknown msgpack extension type {code} in runner payload")
