"""Serializer choice by type, the registry for custom adapters, and their recorded names."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from runtime import register_serializer, store
from runtime.errors import ChecksumMismatch, SerializationError
from runtime.store.artifacts import ArtifactReader, ArtifactWriter
from runtime.store.serializers import default_signatures, registry, serializer_for
from tests.runtime.store_fixtures import Doubler


class Text:
    def __init__(self, value: str) -> None:
        self.value = value


class TextSerializer:
    """A custom adapter in the shape a torch adapter would take."""

    name = "text-test"
    framework = "nbento"

    def matches(self, obj: Any) -> bool:
        return isinstance(obj, Text)

    def save(self, obj: Text, artifacts: ArtifactWriter) -> dict[str, Any]:
        with artifacts.open("nested/value.txt") as f:
            f.write(obj.value.encode())
        (artifacts.path / "by-path.txt").write_text("written by path")
        return {"encoding": "utf-8"}

    def load(self, artifacts: ArtifactReader, info: Any, **options: Any) -> Text:
        with artifacts.open("nested/value.txt") as reader:
            value = reader.read().decode(info.options["encoding"])
            reader.verify()
        return Text(value)


@pytest.fixture
def text_serializer() -> Iterator[TextSerializer]:
    adapter = TextSerializer()
    register_serializer(adapter)
    yield adapter
    registry._custom[:] = [s for s in registry._custom if s.name != adapter.name]


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (np.zeros(3), "numpy"),
        (np.array([object()], dtype=object), "cloudpickle"),
        (np.ma.masked_array([1, 2], mask=[0, 1]), "cloudpickle"),
        (LogisticRegression(), "sklearn"),
        (make_pipeline(StandardScaler(), LogisticRegression()), "sklearn"),
        (Doubler(), "cloudpickle"),
        ({"a": 1}, "cloudpickle"),
    ],
)
def test_serializer_is_chosen_by_type(obj: Any, expected: str) -> None:
    assert serializer_for(obj).name == expected


def test_custom_serializer_is_used_recorded_and_checked(text_serializer: TextSerializer) -> None:
    model = store.save_model("note", Text("hello"))

    assert model.info.serializer == "text-test"
    assert model.info.module == __name__
    assert set(model.info.files) == {"nested/value.txt", "by-path.txt"}
    assert store.load("note").value == "hello"
    (model.path / "by-path.txt").write_text("changed")  # checked even though load skips it
    with pytest.raises(ChecksumMismatch, match="by-path"):
        store.load("note")


def test_unregistered_serializer_on_load_says_what_to_do(text_serializer: TextSerializer) -> None:
    store.save_model("note", Text("x"))
    registry._custom.clear()
    with pytest.raises(SerializationError, match=r"'text-test'.*register_serializer"):
        store.load("note")


def test_explicit_serializer_by_name_overrides_the_choice() -> None:
    model = store.save_model("arr", np.arange(3), serializer="cloudpickle")
    assert model.info.serializer == "cloudpickle"
    np.testing.assert_array_equal(store.load("arr"), np.arange(3))


def test_registering_something_that_is_not_a_serializer_is_refused() -> None:
    with pytest.raises(SerializationError, match="not a serializer"):
        register_serializer(object())  # type: ignore[arg-type]


def test_unpicklable_object_gets_a_clear_error() -> None:
    import threading

    with pytest.raises(SerializationError, match="cannot pickle the lock"):
        store.save_model("locked", threading.Lock(), signatures=[])
    assert store.list_models() == []


def test_default_signatures_follow_the_object() -> None:
    assert default_signatures(LogisticRegression())["predict"] == {
        "batchable": True,
        "batch_dim": 0,
    }
    assert default_signatures(Doubler()) == {"predict": {"batchable": False, "batch_dim": 0}}
    assert default_signatures(np.zeros(2)) == {}


def test_choosing_a_serializer_imports_no_framework(nbento_home: Path) -> None:
    code = (
        "import sys; from runtime import save_model, load; save_model('plain', {'a': 1}); "
        "load('plain'); print(sorted(m for m in ('sklearn', 'torch', 'sentence_transformers', "
        "'skops') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "NBENTO_HOME": str(nbento_home)},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "[]"
