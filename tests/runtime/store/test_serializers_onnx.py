"""ONNX models (built here: a graph from onnx.helper, a torch export) saved as one .onnx file
and served through onnxruntime on the CPU with `run` and a batchable `predict`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from runtime import store
from runtime.errors import ChecksumMismatch, SerializationError
from runtime.store.serializers.onnx import OnnxModel
from tests.conftest import require_module

onnx = require_module("onnx")
ort = require_module("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def _affine_graph() -> Any:
    """y = x @ W + b, with a dynamic batch dimension."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.normal(size=(3, 2)).astype(np.float32), "W")
    bias = numpy_helper.from_array(np.array([0.5, -1.0], dtype=np.float32), "b")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "b"], ["y"])],
        "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        initializer=[weight, bias],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_model_proto_round_trips_as_an_onnxruntime_session() -> None:
    proto = _affine_graph()
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    expected = ort.InferenceSession(proto.SerializeToString()).run(None, {"x": x})[0]

    saved = store.save_model("affine", proto, signatures={"predict": {"batchable": True}})
    loaded = store.load("affine")

    assert saved.info.serializer == "onnx"
    assert saved.info.options["format"] == "onnx"
    assert saved.info.options["saved_from"] == "ModelProto"
    assert saved.info.framework.name == "onnxruntime"
    assert saved.info.framework.version == ort.__version__
    assert saved.info.options["versions"]["onnx"] == onnx.__version__
    assert saved.info.code_on_load is False
    assert set(saved.info.files) == {"model.onnx"}
    assert isinstance(loaded, OnnxModel)
    np.testing.assert_array_equal(loaded.run(None, {"x": x})[0], expected)
    # predict takes JSON-like float64 rows and feeds the float32 input the graph declares
    np.testing.assert_array_equal(loaded.predict(x.astype(np.float64).tolist()), expected)
    np.testing.assert_array_equal(loaded.predict(x=x), expected)


def test_predict_names_the_inputs_it_needs() -> None:
    store.save_model("affine", _affine_graph(), signatures=[])
    loaded = store.load("affine")

    with pytest.raises(TypeError, match=r"needs the inputs x; missing \['x'\], unknown \['z'\]"):
        loaded.predict(z=np.zeros((1, 3)))


def test_torch_export_and_a_session_round_trip(tmp_path: Any) -> None:
    torch = require_module("torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2)).eval()
    path = tmp_path / "net.onnx"
    example = torch.randn(2, 4)
    torch.onnx.export(
        net,
        (example,),
        str(path),
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
        dynamo=False,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32)

    saved = store.save_model("net", session, signatures={"predict": {"batchable": True}})
    loaded = store.load("net")

    assert saved.info.options["saved_from"] == "InferenceSession"
    np.testing.assert_array_equal(loaded.predict(x), session.run(None, {"x": x})[0])
    with torch.no_grad():
        np.testing.assert_allclose(loaded.predict(x), net(torch.from_numpy(x)).numpy(), rtol=1e-5)


def test_external_data_is_refused_with_what_to_do() -> None:
    proto = _affine_graph()
    tensor = proto.graph.initializer[0]
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../secrets.bin"

    with pytest.raises(SerializationError, match=r"external files \(W\).*load_external_data=True"):
        store.save_model("affine", proto, signatures=[])
    assert store.list_models() == []


def test_tampered_onnx_file_is_refused() -> None:
    saved = store.save_model("affine", _affine_graph(), signatures=[])
    target = saved.path / "model.onnx"
    data = bytearray(target.read_bytes())
    data[-5] ^= 0x01
    target.write_bytes(bytes(data))

    with pytest.raises(ChecksumMismatch, match=r"model\.onnx"):
        store.load("affine")
