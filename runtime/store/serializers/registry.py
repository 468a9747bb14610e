"""Which serializer saves an object and which one loads a saved version.

The store picks the first registered adapter whose `matches(obj)` is true (custom adapters
registered with `register_serializer` first, newest first; then the built-ins in `_builtin()`
order, cloudpickle last) and records its `name` in `model.yaml`, so loading finds the same
adapter. A new format is one more class registered here; the store does not change.

    class TextSerializer:
        name = "text"; framework = "nbento"
        def matches(self, obj): return isinstance(obj, Text)
        def save(self, obj, artifacts): ...
        def load(self, artifacts, info, **options): ...
        def code_on_load(self, options): return False   # optional; absent means True
    register_serializer(TextSerializer())
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Mapping
from importlib import metadata as importlib_metadata
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from runtime.errors import SerializationError
from runtime.store.artifacts import ArtifactReader, ArtifactWriter
from runtime.store.serializers.sklearn import is_sklearn
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
    `framework` is the distribution (or module) whose version is recorded (`framework.version`).

    Convention: `save` returns `options["versions"]`, `{module: version}` for every package
    loading needs (the framework and what its format needs, e.g. safetensors); a Bento
    installs each of them.

    Optional: `prepare(obj) -> obj`, the object as it will load (an ONNX graph becomes an
    `OnnxModel`), which signatures are checked against and `save` receives.

    Optional: `code_on_load(options) -> bool`, whether loading a version saved with these
    `options` runs code that came with the files (unpickling, a TorchScript program). It
    answers from the format the loader will actually use, never from a claim in the file, so
    a trust gate can ask it about a model imported from elsewhere. Without it: True."""

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
    batchable = is_sklearn(obj)
    return {
        method: {"batchable": batchable, "batch_dim": 0}
        for method in _PREDICT_METHODS
        if callable(getattr(obj, method, None))
    }


def _builtin() -> tuple[Serializer, ...]:
    # Framework modules are imported here but import no framework themselves: matching looks
    # at sys.modules only, so saving an array never imports torch.
    from runtime.store.serializers.lightgbm import LightGBMSerializer
    from runtime.store.serializers.numpy import NumpySerializer
    from runtime.store.serializers.onnx import OnnxSerializer
    from runtime.store.serializers.pickle import CloudpickleSerializer
    from runtime.store.serializers.sentence_transformers import SentenceTransformerSerializer
    from runtime.store.serializers.sklearn import SklearnSerializer
    from runtime.store.serializers.torch import TorchSerializer
    from runtime.store.serializers.transformers import TransformersSerializer
    from runtime.store.serializers.xgboost import XGBoostSerializer

    # Order matters where types overlap: XGBoost and LightGBM wrappers are scikit-learn
    # estimators, sentence-transformers and transformers models are torch modules.
    return (
        NumpySerializer(),
        XGBoostSerializer(),
        LightGBMSerializer(),
        SklearnSerializer(),
        SentenceTransformerSerializer(),
        TransformersSerializer(),
        OnnxSerializer(),
        TorchSerializer(),
        CloudpickleSerializer(),
    )


_BUILTIN: tuple[Serializer, ...] = _builtin()
_custom: list[Serializer] = []
_lock = threading.Lock()


def register_serializer(serializer: Serializer) -> Serializer:
    """Add an adapter, tried before every earlier one; a new one with an existing name replaces
    it. Returns the adapter: `TEXT = register_serializer(TextSerializer())`."""
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


def runs_code_on_load(serializer: Serializer, options: Mapping[str, Any]) -> bool:
    """Whether loading a version saved by `serializer` with `options` runs code from its files.

    The future trust gate for imported models asks this, not the `code_on_load` line of an
    imported model.yaml: the answer follows the format the loader will use."""
    decide = getattr(serializer, "code_on_load", None)
    if not callable(decide):
        return True
    return bool(decide(options))


def prepared(serializer: Serializer, obj: Any) -> Any:
    """`obj` as `serializer` stores it (see `Serializer`); most adapters store it as it is."""
    prepare = getattr(serializer, "prepare", None)
    return prepare(obj) if callable(prepare) else obj


def framework_version(serializer: Serializer) -> str | None:
    """The installed version of `serializer.framework`: its distribution's version, or the
    module's `__version__` (`xgboost-cpu` installs the `xgboost` module)."""
    try:
        return importlib_metadata.version(serializer.framework)
    except importlib_metadata.PackageNotFoundError:
        pass
    module = sys.modules.get(serializer.framework.replace("-", "_"))
    version = getattr(module, "__version__", None)
    return str(version) if version is not None else None
