"""Model archives as an attacker writes them: a valid `model.yaml` (sha256 of every file right)
around whatever files and claims they choose. No nbento store is involved in making them."""

from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from runtime.store.info import Framework, ModelInfo


class _Tripwire:
    """Unpickling this writes `path`: proof that code from the file ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (Path(self.path), "code from the pickle ran"))


def tripwire_pickle(path: Path) -> bytes:
    return pickle.dumps(_Tripwire(path), protocol=pickle.HIGHEST_PROTOCOL)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def model_yaml(
    name: str,
    version: str,
    files: dict[str, bytes],
    *,
    serializer: str,
    module: str,
    signatures: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    code_on_load: bool = False,
) -> str:
    """A model.yaml that matches `files`, built field by field (signature names unchecked)."""
    info = ModelInfo(
        name=name,
        version=version,
        module=module,
        serializer=serializer,
        framework=Framework(name=serializer),
        code_on_load=code_on_load,
        python_version="3.11.0",
        options=options or {},
        creation_time=datetime(2026, 1, 1, tzinfo=timezone.utc),
        size_bytes=sum(len(b) for b in files.values()),
        files={rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()},
    )
    data = info.model_dump(mode="json")
    data["signatures"] = signatures or {}
    import yaml

    return yaml.safe_dump(data, sort_keys=False)


def write_tar(path: Path, name: str, version: str, files: dict[str, bytes], yaml_text: str) -> Path:
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        for rel, data in {"model.yaml": yaml_text.encode(), **files}.items():
            member = tarfile.TarInfo(f"{name}/{version}/{rel}")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return path


def pickle_tar(path: Path, tripwire: Path, *, version: str = "20260101-000000-aaaaaa") -> Path:
    """A cloudpickle model whose unpickling writes `tripwire`; its model.yaml claims
    `code_on_load: false`."""
    files = {"model.pkl": tripwire_pickle(tripwire)}
    text = model_yaml(
        "gift", version, files, serializer="cloudpickle",
        module="runtime.store.serializers.pickle", code_on_load=False,
        signatures={"predict": {"batchable": False}},
    )
    return write_tar(path, "gift", version, files, text)


def array_tar(
    path: Path,
    signatures: dict[str, Any],
    *,
    name: str = "vectors",
    version: str = "20260101-000000-bbbbbb",
) -> Path:
    """A plain NumPy model (no pickle) declaring `signatures`."""
    files = {"array.npy": npy_bytes(np.arange(6, dtype=np.float64).reshape(3, 2))}
    text = model_yaml(
        name, version, files, serializer="numpy", module="runtime.store.serializers.numpy",
        signatures=signatures, options={"format": "npy"},
    )
    return write_tar(path, name, version, files, text)
