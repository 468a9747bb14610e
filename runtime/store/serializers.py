"""Serializers: small adapters that save one kind of object into a model folder and load it back.

The store picks the first registered adapter whose `matches(obj)` is true (custom adapters
registered with `register_serializer` first, newest first; then NumPy arrays, scikit-learn
estimators, sentence-transformers models, and cloudpickle for anything else) and records its
`name` in `model.yaml`, so loading finds the same adapter. A new format (a torch adapter, say)
is one more class registered here; the store does not change.

    class TorchSerializer:
        name = "torch"; framework = "torch"
        def matches(self, obj): ...
        def save(self, obj, artifacts): torch.save(obj.state_dict(), artifacts.open("w.pt"))
        def load(self, artifacts, info, **options): ...
    register_serializer(TorchSerializer())
"""

from __future__ import annotations

import importlib
import io
import pickle
import sys
import threading
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from runtime.errors import SerializationError
from runtime.store.artifacts import ArtifactReader, ArtifactWriter
from runtime.tags import validate_name

if TYPE_CHECKING:  # pragma: no cover
    from runtime.store.info import ModelInfo

# Methods offered as signatures by default when a model is saved without `signatures=`.
_PREDICT_METHODS = (
    "predict",
    "predict_proba",
    "predict_log_proba",
    "decision_function",
    "transform",
    "score_samples",
)


@runtime_checkable
class Serializer(Protocol):
    """One storage format. `name` is recorded as `serializer` in model.yaml and must be stable;
    `framework` is the distribution whose version is recorded (`framework.version`)."""

    name: str
    framework: str

    def matches(self, obj: Any) -> bool:
        """True if this adapter saves `obj`. Must not import heavy frameworks just to answer."""
        ...

    def save(self, obj: Any, artifacts: ArtifactWriter) -> dict[str, Any] | None:
        """Write `obj` into `artifacts` (its `open()`, `write_parts()` or `path`). The returned
        mapping is recorded as `options` and handed back to `load` through `info.options`."""
        ...

    def load(self, artifacts: ArtifactReader, info: ModelInfo, **options: Any) -> Any:
        """Rebuild the object; read files only through `artifacts` so their sha256 is checked."""
        ...


def default_signatures(obj: Any) -> dict[str, dict[str, Any]]:
    """Signatures used when `save_model` gets none: the usual predict-like methods, batchable
    along axis 0 for scikit-learn models (rows in, rows out), not batchable otherwise."""
    batchable = _is_sklearn(obj)
    return {
        method: {"batchable": batchable, "batch_dim": 0}
        for method in _PREDICT_METHODS
        if callable(getattr(obj, method, None))
    }


def _is_sklearn(obj: Any) -> bool:
    base = sys.modules.get("sklearn.base")
    return base is not None and isinstance(obj, base.BaseEstimator)


class NumpySerializer:
    """A plain ndarray as one `.npy` file: `np.load(path, mmap_mode="r")` works on it directly,
    and `load(tag, mmap_mode="r")` maps it after checking its sha256."""

    name = "numpy"
    framework = "numpy"
    filename = "array.npy"

    def matches(self, obj: Any) -> bool:
        np = sys.modules.get("numpy")
        return np is not None and type(obj) is np.ndarray and not obj.dtype.hasobject

    def save(self, obj: Any, artifacts: ArtifactWriter) -> dict[str, Any]:
        import numpy as np

        fortran = bool(obj.flags.f_contiguous and not obj.flags.c_contiguous)
        array = obj if fortran or obj.flags.c_contiguous else np.ascontiguousarray(obj)
        header = io.BytesIO()
        header_data = np.lib.format.header_data_from_array_1_0(array)
        try:
            np.lib.format.write_array_header_1_0(header, header_data)
        except ValueError:  # a header over 64 KiB (very many fields) needs format 2.0
            header = io.BytesIO()
            np.lib.format.write_array_header_2_0(header, header_data)
        body = (array.T if fortran else array).reshape(-1).view(np.uint8)
        artifacts.write_parts(self.filename, [header.getvalue(), body.data])
        return {"shape": list(array.shape), "dtype": array.dtype.str, "fortran_order": fortran}

    def load(self, artifacts: ArtifactReader, info: ModelInfo, **options: Any) -> Any:
        import numpy as np

        mmap_mode = options.pop("mmap_mode", None)
        if options:
            raise SerializationError(
                f"unknown load options for a numpy model: {sorted(options)}; only mmap_mode"
            )
        if mmap_mode is not None:
            path = artifacts.verified_path(self.filename)
            return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
        with artifacts.open(self.filename) as reader:
            version = np.lib.format.read_magic(reader)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(reader)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(reader)
            else:
                raise SerializationError(f"unsupported .npy format version {version}")
            if dtype.hasobject:
                raise SerializationError(
                    f"{artifacts.path / self.filename} holds Python objects; refusing to unpickle"
                )
            array = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
            body = (array.T if fortran else array).reshape(-1).view(np.uint8)
            reader.readinto_all(body.data)
            reader.verify()
        return array


