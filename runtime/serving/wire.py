"""The bytes between an API server and its runners (HTTP, split layout) and between a runner and
its worker processes (pipes): msgpack with extensions, never pickle, so a runner never runs code
it was sent and every layout hands the model (and the caller) the same types.

- ext 1, ndarray: `[dtype.str, shape, raw bytes]` (C order)
- ext 8, object ndarray: `[shape, [item, ...]]`, each item itself on the wire (strings, numbers,
  None, lists, dicts ...; anything else is refused by name)
- ext 2, tuple: the msgpack of its items as a list (so `(labels, scores)` stays a tuple)
- ext 3, torch tensor: `[dtype, shape, raw bytes, device, requires_grad]`, rebuilt on the CPU
  and moved to the recorded device when this process has it
- ext 4, pandas DataFrame: `[column labels, columns name, [column, ...], index]`
- ext 5, pandas Series: `[name, column, index]`
- ext 6, SciPy sparse: `[format, shape, data, indices, indptr, is_array]` (its CSR arrays)
- ext 7, a model output object (a non-dict Mapping such as transformers' `ModelOutput`, or a
  dataclass): `[module, qualname, {field: value}]`, rebuilt as that class when its module is
  already imported here, else as an `OutputRecord` (a dict whose keys are also attributes)

A frame column is `["np", dtype.str, ndarray]` for NumPy dtypes (numbers, bools, datetimes),
`["cat", codes, categories index, ordered]` for categoricals, or `["py", dtype name, values]`
(strings, nullable and object columns: Python values, missing ones as None). An index is
`["range", start, stop, step, name]` or `["index", column, name]`.

Everything else is plain msgpack: None, bool, int, float, str, bytes, list, dict. NumPy scalars
travel as Python scalars. pandas, torch and SciPy are imported only to rebuild their values.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections.abc import Mapping
from typing import Any

import msgpack
import numpy as np

from runtime.errors import WireError

CONTENT_TYPE = "application/vnd.nbento.msgpack"

_EXT_NDARRAY = 1
_EXT_TUPLE = 2
_EXT_TENSOR = 3
_EXT_FRAME = 4
_EXT_SERIES = 5
_EXT_SPARSE = 6
_EXT_OBJECT = 7
_EXT_OBJECT_ARRAY = 8


class OutputRecord(dict[str, Any]):
    """A model output object whose class is not imported in this process: its fields as a dict,
    readable as attributes too (`out.logits`, `out["logits"]`)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


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


def _ext(code: int, body: Any) -> msgpack.ExtType:
    return msgpack.ExtType(code, encode(body))


def _default(value: Any) -> Any:
    # strict_types sends every subclass here, so tuples are kept apart from lists.
    if isinstance(value, tuple):
        return _ext(_EXT_TUPLE, list(value))
    if isinstance(value, np.ndarray):
        return _array(value)
    if isinstance(value, np.generic):
        return value.item()
    special = _special(value)
    if special is not None:
        return special
    if isinstance(value, Mapping) and type(value).__module__ not in ("builtins", "collections"):
        return _object(value, dict(value))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return _object(value, fields)
    bases: tuple[Any, ...] = (bool, int, float, str, bytes, list, dict)
    for base in bases:
        if isinstance(value, base):
            return base(value)  # enum members, OrderedDict, numpy float64 ...
    raise WireError(
        f"cannot send a {type(value).__module__}.{type(value).__name__} to a runner; runner "
        f"arguments and results must be lists, dicts, scalars, strings, NumPy arrays, pandas "
        f"frames, torch tensors or SciPy sparse matrices (or run the runner in-process: "
        f"isolation 'thread')"
    )


def _array(value: np.ndarray[Any, Any]) -> msgpack.ExtType:
    if value.dtype.hasobject:
        if value.dtype != np.dtype(object):
            raise WireError(f"cannot send a structured array with objects (dtype {value.dtype})")
        # Labels from scikit-learn are often object arrays of str: send the items themselves.
        return _ext(_EXT_OBJECT_ARRAY, [list(value.shape), value.ravel().tolist()])
    array = np.ascontiguousarray(value)
    body = [array.dtype.str, list(array.shape), array.tobytes()]
    return msgpack.ExtType(_EXT_NDARRAY, msgpack.packb(body, use_bin_type=True))


