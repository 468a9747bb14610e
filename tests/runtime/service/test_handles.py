"""`runner(tag)` in a notebook: lazy, loads once, calls the model, refuses unknown methods."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from runtime import runner, store
from runtime.errors import InvalidName, ModelNotFound, SignatureError
from runtime.service.handles import ModelHandle, set_backend_resolver
from tests.runtime.store_fixtures import Doubler


def test_handle_calls_the_loaded_model() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 3))
    clf = LogisticRegression().fit(X, (X[:, 0] > 0).astype(int))
    store.save_model("clf", clf, signatures={"predict": {"batchable": True}})

    handle = runner("clf:latest")

    np.testing.assert_array_equal(handle.predict(X), clf.predict(X))
    assert asyncio.run(handle.predict.async_run(X[:2])).tolist() == clf.predict(X[:2]).tolist()
    assert handle.name == "clf" and handle.tag == "clf:latest"


def test_unknown_method_is_a_clear_signature_error() -> None:
    store.save_model("doubler", Doubler(), signatures=["predict"])
    handle = runner("doubler")

    assert handle.predict([1, 2]) == [2, 4]
    with pytest.raises(SignatureError, match="no signature 'transform'; saved signatures: predict"):
        handle.transform([1])
    with pytest.raises(AttributeError):
        handle._private  # noqa: B018


def test_model_is_loaded_once_per_version(monkeypatch: pytest.MonkeyPatch) -> None:
    store.save_model("counted", Doubler(), signatures=["predict"])
    loads: list[str] = []
    original = store.Model.load

    def counting_load(self: store.Model, **options: Any) -> Any:
        loads.append(str(self.tag))
        return original(self, **options)

    monkeypatch.setattr(store.Model, "load", counting_load)
    first, second = runner("counted"), runner("counted")
    first.predict([1])
    second.predict([2])
    first.predict([3])

    assert len(loads) == 1


def test_latest_is_resolved_when_the_handle_first_calls() -> None:
    store.save_model("moving", Doubler(2), signatures=["predict"])
    handle = runner("moving")  # nothing loads yet
    store.save_model("moving", Doubler(10), signatures=["predict"])

    assert handle.predict([1]) == [10]


def test_bad_tags_fail_at_creation_missing_models_at_first_call() -> None:
    with pytest.raises(InvalidName):
        runner("../x")
    handle = runner("absent")
    with pytest.raises(ModelNotFound, match="no model 'absent'"):
        handle.predict([1])


def test_a_resolver_replaces_the_local_backend() -> None:
    calls: list[tuple[str, tuple[Any, ...]]] = []

    class Recorder:
        def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            calls.append((method, args))
            return "remote"

        async def acall(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            return self.call(method, args, kwargs)

    handle = runner("not-even-saved", name="r1")
    previous = set_backend_resolver(lambda h: Recorder())
    try:
        assert handle.predict(1) == "remote"
    finally:
        set_backend_resolver(previous)
    assert calls == [("predict", (1,))]
    assert isinstance(handle, ModelHandle) and handle.name == "r1"
