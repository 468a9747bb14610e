"""Serializer choice by type, the registry for custom adapters, and their recorded names."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from runtime import register_serializer, store
from runtime.errors import ChecksumMismatch, SerializationError
from runtime.store.artifacts import ArtifactReader, ArtifactWriter
from runtime.store.serializers import (
    default_signatures,
    framework_version,
    registry,
    runs_code_on_load,
    serializer_for,
    serializer_named,
)
from tests.conftest import require_module
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
        "load('plain'); import numpy; save_model('arr', numpy.zeros(2)); load('arr'); "
        "print(sorted(m for m in ('sklearn', 'torch', 'sentence_transformers', 'skops', "
        "'transformers', 'xgboost', 'lightgbm', 'onnx', 'onnxruntime', 'safetensors') "
        "if m in sys.modules))"
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


@pytest.mark.parametrize(
    ("obj", "code_on_load"),
    [
        (np.arange(4), False),
        (make_pipeline(StandardScaler(), LogisticRegression()), False),  # skops
        (Doubler(), True),  # cloudpickle
    ],
)
def test_model_yaml_records_whether_loading_runs_code(obj: Any, code_on_load: bool) -> None:
    model = store.save_model("m", obj, signatures=[])

    assert model.info.code_on_load is code_on_load
    assert f"code_on_load: {str(code_on_load).lower()}" in (model.path / "model.yaml").read_text()


def test_code_on_load_follows_the_serializer_not_the_file(text_serializer: TextSerializer) -> None:
    sklearn_adapter = serializer_named("sklearn")

    # an adapter that does not say is assumed to run code
    assert runs_code_on_load(text_serializer, {}) is True
    assert store.save_model("note", Text("x")).info.code_on_load is True
    # the answer comes from the format the loader will use, whatever model.yaml claims
    assert runs_code_on_load(sklearn_adapter, {"format": "joblib"}) is True
    assert runs_code_on_load(sklearn_adapter, {"format": "skops"}) is False


def test_old_model_yaml_without_the_field_counts_as_running_code() -> None:
    model = store.save_model("arr", np.arange(3), signatures=[])
    yaml_path = model.path / "model.yaml"
    yaml_path.write_text(
        "\n".join(line for line in yaml_path.read_text().splitlines() if "code_on_load" not in line)
    )

    assert store.get("arr").info.code_on_load is True
    np.testing.assert_array_equal(store.load("arr"), np.arange(3))


def test_framework_version_falls_back_to_the_module_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`xgboost-cpu` installs the `xgboost` module under another distribution name."""

    class Probe:
        name = "probe"
        framework = "nbento-probe-framework"

    assert framework_version(Probe()) is None
    monkeypatch.setitem(
        sys.modules, "nbento_probe_framework", SimpleNamespace(__version__="1.2.3")
    )
    assert framework_version(Probe()) == "1.2.3"
    assert framework_version(serializer_named("numpy")) == np.__version__


def test_a_missing_framework_on_load_names_the_package_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A model moved to a machine without its framework: one clear line, no traceback."""
    require_module("torch")
    import torch

    store.save_model("mlp", torch.nn.Sequential(torch.nn.Linear(2, 2)), signatures=[])
    monkeypatch.setitem(sys.modules, "safetensors", None)  # import safetensors fails
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)

    with pytest.raises(SerializationError, match=r"needs the safetensors module.*install it "
                       r"\(the model was saved with safetensors, torch\)"):
        store.load("mlp")
