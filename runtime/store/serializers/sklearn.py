"""scikit-learn estimators and pipelines: skops when skops can load the file without trusting
any extra type (nothing is unpickled), joblib otherwise, with the reason recorded."""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from runtime.errors import SerializationError
from runtime.store.artifacts import ArtifactReader, ArtifactWriter

if TYPE_CHECKING:  # pragma: no cover
    from runtime.store.info import ModelInfo


def is_sklearn(obj: Any) -> bool:
    """A scikit-learn estimator, without importing scikit-learn."""
    base = sys.modules.get("sklearn.base")
    return base is not None and isinstance(obj, base.BaseEstimator)


class SklearnSerializer:
    """`options.format` records skops or joblib, and `options.skops_untrusted_types` why joblib
    was chosen."""

    name = "sklearn"
    framework = "scikit-learn"

    def matches(self, obj: Any) -> bool:
        return is_sklearn(obj)

    def code_on_load(self, options: Mapping[str, Any]) -> bool:
        # skops.io.load without `trusted=` refuses every type outside its safe set.
        return options.get("format") != "skops"

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
        return save_joblib(obj, artifacts, skops_untrusted_types=reason)

    def load(self, artifacts: ArtifactReader, info: ModelInfo, **options: Any) -> Any:
        if options:
            raise SerializationError(f"unknown load options for a sklearn model: {sorted(options)}")
        if info.options.get("format") == "skops":
            import skops.io as sio

            return sio.load(artifacts.verified_path("model.skops"))
        return load_joblib(artifacts)


def save_joblib(obj: Any, artifacts: ArtifactWriter, **why: Any) -> dict[str, Any]:
    """The pickle-based fallback, shared by adapters whose native format cannot hold `obj`."""
    import joblib

    with artifacts.open("model.joblib") as f:
        joblib.dump(obj, f)
    return {"format": "joblib", **why}


def load_joblib(artifacts: ArtifactReader) -> Any:
    import joblib

    return joblib.load(artifacts.verified_path("model.joblib"))


def plain_params(params: Mapping[str, Any], defaults: Mapping[str, Any]) -> tuple[dict, list]:
    """Hyperparameters that differ from the defaults and are plain data; the names of those
    that are not (callbacks, objects) so the record says what was left out."""
    kept: dict[str, Any] = {}
    dropped: list[str] = []
    for name, value in params.items():
        if type(value).__module__ == "numpy" and hasattr(value, "item"):
            value = value.item()  # a NumPy scalar hyperparameter is still plain data
        default = defaults.get(name)
        if value is default or repr(value) == repr(default):
            continue
        if _is_plain(value):
            kept[name] = value
        else:
            dropped.append(name)
    return kept, sorted(dropped)


def _is_plain(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, (bool, int, str, type(None))):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_plain(v) for k, v in value.items())
    return False
