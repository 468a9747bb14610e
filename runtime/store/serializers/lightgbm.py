"""LightGBM models in LightGBM's own text model format (`model.txt`): a `Booster`, or one of
the scikit-learn wrappers (`LGBMClassifier`, `LGBMRegressor`, `LGBMRanker`).

LightGBM has no loader for its wrappers, so a wrapper is rebuilt from the model text, its
hyperparameters and its fitted attributes recorded as data in `state.json` (classes, objective,
feature counts, ...). The recipe is checked when saving: the rebuilt wrapper must predict what
the original predicts, and every fitted attribute must be plain data; otherwise the wrapper
goes to joblib with the reason recorded (`options.format: joblib`, code on load).
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from runtime.errors import SerializationError
from runtime.store.artifacts import ArtifactReader, ArtifactWriter
from runtime.store.serializers.sklearn import load_joblib, plain_params, save_joblib

if TYPE_CHECKING:  # pragma: no cover
    from runtime.store.info import ModelInfo

MODEL_FILE = "model.txt"
STATE_FILE = "state.json"
WRAPPERS = ("LGBMClassifier", "LGBMRegressor", "LGBMRanker")


class _NoRecipe(Exception):
    """This wrapper's fitted state is not plain data; the reason says what is not."""


def _native_type(obj: Any) -> str | None:
    lgb = sys.modules.get("lightgbm")
    if lgb is None:
        return None
    cls = type(obj)
    if cls is getattr(lgb, "Booster", None):
        return "Booster"
    if cls.__name__ in WRAPPERS and cls is getattr(lgb, cls.__name__, None):
        return cls.__name__
    return None


class LightGBMSerializer:
    name = "lightgbm"
    framework = "lightgbm"

    def matches(self, obj: Any) -> bool:
        return _native_type(obj) is not None

    def code_on_load(self, options: Mapping[str, Any]) -> bool:
        return options.get("format") != "text"

    def save(self, obj: Any, artifacts: ArtifactWriter) -> dict[str, Any]:
        import lightgbm as lgb

        kind = _native_type(obj)
        versions = {"lightgbm": lgb.__version__}
        if kind == "Booster":
            _write_text(artifacts, MODEL_FILE, obj.model_to_string())
            return {"format": "text", "type": kind, "versions": versions}
        import sklearn  # the wrappers are scikit-learn estimators (and LabelEncoder rebuilds)

        versions["sklearn"] = sklearn.__version__
        try:
            text = obj.booster_.model_to_string()
            params, dropped = plain_params(obj.get_params(), type(obj)().get_params())
            state = _fitted_state(obj, set(obj.get_params()))
            _check_recipe(obj, _rebuild(str(kind), text, params, state))
        except _NoRecipe as exc:
            options = save_joblib(obj, artifacts, native_failed=str(exc))
            return {**options, "type": kind, "versions": versions}
        _write_text(artifacts, MODEL_FILE, text)
        _write_text(artifacts, STATE_FILE, json.dumps(state, indent=1))
        return {
            "format": "text",
            "type": kind,
            "params": params,
            "params_not_saved": dropped,
            "versions": versions,
        }

    def load(self, artifacts: ArtifactReader, info: ModelInfo, **options: Any) -> Any:
        if options:
            raise SerializationError(f"unknown load options for a LightGBM model: {sorted(options)}")
        recorded = info.options
        kind = recorded.get("type")
        if recorded.get("format") == "joblib":
            return load_joblib(artifacts)
        if kind != "Booster" and kind not in WRAPPERS:
            raise SerializationError(
                f"model.yaml records LightGBM type {kind!r}; this nbento loads Booster and "
                f"{', '.join(WRAPPERS)}"
            )
        text = _read_text(artifacts, MODEL_FILE)
        if kind == "Booster":
            import lightgbm as lgb

            return lgb.Booster(model_str=text)
        state = json.loads(_read_text(artifacts, STATE_FILE))
        return _rebuild(str(kind), text, recorded.get("params") or {}, state)


