"""XGBoost and LightGBM in their own model files: boosters and scikit-learn wrappers come back
as the same types with the same predictions, and nothing is unpickled."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from runtime import store
from runtime.errors import ChecksumMismatch
from tests.conftest import require_module

xgb = require_module("xgboost")
lgb = require_module("lightgbm")

PICKLES = (".pkl", ".joblib", ".pickle")


class TunedRegressor(xgb.XGBRegressor):
    """Not XGBoost's own class: its name would not find it on load."""


def _data() -> tuple[Any, Any]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5)).astype(np.float32)
    y = np.array(["billing", "bug", "other"])[(X[:, 0] > 0).astype(int) + (X[:, 1] > 1)]
    return X, y


def _no_pickles(model: Any) -> None:
    assert not [f for f in model.info.files if f.endswith(PICKLES)]
    assert model.info.code_on_load is False


def test_xgb_classifier_keeps_its_wrapper_classes_and_params() -> None:
    X, y = _data()
    labels = np.unique(y, return_inverse=True)[1]
    clf = xgb.XGBClassifier(n_estimators=7, max_depth=3, learning_rate=0.3, n_jobs=1).fit(X, labels)

    saved = store.save_model("xgb", clf)
    loaded = store.load("xgb")

    assert saved.info.serializer == "xgboost"
    assert saved.info.options["format"] == "ubj" and saved.info.options["type"] == "XGBClassifier"
    assert saved.info.framework.version == xgb.__version__
    assert set(saved.info.options["versions"]) == {"xgboost", "sklearn"}
    assert set(saved.info.files) == {"model.ubj"}
    _no_pickles(saved)
    assert type(loaded) is xgb.XGBClassifier
    assert loaded.get_params()["n_estimators"] == 7 and loaded.get_params()["max_depth"] == 3
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert saved.info.signatures["predict_proba"].batchable


def test_xgb_booster_round_trips() -> None:
    X, _ = _data()
    booster = xgb.train(
        {"objective": "reg:squarederror", "max_depth": 2, "nthread": 1}, xgb.DMatrix(X, X[:, 0]), 5
    )

    saved = store.save_model("booster", booster, signatures=[])
    loaded = store.load("booster")

    assert saved.info.options["type"] == "Booster"
    _no_pickles(saved)
    assert type(loaded) is xgb.Booster
    np.testing.assert_array_equal(loaded.predict(xgb.DMatrix(X)), booster.predict(xgb.DMatrix(X)))


def test_xgb_regressor_subclass_goes_to_the_sklearn_adapter() -> None:
    X, _ = _data()
    model = TunedRegressor(n_estimators=3, n_jobs=1).fit(X, X[:, 0])
    assert store.save_model("tuned", model, signatures=[]).info.serializer == "sklearn"


def test_lgbm_classifier_is_rebuilt_from_model_text_and_state() -> None:
    X, y = _data()
    clf = lgb.LGBMClassifier(n_estimators=6, num_leaves=7, verbose=-1, n_jobs=1).fit(X, y)

    saved = store.save_model("lgbm", clf)
    loaded = store.load("lgbm")

    assert saved.info.serializer == "lightgbm"
    assert saved.info.options["format"] == "text"
    assert saved.info.options["type"] == "LGBMClassifier"
    assert saved.info.framework.version == lgb.__version__
    assert set(saved.info.files) == {"model.txt", "state.json"}
    _no_pickles(saved)
    assert type(loaded) is lgb.LGBMClassifier
    assert loaded.get_params()["num_leaves"] == 7
    assert list(loaded.classes_) == ["billing", "bug", "other"]
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


def test_lgbm_regressor_and_booster_round_trip() -> None:
    X, _ = _data()
    target = np.ascontiguousarray(X[:, 2])
    reg = lgb.LGBMRegressor(n_estimators=4, verbose=-1, n_jobs=1).fit(X, target)
    booster = lgb.train({"objective": "regression", "verbose": -1, "num_threads": 1}, lgb.Dataset(X, target), 4)

    store.save_model("reg", reg)
    saved = store.save_model("booster", booster, signatures=[])

    np.testing.assert_array_equal(store.load("reg").predict(X), reg.predict(X))
    assert saved.info.options["type"] == "Booster" and set(saved.info.files) == {"model.txt"}
    np.testing.assert_array_equal(store.load("booster").predict(X), booster.predict(X))


def test_lgbm_wrapper_with_state_that_is_not_data_falls_back_to_joblib() -> None:
    X, y = _data()
    clf = lgb.LGBMClassifier(n_estimators=3, verbose=-1, n_jobs=1).fit(X, y)
    clf._nbento_probe = object()  # a fitted attribute the recipe cannot write as data

    saved = store.save_model("lgbm", clf)

    assert saved.info.options["format"] == "joblib"
    assert "_nbento_probe holds a object" in saved.info.options["native_failed"]
    assert saved.info.code_on_load is True
    np.testing.assert_array_equal(store.load("lgbm").predict(X), clf.predict(X))


@pytest.mark.parametrize(("name", "relpath"), [("xgb", "model.ubj"), ("lgbm", "state.json")])
def test_tampered_model_files_are_refused(name: str, relpath: str) -> None:
    X, y = _data()
    labels = np.unique(y, return_inverse=True)[1]
    model = (
        xgb.XGBClassifier(n_estimators=2, n_jobs=1).fit(X, labels)
        if name == "xgb"
        else lgb.LGBMClassifier(n_estimators=2, verbose=-1, n_jobs=1).fit(X, y)
    )
    saved = store.save_model(name, model)
    target = saved.path / relpath
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))

    with pytest.raises(ChecksumMismatch, match=relpath.replace(".", r"\.")):
        store.load(name)


def test_numpy_hyperparameters_are_kept_as_plain_numbers() -> None:
    X, y = _data()
    labels = np.unique(y, return_inverse=True)[1]
    clf = xgb.XGBClassifier(n_estimators=np.int64(3), learning_rate=np.float32(0.5), n_jobs=1)
    clf.fit(X, labels)

    saved = store.save_model("xgb", clf)

    assert saved.info.options["params"]["n_estimators"] == 3
    assert saved.info.options["params"]["learning_rate"] == 0.5
    assert saved.info.options["params_not_saved"] == []
    np.testing.assert_array_equal(store.load("xgb").predict_proba(X), clf.predict_proba(X))
