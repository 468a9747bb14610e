"""nbento's runtime: the model store, model handles, services, the batched HTTP server, and
Bento / Kubernetes export. Everything here runs inside a container; nothing imports Jupyter.

    from nbento import save_model, load, runner, api     # the name users import
    from runtime import save_model, load, runner, api    # the same objects
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from runtime.version import __version__

# name -> module that defines it; imported on first use so `import runtime` stays cheap
# in a kernel (no FastAPI import until a server or a build needs it).
_EXPORTS = {
    "ModelStore": "store",
    "Model": "store",
    "save_model": "store",
    "get": "store",
    "load": "store",
    "list_models": "store",
    "delete": "store",
    "export_model": "store",
    "import_model": "store",
    "register_serializer": "store",
    "Serializer": "store",
    "Tag": "tags",
    "runner": "service.handles",
    "ModelHandle": "service.handles",
    "api": "service.definition",
    "Service": "service.definition",
    "load_service": "service.definition",
    "NbentoError": "errors",
    "NDArray": "service.schema",
    "ndarray": "service.schema",
    "DataFrameOf": "service.schema",
    "UploadedFile": "service.schema",
    "register_rows": "rows",
}

if TYPE_CHECKING:  # pragma: no cover
    from runtime.errors import NbentoError
    from runtime.rows import register_rows
    from runtime.service.definition import Service, api, load_service
    from runtime.service.handles import ModelHandle, runner
    from runtime.service.schema import DataFrameOf, NDArray, UploadedFile, ndarray
    from runtime.store import (
        Model,
        ModelStore,
        Serializer,
        delete,
        export_model,
        get,
        import_model,
        list_models,
        load,
        register_serializer,
        save_model,
    )
    from runtime.tags import Tag


def __getattr__(name: str) -> Any:
    if name == "list":  # `runtime.list()` as the issue spells it; `list_models` is the same
        name = "list_models"
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'runtime' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "ModelStore",
    "Model",
    "save_model",
    "get",
    "load",
    "list_models",
    "delete",
    "export_model",
    "import_model",
    "register_serializer",
    "Serializer",
    "Tag",
    "runner",
    "ModelHandle",
    "api",
    "Service",
    "load_service",
    "NbentoError",
    "NDArray",
    "ndarray",
    "DataFrameOf",
    "UploadedFile",
    "register_rows",
    "__version__",
]
