"""NumPy inputs: `NDArray[np.float32, (-1, 4)]` (shorthand for `Annotated[np.ndarray,
ndarray("float32", (-1, 4))]`) takes a JSON (nested) list or an `.npy` body, never pickles."""

from __future__ import annotations

import io
from typing import Annotated, Any

import numpy as np

from runtime.service.schema.errors import request_error


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
        try:
            array = np.asarray(value, dtype=self.dtype)
        except (ValueError, TypeError) as exc:
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
        try:
            array = np.load(io.BytesIO(body), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise request_error(
                400, "invalid_body", field, f"body is not a valid .npy array ({exc})"
            ) from None
        return self.check(array, field)


class NDArray:
    """Shorthand: `NDArray[np.float32, (-1, 4)]` is `Annotated[np.ndarray, ndarray(...)]`;
    `NDArray[np.float32]` fixes only the dtype (a dtype name string works too)."""

    def __class_getitem__(cls, params: Any) -> Any:
        if not isinstance(params, tuple):
            params = (params,)
        return Annotated[np.ndarray, ndarray(*params)]
