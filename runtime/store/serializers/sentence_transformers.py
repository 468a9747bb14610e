"""sentence-transformers models saved in their own folder format (safetensors + JSON), so a
served embedder is rebuilt from weights and configs, never unpickled.

Registered with the built-in serializers; nothing here imports torch until a model is saved
or loaded, and `matches` only looks at modules the caller already imported.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from runtime.store.artifacts import ArtifactReader, ArtifactWriter

if TYPE_CHECKING:  # pragma: no cover
    from runtime.store.info import ModelInfo


class SentenceTransformerSerializer:
    name = "sentence-transformers"
    framework = "sentence-transformers"

    def matches(self, obj: Any) -> bool:
        module = sys.modules.get("sentence_transformers")
        cls = getattr(module, "SentenceTransformer", None) if module is not None else None
        return cls is not None and isinstance(obj, cls)

    def code_on_load(self, options: Mapping[str, Any]) -> bool:
        # Weights are safetensors, configs JSON; modules.json names classes of the installed
        # library, and remote code stays off (trust_remote_code defaults to False).
        return False

    def save(self, obj: Any, artifacts: ArtifactWriter) -> dict[str, Any]:
        obj.save(str(artifacts.path), safe_serialization=True)
        versions = {
            name: str(getattr(sys.modules.get(name), "__version__", None))
            for name in ("sentence_transformers", "transformers", "torch")
        }
        return {
            "layout": "save_pretrained folder",
            "saved_on_device": str(obj.device),
            "versions": versions,
        }

    def load(self, artifacts: ArtifactReader, info: ModelInfo, **options: Any) -> Any:
        """Every file is checked before the library parses any of them. `device` defaults to
        "cpu"; other options go to `SentenceTransformer(...)`."""
        artifacts.verify_rest()
        from sentence_transformers import SentenceTransformer

        device = options.pop("device", "cpu")
        return SentenceTransformer(
            str(artifacts.path), device=device, local_files_only=True, **options
        )
