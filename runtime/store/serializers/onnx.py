"""ONNX models (`onnx.ModelProto`, an `onnxruntime.InferenceSession`, or an `OnnxModel`) saved
as one `model.onnx` and loaded as an `OnnxModel`: an onnxruntime session on the CPU with
`run(None, {"x": arr})` as usual and a batchable `predict(arr)`.

An ONNX graph uses a fixed operator set and no custom operator library is registered on load;
the session is built from the checked bytes, not a path, so a graph cannot pull in external
data files from elsewhere on disk. Models with external data are refused when saving.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runtime.errors import SerializationError
from runtime.store.artifacts import ArtifactReader, ArtifactWriter

if TYPE_CHECKING:  # pragma: no cover
    from runtime.store.info import ModelInfo

MODEL_FILE = "model.onnx"
# onnxruntime's element types -> NumPy dtypes, so JSON numbers (float64) feed float32 inputs.
_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
}


class OnnxModel:
    """An onnxruntime session with a `predict` for services: `predict(arr)` for one input,
    `predict(a, b)` in input order or `predict(x=a)` by name; returns the first output (all
    outputs as a tuple when there are several)."""

    def __init__(
        self,
        model_bytes: bytes,
        providers: Sequence[str] = ("CPUExecutionProvider",),
        *,
        saved_from: str = "OnnxModel",
    ) -> None:
        import onnxruntime as ort

        self.model_bytes = model_bytes
        self.saved_from = saved_from
        self.session = ort.InferenceSession(model_bytes, providers=list(providers))
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, output_names: Sequence[str] | None, feed: Mapping[str, Any]) -> list[Any]:
        return list(self.session.run(output_names, dict(feed)))

    def get_inputs(self) -> list[Any]:
        return list(self.session.get_inputs())

    def get_outputs(self) -> list[Any]:
        return list(self.session.get_outputs())

    def predict(self, *arrays: Any, **named: Any) -> Any:
        import numpy as np

        if arrays and named:
            raise TypeError("predict takes inputs by position or by name, not both")
        if len(arrays) > len(self.input_names):
            raise TypeError(
                f"the model has {len(self.input_names)} inputs ({', '.join(self.input_names)}); "
                f"predict got {len(arrays)} arrays"
            )
        feed = dict(zip(self.input_names, arrays, strict=False)) if arrays else dict(named)
        missing = [n for n in self.input_names if n not in feed]
        unknown = [n for n in feed if n not in self.input_names]
        if missing or unknown:
            raise TypeError(
                f"predict needs the inputs {', '.join(self.input_names)}; missing "
                f"{missing or 'none'}, unknown {unknown or 'none'}"
            )
        types = {i.name: i.type for i in self.session.get_inputs()}
        feed = {n: np.asarray(v, dtype=_DTYPES.get(types[n])) for n, v in feed.items()}
        outputs = self.session.run(None, feed)
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def __repr__(self) -> str:
        return f"OnnxModel(inputs={self.input_names}, outputs={self.output_names})"


def _kind(obj: Any) -> str | None:
    if isinstance(obj, OnnxModel):
        return "OnnxModel"
    onnx = sys.modules.get("onnx")
    if onnx is not None and isinstance(obj, onnx.ModelProto):
        return "ModelProto"
    ort = sys.modules.get("onnxruntime")
    if ort is not None and isinstance(obj, ort.InferenceSession):
        return "InferenceSession"
    return None


def _model_bytes(obj: Any, kind: str) -> bytes:
    if kind == "OnnxModel":
        return bytes(obj.model_bytes)
    if kind == "ModelProto":
        return bytes(obj.SerializeToString())
    # onnxruntime keeps what the session was built from (a path or the bytes) but has no
    # public accessor for it.
    data = getattr(obj, "_model_bytes", None)
    path = getattr(obj, "_model_path", None)
    if data is not None:
        return bytes(data)
    if path:
        return Path(path).read_bytes()
    raise SerializationError(
        "cannot find the model this InferenceSession was built from; save the onnx.ModelProto "
        "or the .onnx file's bytes (onnx.load(path)) instead"
    )


def _check_self_contained(data: bytes) -> None:
    try:
        import onnx
    except ImportError:  # onnxruntime alone: building from bytes refuses external data anyway
        return

    proto = onnx.load_from_string(data)
    external = [
        t.name
        for t in proto.graph.initializer
        if t.data_location == onnx.TensorProto.EXTERNAL
    ]
    if external:
        raise SerializationError(
            f"the ONNX model keeps tensors in external files ({', '.join(external[:5])}); load "
            "it with onnx.load(path, load_external_data=True) and save that ModelProto"
        )


class OnnxSerializer:
    name = "onnx"
    framework = "onnxruntime"

    def matches(self, obj: Any) -> bool:
        return _kind(obj) is not None

    def code_on_load(self, options: Mapping[str, Any]) -> bool:
        return False

    def prepare(self, obj: Any) -> OnnxModel:
        """What is saved is what loads: an `OnnxModel`, so `predict` signatures can be checked
        against a `ModelProto` or a session too."""
        kind = _kind(obj)
        if kind == "OnnxModel":
            return obj
        assert kind is not None
        data = _model_bytes(obj, kind)
        _check_self_contained(data)
        return OnnxModel(data, saved_from=kind)

    def save(self, obj: Any, artifacts: ArtifactWriter) -> dict[str, Any]:
        model = self.prepare(obj)
        data = model.model_bytes
        versions: dict[str, str] = {}
        for module in ("onnx", "onnxruntime"):
            version = getattr(sys.modules.get(module), "__version__", None)
            if version is not None:
                versions[module] = str(version)
        with artifacts.open(MODEL_FILE) as f:
            f.write(data)
        return {"format": "onnx", "saved_from": model.saved_from, "versions": versions}

    def load(self, artifacts: ArtifactReader, info: ModelInfo, **options: Any) -> Any:
        """`providers=[...]`: onnxruntime execution providers (default the CPU)."""
        providers = options.pop("providers", ("CPUExecutionProvider",))
        if options:
            raise SerializationError(
                f"unknown load options for an ONNX model: {sorted(options)}; only providers"
            )
        with artifacts.open(MODEL_FILE) as reader:
            data = reader.read()
            reader.verify()
        return OnnxModel(data, providers)
