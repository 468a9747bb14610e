"""Anything else, as cloudpickle: functions and classes defined in a notebook included.
Loading unpickles, so it runs code from the file (`code_on_load: true` in model.yaml)."""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from runtime.errors import SerializationError
from runtime.store.artifacts import ArtifactReader, ArtifactWriter

if TYPE_CHECKING:  # pragma: no cover
    from runtime.store.info import ModelInfo

PICKLE_FILE = "model.pkl"


def dump_cloudpickle(obj: Any, artifacts: ArtifactWriter, relpath: str = PICKLE_FILE) -> None:
    """Write `obj` with cloudpickle, turning "cannot pickle" into an error that says what to do."""
    import cloudpickle

    try:
        with artifacts.open(relpath) as f:
            cloudpickle.dump(obj, f, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise SerializationError(
            f"cannot pickle the {type(obj).__name__} object: {exc}. Register a serializer for "
            "it with runtime.register_serializer(...) or pass serializer=..."
        ) from exc


def load_pickle(artifacts: ArtifactReader, relpath: str = PICKLE_FILE) -> Any:
    """Unpickle a file only after its whole content matched its recorded sha256."""
    with open(artifacts.verified_path(relpath), "rb") as f:
        return pickle.load(f)


class CloudpickleSerializer:
    """Any picklable object; the last adapter tried."""

    name = "cloudpickle"
    framework = "cloudpickle"
    filename = PICKLE_FILE

    def matches(self, obj: Any) -> bool:
        return True

    def code_on_load(self, options: Mapping[str, Any]) -> bool:
        return True

    def save(self, obj: Any, artifacts: ArtifactWriter) -> dict[str, Any]:
        dump_cloudpickle(obj, artifacts, self.filename)
        return {"protocol": pickle.HIGHEST_PROTOCOL}

    def load(self, artifacts: ArtifactReader, info: ModelInfo, **options: Any) -> Any:
        if options:
            raise SerializationError(f"unknown load options for a pickled model: {sorted(options)}")
        return load_pickle(artifacts, self.filename)
