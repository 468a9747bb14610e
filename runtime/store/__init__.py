"""The versioned model store: save, list, load, export and import model versions.

    from runtime.store import save_model, load
"""

from __future__ import annotations

from runtime.store.info import MODEL_FILE, ModelInfo, ModelSignature
from runtime.store.model_store import (
    Model,
    ModelStore,
    default_store,
    delete,
    get,
    list_models,
    load,
    save_model,
)
from runtime.store.serializers import Serializer, register_serializer
from runtime.store.transfer import export_model, import_model

__all__ = [
    "MODEL_FILE",
    "Model",
    "ModelInfo",
    "ModelSignature",
    "ModelStore",
    "Serializer",
    "default_store",
    "delete",
    "export_model",
    "get",
    "import_model",
    "list_models",
    "load",
    "register_serializer",
    "save_model",
]