def _special(value: Any) -> msgpack.ExtType | None:
    """Tensors, frames and sparse matrices, checked only when their library is imported."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        return _tensor(value)
    pandas = sys.modules.get("pandas")
    if pandas is not None:
        if isinstance(value, pandas.DataFrame):
            if not isinstance(value.columns, pandas.Index) or value.columns.nlevels > 1:
                raise WireError("cannot send a DataFrame with MultiIndex columns to a runner")
            data = [_column(value.iloc[:, i]) for i in range(value.shape[1])]
            body = [list(value.columns), value.columns.name, data, _index(value.index)]
            return _ext(_EXT_FRAME, body)
        if isinstance(value, pandas.Series):
            return _ext(_EXT_SERIES, [value.name, _column(value), _index(value.index)])
    sparse = sys.modules.get("scipy.sparse")
    if sparse is not None and sparse.issparse(value):
        csr = value.tocsr()
        is_array = isinstance(value, sparse.sparray)
        body = [value.format, list(csr.shape), csr.data, csr.indices, csr.indptr, is_array]
        return _ext(_EXT_SPARSE, body)
    return None


def _tensor(value: Any) -> msgpack.ExtType:
    import torch

    flat = value.detach().to("cpu").contiguous().reshape(-1)
    raw = flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""
    dtype = str(value.dtype).removeprefix("torch.")
    body = [dtype, list(value.shape), raw, str(value.device), bool(value.requires_grad)]
    return _ext(_EXT_TENSOR, body)


def _column(values: Any) -> list[Any]:
    import pandas as pd

    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        categories = _index(dtype.categories)
        return ["cat", np.asarray(values.cat.codes), categories, bool(dtype.ordered)]
    if isinstance(dtype, np.dtype) and not dtype.hasobject:
        return ["np", dtype.str, np.asarray(values)]
    items = [None if item is pd.NA or item is pd.NaT else item for item in values.tolist()]
    return ["py", str(dtype), items]


def _index(index: Any) -> list[Any]:
    import pandas as pd

    if isinstance(index, pd.MultiIndex):
        raise WireError(
            "cannot send a frame with a MultiIndex to a runner; call .reset_index() first"
        )
    if isinstance(index, pd.RangeIndex):
        return ["range", index.start, index.stop, index.step, index.name]
    return ["index", _column(index), index.name]


def _object(value: Any, fields: dict[str, Any]) -> msgpack.ExtType:
    cls = type(value)
    return _ext(_EXT_OBJECT, [cls.__module__, cls.__qualname__, fields])


# Extension values nest by decoding their body from inside msgpack's C unpacker; a crafted
# payload of a few hundred nested tuples would recurse until the process crashes.
MAX_EXT_DEPTH = 32
_depth = threading.local()


def _ext_hook(code: int, data: bytes) -> Any:
    depth = getattr(_depth, "n", 0)
    if depth >= MAX_EXT_DEPTH:
        raise WireError(
            f"runner payload nests extension values (tuples, arrays, frames) more than "
            f"{MAX_EXT_DEPTH} deep; flatten the arguments"
        )
    _depth.n = depth + 1
    try:
        return _decode_ext(code, data)
    finally:
        _depth.n = depth


def _decode_ext(code: int, data: bytes) -> Any:
    if code == _EXT_NDARRAY:
        dtype, shape, raw = msgpack.unpackb(data, raw=False)
        # bytearray: the array owns writable memory (models may write into their inputs).
        return np.frombuffer(bytearray(raw), dtype=np.dtype(dtype)).reshape(shape)
    if code not in _DECODERS:
        raise WireError(f"unknown msgpack extension type {code} in runner payload")
    return _DECODERS[code](decode(data))


def _decode_tuple(body: list[Any]) -> tuple[Any, ...]:
    return tuple(body)


def _decode_object_array(body: list[Any]) -> Any:
    shape, items = body
    array = np.empty(len(items), dtype=object)
    array[:] = items  # item by item: a list item stays one object, not a new axis
    return array.reshape(shape)


def _decode_tensor(body: list[Any]) -> Any:
    torch = _library("torch", "a torch tensor")
    dtype_name, shape, raw, device, requires_grad = body
    dtype = getattr(torch, dtype_name, None)
    if not isinstance(dtype, torch.dtype):
        raise WireError(f"unknown torch dtype {dtype_name!r} in runner payload")
    if raw:
        tensor = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(dtype).reshape(shape)
    else:
        tensor = torch.empty(shape, dtype=dtype)
    if device != "cpu" and _device_available(torch, device):
        tensor = tensor.to(device)
    if requires_grad and tensor.is_floating_point():
        tensor.requires_grad_(True)
    return tensor


def _device_available(torch: Any, device: str) -> bool:
    kind = device.split(":")[0]
    backend = getattr(torch, kind, None)
    available = getattr(backend, "is_available", None)
    return bool(available and available())


def _decode_column(column: list[Any]) -> Any:
    pd = _library("pandas", "a pandas frame")
    form = column[0]
    if form == "np":
        return column[2]
    if form == "cat":
        categories = _decode_index(column[2])
        return pd.Categorical.from_codes(column[1], categories=categories, ordered=column[3])
    if form == "py":
        return pd.array(column[2], dtype=pd.api.types.pandas_dtype(column[1]))
    raise WireError(f"unknown frame column form {form!r} in runner payload")


def _decode_index(body: list[Any]) -> Any:
    pd = _library("pandas", "a pandas frame")
    if body[0] == "range":
        return pd.RangeIndex(body[1], body[2], body[3], name=body[4])
    return pd.Index(_decode_column(body[1]), name=body[2])


def _decode_frame(body: list[Any]) -> Any:
    pd = _library("pandas", "a pandas frame")
    labels, columns_name, data, index = body
    frame = pd.DataFrame(
        {i: _decode_column(column) for i, column in enumerate(data)}, index=_decode_index(index)
    )
    frame.columns = pd.Index(labels, name=columns_name) if labels else frame.columns
    return frame


def _decode_series(body: list[Any]) -> Any:
    pd = _library("pandas", "a pandas frame")
    name, column, index = body
    return pd.Series(_decode_column(column), index=_decode_index(index), name=name)


def _decode_sparse(body: list[Any]) -> Any:
    _library("scipy", "a SciPy sparse matrix")
    import scipy.sparse

    fmt, shape, data, indices, indptr, is_array = body
    build = scipy.sparse.csr_array if is_array else scipy.sparse.csr_matrix
    return build((data, indices, indptr), shape=tuple(shape)).asformat(fmt)


def _decode_object(body: list[Any]) -> Any:
    module_name, qualname, fields = body
    found: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    cls: Any = found
    if isinstance(cls, type) and (issubclass(cls, Mapping) or dataclasses.is_dataclass(cls)):
        try:
            return cls(**fields)
        except Exception:
            pass
        if issubclass(cls, Mapping):
            build: Any = cls  # a UserDict or BatchEncoding takes the dict itself
            try:
                return build(fields)
            except Exception:
                pass
    return OutputRecord(fields)


def _library(name: str, what: str) -> Any:
    try:
        return __import__(name)
    except ImportError as exc:
        raise WireError(
            f"a runner sent {what}, but {name} is not installed in this process; install it "
            f"next to nbento (pip install {name})"
        ) from exc


_DECODERS: dict[int, Any] = {
    _EXT_TUPLE: _decode_tuple,
    _EXT_TENSOR: _decode_tensor,
    _EXT_FRAME: _decode_frame,
    _EXT_SERIES: _decode_series,
    _EXT_SPARSE: _decode_sparse,
    _EXT_OBJECT: _decode_object,
    _EXT_OBJECT_ARRAY: _decode_object_array,
}