def _write_text(artifacts: ArtifactWriter, relpath: str, text: str) -> None:
    with artifacts.open(relpath) as f:
        f.write(text.encode("utf-8"))


def _read_text(artifacts: ArtifactReader, relpath: str) -> str:
    with artifacts.open(relpath) as reader:
        data = reader.read()
        reader.verify()
    return data.decode("utf-8")


def _fitted_state(obj: Any, params: set[str]) -> dict[str, Any]:
    """Every attribute `fit` set (not a hyperparameter), encoded as JSON data."""
    state: dict[str, Any] = {}
    for name, value in vars(obj).items():
        if name in params:
            continue
        state[name] = _encode(name, value)
    return state


def _encode(name: str, value: Any) -> dict[str, Any]:
    import numpy as np

    kind = type(value).__name__
    if kind == "Booster":
        return {"kind": "booster"}
    if kind == "LabelEncoder":
        return {"kind": "label_encoder"}  # rebuilt from the classes
    if isinstance(value, np.ndarray) and not value.dtype.hasobject:
        return {"kind": "array", "dtype": value.dtype.str, "data": value.tolist()}
    if isinstance(value, Mapping):
        pairs = [[_plain(name, k), _plain(name, v)] for k, v in value.items()]
        return {"kind": "mapping", "data": pairs}
    return {"kind": "plain", "data": _plain(name, value)}


def _plain(name: str, value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (bool, int, float, str, type(None))):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(name, v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(name, v) for k, v in value.items()}
    raise _NoRecipe(f"fitted attribute {name} holds a {type(value).__name__}")


def _rebuild(kind: str, text: str, params: Mapping[str, Any], state: Mapping[str, Any]) -> Any:
    import lightgbm as lgb
    import numpy as np

    model = getattr(lgb, kind)(**params)
    classes = None
    encoders = []
    for name, encoded in state.items():
        if not (isinstance(name, str) and name.isidentifier()) or name.startswith("__"):
            raise SerializationError(f"{STATE_FILE} names an attribute {name!r}; refusing it")
        tag = encoded.get("kind") if isinstance(encoded, Mapping) else None
        if tag == "booster":
            value: Any = lgb.Booster(model_str=text)
        elif tag == "array":
            value = np.array(encoded["data"], dtype=np.dtype(encoded["dtype"]))
        elif tag == "mapping":
            value = {k: v for k, v in encoded["data"]}
        elif tag == "plain":
            value = encoded["data"]
        elif tag == "label_encoder":
            encoders.append(name)
            continue
        else:
            raise SerializationError(f"{STATE_FILE} has an entry {name!r} of unknown kind {tag!r}")
        if name == "_classes":
            classes = value
        setattr(model, name, value)
    for name in encoders:
        from sklearn.preprocessing import LabelEncoder

        encoder = LabelEncoder()
        encoder.classes_ = classes
        setattr(model, name, encoder)
    return model


def _check_recipe(original: Any, rebuilt: Any) -> None:
    """Predictions of the rebuilt wrapper must equal the original's on a probe batch."""
    import numpy as np

    probe = np.linspace(-1.0, 1.0, 3 * original.n_features_in_).reshape(3, -1)
    methods = ["predict", "predict_proba"] if hasattr(original, "predict_proba") else ["predict"]
    for method in methods:
        try:
            with warnings.catch_warnings():  # a probe without feature names is fine here
                warnings.simplefilter("ignore")
                before = getattr(original, method)(probe)
                after = getattr(rebuilt, method)(probe)
            same = np.array_equal(before, after)
        except Exception as exc:
            raise _NoRecipe(f"the rebuilt wrapper's {method} failed: {exc}") from exc
        if not same:
            raise _NoRecipe(f"the rebuilt wrapper's {method} differs from the original's")
    if sorted(vars(original)) != sorted(vars(rebuilt)):
        raise _NoRecipe("the rebuilt wrapper has different attributes")
