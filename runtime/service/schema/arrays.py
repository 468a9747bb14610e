"""NumPy inputs: `NDArray[np.float32, (-1, 4)]` (shorthand for `Annotated[np.ndarray,
ndarray("float32", (-1, 4))]`) takes a JSON (nested) list or an `.npy` body, never pickles."""

from __future__ import annotations

import io
import math
from typing import Annotated, Any

import numpy as np

from runtime.service.schema.errors import request_error

MAX_NDIM = 32
"""Axes an input array may have (NumPy's own limit is 64; deeper JSON nesting is an attack or
a mistake, refused with 422 before NumPy recurses into it)."""


class ndarray:
    """Annotation metadata for NumPy inputs: `Annotated[np.ndarray, ndarray("float32", (-1, 4))]`.

    `dtype` None accepts any dtype; `shape` uses -1 for "any length" on that axis. A JSON list
    is converted to `dtype`; an npy body must already have a dtype that casts safely."""

    def __init__(self, dtype: Any = None, shape: tuple[int, ...] | None = None) -> None:
        self.dtype = np.dtype(dtype) if dtype is not None else None
        self.shape = tuple(shape) if shape is not None else None

    def describe(self) -> str:
        dtype = self.dtype.name if self.dtype is not None else "any"
        shape = self.shape if self.shape is not None else "any"
        return f"ndarray dtype={dtype} shape={shape}"

    def check(self, array: np.ndarray, field: str) -> np.ndarray:
        if self.dtype is not None and array.dtype != self.dtype:
            if not np.can_cast(array.dtype, self.dtype, casting="same_kind"):
                raise request_error(
                    422, "validation_error", field,
                    f"array dtype {array.dtype.name} cannot be converted to {self.dtype.name}",
                )
            array = array.astype(self.dtype)
        if self.shape is not None:
            ok = len(self.shape) == array.ndim and all(
                want in (-1, got) for want, got in zip(self.shape, array.shape, strict=True)
            )
            if not ok:
                raise request_error(
                    422, "validation_error", field,
                    f"array shape {tuple(array.shape)} does not match {self.shape} "
                    f"(-1 means any length)",
                )
        return array

    def from_json(self, value: Any, field: str) -> np.ndarray:
        depth = _nesting(value)
        if depth > MAX_NDIM:
            raise request_error(
                422, "validation_error", field,
                f"lists nested more than {MAX_NDIM} deep; an array has at most {MAX_NDIM} axes",
            )
        try:
            array = np.asarray(value, dtype=self.dtype)
        except (ValueError, TypeError, RecursionError) as exc:
            want = self.dtype.name if self.dtype is not None else "numbers"
            raise request_error(
                422, "validation_error", field, f"expected a (nested) list of {want}: {exc}"
            ) from None
        if array.dtype == object:
            raise request_error(
                422, "validation_error", field, "expected a rectangular (nested) list of numbers"
            )
        return self.check(array, field)

    def from_npy(self, body: bytes, field: str) -> np.ndarray:
        _check_npy_size(body, field)
        try:
            array = np.load(io.BytesIO(body), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise request_error(
                400, "invalid_body", field, f"body is not a valid .npy array ({exc})"
            ) from None
        return self.check(array, field)


def _nesting(value: Any) -> int:
    """How deep the first elements of `value` nest (a rectangular list nests the same way
    everywhere; a ragged one is refused by NumPy later), without recursion."""
    depth = 0
    while isinstance(value, list):
        depth += 1
        if depth > MAX_NDIM or not value:
            break
        value = value[0]
    return depth


def _check_npy_size(body: bytes, field: str) -> None:
    """Refuse an `.npy` whose header declares more data than the body carries (a 100-byte body
    declaring 10^12 elements would otherwise make NumPy allocate terabytes before reading)."""
    from numpy.lib import format as npy

    stream = io.BytesIO(body)
    try:
        version = npy.read_magic(stream)
        if version == (1, 0):
            shape, _, dtype = npy.read_array_header_1_0(stream)
        else:
            shape, _, dtype = npy.read_array_header_2_0(stream)
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        raise request_error(
            400, "invalid_body", field, f"body is not a valid .npy array ({exc})"
        ) from None
    if len(shape) > MAX_NDIM:
        raise request_error(
            400, "invalid_body", field, f".npy declares {len(shape)} axes; at most {MAX_NDIM}"
        )
    declared = math.prod(int(n) for n in shape) * dtype.itemsize
    carried = len(body) - stream.tell()
    if declared > carried:
        raise request_error(
            400, "invalid_body", field,
            f".npy declares shape {tuple(shape)} of {dtype.name} ({declared} bytes) but the body "
            f"carries {carried} bytes of data",
        )


class NDArray:
    """Shorthand: `NDArray[np.float32, (-1, 4)]` is `Annotated[np.ndarray, ndarray(...)]`;
    `NDArray[np.float32]` fixes only the dtype (a dtype name string works too)."""

    def __class_getitem__(cls, params: Any) -> Any:
        if not isinstance(params, tuple):
            params = (params,)
        return Annotated[np.ndarray, ndarray(*params)]
