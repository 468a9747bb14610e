"""torch modules: standard layers as a JSON spec + safetensors, own classes as TorchScript,
cloudpickle only when TorchScript would lose something; modes, dtypes and outputs come back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from runtime import store
from runtime.errors import ChecksumMismatch, SerializationError
from runtime.store.serializers import serializer_for
from tests.conftest import require_module

torch = require_module("torch")
nn = torch.nn


class Scorer(nn.Module):
    """A notebook-style module with its own class and an exported public method."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Dropout(0.5), nn.Linear(6, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.body(x), dim=-1)

    @torch.jit.export
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x).argmax(dim=-1)


class PythonOnly(Scorer):
    """A public method TorchScript does not compile (not exported): must not be lost."""

    def describe(self) -> str:
        return f"{sum(p.numel() for p in self.parameters())} weights"


def _layers() -> Any:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(4, 8),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Sequential(nn.Linear(8, 3, bias=False), nn.LayerNorm(3)),
        nn.Softmax(dim=-1),
    )


def _batch(dtype: Any = torch.float32) -> Any:
    return torch.randn(5, 4, generator=torch.Generator().manual_seed(1), dtype=dtype)


def test_standard_layers_round_trip_as_spec_and_safetensors() -> None:
    model = _layers().double().eval()
    x = _batch(torch.float64)

    saved = store.save_model("mlp", model, signatures={"forward": {"batchable": True}})
    loaded = store.load("mlp")

    assert saved.info.serializer == "torch"
    assert saved.info.options["format"] == "layers"
    assert saved.info.code_on_load is False
    assert saved.info.framework.name == "torch"
    assert saved.info.framework.version == torch.__version__
    assert saved.info.options["versions"]["torch"] == torch.__version__
    assert "safetensors" in saved.info.options["versions"]  # a Bento installs it
    assert set(saved.info.files) == {"layers.json", "weights.safetensors"}
    assert type(loaded) is nn.Sequential and not loaded.training
    assert loaded[0].weight.dtype == torch.float64
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))  # dropout off: eval mode survived


def test_training_mode_is_restored_per_submodule() -> None:
    model = _layers().train()
    model[3].eval()

    store.save_model("mlp", model, signatures=[])
    loaded = store.load("mlp")

    assert loaded.training and loaded[2].training
    assert not loaded[3].training and not loaded[3][0].training


def test_own_class_becomes_torchscript_with_its_exported_method() -> None:
    model = Scorer().eval()
    x = _batch()

    saved = store.save_model("scorer", model, signatures={"predict": {"batchable": True}})
    loaded = store.load("scorer")

    assert saved.info.options["format"] == "torchscript"
    assert saved.info.options["fallback_reason"] == [
        f"layers: {__name__}.Scorer is not a standard torch.nn layer"
    ]
    assert saved.info.code_on_load is True  # a TorchScript program runs, though nothing unpickles
    assert set(saved.info.files) == {"module.torchscript.pt"}
    assert isinstance(loaded, torch.jit.ScriptModule) and not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
        assert torch.equal(loaded.predict(x), model.predict(x))


def test_a_method_torchscript_would_drop_sends_the_module_to_cloudpickle() -> None:
    model = PythonOnly().eval()

    saved = store.save_model("scorer", model, signatures=["describe"])
    loaded = store.load("scorer")

    assert saved.info.options["format"] == "cloudpickle"
    assert "torchscript: TorchScript would drop describe" in saved.info.options["fallback_reason"]
    assert saved.info.code_on_load is True
    assert set(saved.info.files) == {"module.pkl"}
    assert loaded.describe() == model.describe() and not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(_batch()), model(_batch()))


def test_extra_attributes_keep_a_sequential_out_of_the_spec() -> None:
    model = _layers().eval()
    model.labels = ["billing", "bug", "other"]

    saved = store.save_model("mlp", model, signatures=[])

    assert saved.info.options["format"] != "layers"
    assert "attributes" in saved.info.options["fallback_reason"][0]
    assert store.load("mlp").labels == ["billing", "bug", "other"]


@pytest.mark.parametrize("relpath", ["weights.safetensors", "layers.json"])
def test_tampered_artifacts_are_refused(relpath: str) -> None:
    saved = store.save_model("mlp", _layers().eval(), signatures=[])
    target = saved.path / relpath
    data = bytearray(target.read_bytes())
    data[-2] ^= 0x01
    target.write_bytes(bytes(data))

    with pytest.raises(ChecksumMismatch, match=relpath.replace(".", r"\.")):
        store.load("mlp")


def test_tampered_torchscript_archive_is_refused_before_torch_reads_it() -> None:
    saved = store.save_model("scorer", Scorer().eval(), signatures=[])
    target = saved.path / "module.torchscript.pt"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))

    with pytest.raises(ChecksumMismatch, match=r"module\.torchscript\.pt"):
        store.load("scorer")


def test_a_spec_can_only_name_torch_nn_layers() -> None:
    from runtime.store.serializers.torch import build_from_spec

    with pytest.raises(SerializationError, match=r"'system', which is not a torch\.nn layer"):
        build_from_spec({"type": "system", "args": {"command": "touch /tmp/pwned"}})
    with pytest.raises(SerializationError, match=r"not a torch\.nn layer"):
        build_from_spec({"type": "functional", "args": {}})
    with pytest.raises(SerializationError, match=r"cannot build Linear"):
        build_from_spec({"type": "Linear", "args": {"in_features": 2, "nonsense": 1}})


def test_saved_spec_is_readable_data() -> None:
    saved = store.save_model("mlp", _layers().eval(), signatures=[])
    spec = json.loads((saved.path / "layers.json").read_text())

    assert spec["type"] == "Sequential"
    assert spec["children"][0] == [
        "0",
        {"type": "Linear", "args": {"in_features": 4, "out_features": 8, "bias": True}},
    ]
    assert spec["children"][3][1]["children"][0][1]["args"]["bias"] is False


def test_torch_modules_are_matched_after_the_transformers_adapters() -> None:
    assert serializer_for(nn.Linear(2, 2)).name == "torch"
    assert serializer_for(Scorer()).name == "torch"


@pytest.mark.parametrize(
    ("layers", "x"),
    [
        (
            lambda: nn.Sequential(
                nn.Conv1d(2, 4, 3, padding=1, stride=2),
                nn.BatchNorm1d(4),
                nn.GELU(approximate="tanh"),
                nn.Flatten(),
                nn.LayerNorm(8, elementwise_affine=False),
            ),
            lambda: torch.randn(3, 2, 4, generator=torch.Generator().manual_seed(2)),
        ),
        (
            lambda: nn.Sequential(nn.Embedding(10, 4, padding_idx=0), nn.Flatten(), nn.Linear(8, 2)),
            lambda: torch.tensor([[1, 2], [0, 9]]),
        ),
    ],
)
def test_common_layers_fit_the_spec(layers: Any, x: Any) -> None:
    torch.manual_seed(0)
    model = layers()
    model(torch.cat([x(), x()]) if x().dtype != torch.int64 else x())  # fill BatchNorm stats
    model.eval()

    saved = store.save_model("layers", model, signatures=[])
    loaded = store.load("layers")

    assert saved.info.options["format"] == "layers", saved.info.options
    with torch.no_grad():
        assert torch.equal(loaded(x()), model(x()))
