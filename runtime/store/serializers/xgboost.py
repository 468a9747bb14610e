"""XGBoost models in XGBoost's own UBJSON model format (`model.ubj`): a `Booster`, or one of
the scikit-learn wrappers (`XGBClassifier`, `XGBRegressor`, ...), which load back as the same
wrapper type with their hyperparameters. Nothing is unpickled: the file is data that XGBoost
parses. A subclass of a wrapper is not XGBoost's own type and goes to the scikit-learn adapter.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from runtime.errors import SerializationError
from runtime.store.artifacts import ArtifactReader, ArtifactWriter
from runtime.store.serializers.sklearn import plain_params

if TYPE_CHECKING:  # pragma: no cover
    from runtime.store.info import ModelInfo

MODEL_FILE = "model.ubj"
# The types rebuilt on load: looked up by name in these modules only.
WRAPPERS = ("XGBClassifier", "XGBRegressor", "XGBRanker", "XGBRFClassifier", "XGBRFRegressor")


def _native_type(obj: Any) -> str | None:
    """"Booster", a wrapper's name, or None: only XGBoost's own classes, not subclasses."""
    xgb = sys.modules.get("xgboost")
    if xgb is None:
        return None
    cls = type(obj)
    if cls is getattr(xgb, "Booster", None):
        return "Booster"
    if cls.__name__ in WRAPPERS and cls is getattr(xgb, cls.__name__, None):
        return cls.__name__
    return None


class XGBoostSerializer:
    name = "xgboost"
    framework = "xgboost"

    def matches(self, obj: Any) -> bool:
        return _native_type(obj) is not None

    def code_on_load(self, options: Mapping[str, Any]) -> bool:
        return False

    def save(self, obj: Any, artifacts: ArtifactWriter) -> dict[str, Any]:
        import xgboost as xgb

        kind = _native_type(obj)
        options: dict[str, Any] = {
            "format": "ubj",
            "type": kind,
            "versions": {"xgboost": xgb.__version__},
        }
        if kind == "Booster":
            with artifacts.open(MODEL_FILE) as f:
                f.write(obj.save_raw(raw_format="ubj"))
            return options
        # The wrapper's save_model also writes its fitted state (classes, n_classes_) into the
        # file; the hyperparameters go to model.yaml.
        obj.save_model(str(artifacts.path / MODEL_FILE))
        params, dropped = plain_params(obj.get_params(), type(obj)().get_params())
        options["versions"]["sklearn"] = _sklearn_version()
        return {**options, "params": params, "params_not_saved": dropped}

    def load(self, artifacts: ArtifactReader, info: ModelInfo, **options: Any) -> Any:
        if options:
            raise SerializationError(f"unknown load options for an XGBoost model: {sorted(options)}")
        import xgboost as xgb

        recorded = info.options
        kind = recorded.get("type")
        path = str(artifacts.verified_path(MODEL_FILE))
        if kind == "Booster":
            booster = xgb.Booster()
            booster.load_model(path)
            return booster
        if kind not in WRAPPERS:
            raise SerializationError(
                f"model.yaml records XGBoost type {kind!r}; this nbento loads Booster and "
                f"{', '.join(WRAPPERS)}"
            )
        params = recorded.get("params") or {}
        model = getattr(xgb, str(kind))(**params)
        model.load_model(path)
        return model


def _sklearn_version() -> str:
    """The wrappers are scikit-learn estimators: loading them needs scikit-learn too."""
    import sklearn

    return str(sklearn.__version__)