class SklearnSerializer:
    """scikit-learn estimators and pipelines: skops when skops can load the file without
    trusting any extra type (nothing is unpickled), joblib otherwise. `options.format` records
    which, and `options.skops_untrusted_types` why joblib was chosen."""

    name = "sklearn"
    framework = "scikit-learn"

    def matches(self, obj: Any) -> bool:
        return _is_sklearn(obj)

    def save(self, obj: Any, artifacts: ArtifactWriter) -> dict[str, Any]:
        reason: Any
        try:
            import skops.io as sio
        except ImportError:
            reason = "skops is not installed"
        else:
            path = artifacts.path / "model.skops"
            try:
                sio.dump(obj, path)
                untrusted = sorted(sio.get_untrusted_types(file=path))
            except Exception as exc:  # skops cannot represent every estimator
                untrusted, reason = None, f"skops failed: {type(exc).__name__}: {exc}"
            if untrusted == []:
                return {"format": "skops"}
            if untrusted:
                reason = untrusted
            path.unlink(missing_ok=True)
        import joblib

        with artifacts.open("model.joblib") as f:
            joblib.dump(obj, f)
        return {"format": "joblib", "skops_untrusted_types": reason}

    def load(self, artifacts: ArtifactReader, info: ModelInfo, **options: Any) -> Any:
        if options:
            raise SerializationError(f"unknown load options for a sklearn model: {sorted(options)}")
        if info.options.get("format") == "skops":
            import skops.io as sio

            return sio.load(artifacts.verified_path("model.skops"))
        import joblib

        return joblib.load(artifacts.verified_path("model.joblib"))


class CloudpickleSerializer:
    """Any other picklable object (functions and classes defined in a notebook included)."""

    name = "cloudpickle"
    framework = "cloudpickle"
    filename = "model.pkl"

    def matches(self, obj: Any) -> bool:
        return True

    def save(self, obj: Any, artifacts: ArtifactWriter) -> dict[str, Any]:
        import cloudpickle

        try:
            with artifacts.open(self.filename) as f:
                cloudpickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise SerializationError(
                f"cannot pickle the {type(obj).__name__} object: {exc}. Register a serializer for "
                "it with runtime.register_serializer(...) or pass serializer=..."
            ) from exc
        return {"protocol": pickle.HIGHEST_PROTOCOL}

    def load(self, artifacts: ArtifactReader, info: ModelInfo, **options: Any) -> Any:
        if options:
            raise SerializationError(f"unknown load options for a pickled model: {sorted(options)}")
        with open(artifacts.verified_path(self.filename), "rb") as f:
            return pickle.load(f)


def _builtin() -> tuple[Serializer, ...]:
    from runtime.store.sentence_transformers import SentenceTransformerSerializer

    return (
        NumpySerializer(),
        SklearnSerializer(),
        SentenceTransformerSerializer(),
        CloudpickleSerializer(),
    )


_BUILTIN: tuple[Serializer, ...] = _builtin()
_custom: list[Serializer] = []
_lock = threading.Lock()


def register_serializer(serializer: Serializer) -> Serializer:
    """Add an adapter, tried before every earlier one; a new one with an existing name replaces
    it. Returns the adapter: `TORCH = register_serializer(TorchSerializer())`."""
    if not isinstance(serializer, Serializer):
        raise SerializationError(
            f"{serializer!r} is not a serializer: it needs name, framework, matches(), save() "
            "and load()"
        )
    validate_name(serializer.name, "serializer name")
    with _lock:
        _custom[:] = [s for s in _custom if s.name != serializer.name]
        _custom.insert(0, serializer)
    return serializer


def serializers() -> list[Serializer]:
    """Every adapter in the order they are tried."""
    with _lock:
        return [*_custom, *(b for b in _BUILTIN if b.name not in {s.name for s in _custom})]


def serializer_for(obj: Any) -> Serializer:
    for serializer in serializers():
        if serializer.matches(obj):
            return serializer
    raise SerializationError(f"no serializer matches a {type(obj).__name__} object")


def serializer_named(name: str, module: str | None = None) -> Serializer:
    """The adapter recorded in a model.yaml. Built-in adapter modules under `runtime.` are
    imported on demand; others must be registered by the code that loads the model."""
    for serializer in serializers():
        if serializer.name == name:
            return serializer
    if module and module.startswith("runtime.") and module != __name__:
        try:
            importlib.import_module(module)
        except ImportError:
            pass
        else:
            for serializer in serializers():
                if serializer.name == name:
                    return serializer
    known = ", ".join(s.name for s in serializers())
    raise SerializationError(
        f"the model was saved with serializer {name!r} (module {module or '?'}), which is not "
        f"registered here; known: {known}. Import the module that calls "
        f"register_serializer(...) before loading."
    )


def serializer_module(serializer: Serializer) -> str:
    return type(serializer).__module__
