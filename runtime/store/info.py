"""What `model.yaml` holds: one stored version's metadata, read and written by the store, the
serializers and the tar transfer alike.

The file carries BentoML's model schema beside nbento's (`api_version`, `context`,
`batch_dim` as an `[input, output]` pair), so a `models/` folder is both an nbento store and a
BentoML store; nbento reads files written before that and files BentoML wrote alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

MODEL_FILE = "model.yaml"
# BentoML's model.yaml schema version (bentoml/_internal/models/model.py writes "v1"/"v2").
BENTOML_API_VERSION = "v1"


class ModelSignature(BaseModel):
    """How a method is called: `batchable` methods take and return a batch along `batch_dim`."""

    model_config = ConfigDict(extra="forbid")

    batchable: bool = False
    batch_dim: int = 0
    input_spec: Any = None
    output_spec: Any = None
    description: str | None = None

    @field_validator("batch_dim", mode="before")
    @classmethod
    def _one_dim(cls, value: Any) -> Any:
        """BentoML writes `[input_dim, output_dim]`; nbento batches inputs and outputs along
        one dimension, so a pair must agree."""
        if isinstance(value, (list, tuple)):
            if len(value) != 2 or value[0] != value[1]:
                raise ValueError(
                    f"batch_dim {list(value)!r}: nbento batches inputs and outputs along the "
                    f"same dimension; save the model with one batch_dim"
                )
            return value[0]
        return value


class Framework(BaseModel):
    name: str
    version: str | None = None


def check_signature_name(method: object) -> str:
    """A signature names a public method: an identifier without a leading `_`. Checked on
    every read of model.yaml, since a runner calls the method by this name with client input
    (an imported `__class__`, `_private` or `os.system` must never reach `getattr`)."""
    if not isinstance(method, str) or not method.isidentifier() or method.startswith("_"):
        raise ValueError(
            f"invalid signature name {method!r}: use a public method name like 'predict' "
            "(an identifier not starting with '_')"
        )
    return method


class Provenance(BaseModel):
    """Where the model was saved from; empty outside a notebook."""

    notebook: str | None = None
    cell_id: str | None = None


class ModelInfo(BaseModel):
    """The content of `model.yaml`. Field names follow BentoML's where the meaning is the same."""

    model_config = ConfigDict(extra="ignore")

    name: str
    version: str
    module: str
    serializer: str
    framework: Framework
    # Whether loading runs code that came with the files (unpickling, a TorchScript program).
    # Written for people and tools; a trust gate asks the serializer instead
    # (`runs_code_on_load`), since an imported model.yaml could claim anything. Absent in
    # versions saved before the field existed: assumed true.
    code_on_load: bool = True
    python_version: str
    nbento_version: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    signatures: dict[str, ModelSignature] = Field(default_factory=dict)

    @field_validator("signatures")
    @classmethod
    def _public_method_names(cls, value: dict[str, ModelSignature]) -> dict[str, ModelSignature]:
        for method in value:
            check_signature_name(method)
        return value

    creation_time: datetime
    size_bytes: int
    files: dict[str, str]
    provenance: Provenance = Field(default_factory=Provenance)

    def bentoml_fields(self) -> dict[str, Any]:
        """The keys BentoML requires that nbento's own fields do not already give it
        (`context`, `api_version`), and `signatures` in BentoML's shape."""
        framework_versions = {self.framework.name: self.framework.version} if self.framework.version else {}
        signatures: dict[str, Any] = {}
        for method, sig in self.signatures.items():
            entry: dict[str, Any] = {"batchable": sig.batchable}
            if sig.batchable:
                entry["batch_dim"] = [sig.batch_dim, sig.batch_dim]
            for key in ("input_spec", "output_spec", "description"):
                if getattr(sig, key) is not None:
                    entry[key] = getattr(sig, key)
            signatures[method] = entry
        return {
            "api_version": BENTOML_API_VERSION,
            "context": {
                "framework_name": self.framework.name,
                "framework_versions": framework_versions,
                "python_version": self.python_version,
            },
            "signatures": signatures,
        }

    def to_yaml(self) -> str:
        data = self.model_dump(mode="json")
        data.update(self.bentoml_fields())
        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
