"""What a Bento folder is (`bento.yaml` as typed models, the `Bento` handle) and the local
bento store under `$NBENTO_HOME/bentos/NAME/VERSION/`: list, get, delete.

`bento.yaml` is written in BentoML's spec 2 (`spec: 2`, `service: "module:Class"`,
`entry_service`, `services`, `schema`, `image`, `models[].tag`), so BentoML's tools read it;
nbento's own keys that would clash with BentoML's are stored as `nbento_service`,
`nbento_apis` and `nbento_runners`. Files written before that (no `spec`) still read.
"""

from __future__ import annotations

import logging
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from runtime.errors import NbentoError
from runtime.settings import ServerConfig, load_config, nbento_home
from runtime.tags import Tag, validate_name

log = logging.getLogger("nbento.bentos")

BENTO_FILE = "bento.yaml"
CONFIG_FILE = "config.yaml"


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Resources(_Doc):
    """Kubernetes-style quantities; `gpu` counts `nvidia.com/gpu`."""

    cpu: str = "500m"
    memory: str = "512Mi"
    gpu: int = 0


class BentoApi(_Doc):
    name: str
    route: str
    batchable: bool = False
    max_batch_size: int | None = None
    max_latency_ms: float | None = None
    doc: str = ""
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]


class RunnerMethod(_Doc):
    batchable: bool
    batch_dim: int = 0
    batching: dict[str, Any] | None = None  # effective settings for batchable methods


class BentoRunner(_Doc):
    name: str
    model_tag: str
    methods: dict[str, RunnerMethod]
    resources: Resources = Field(default_factory=Resources)


class BentoModel(_Doc):
    tag: str
    framework: str
    framework_version: str | None = None
    size_bytes: int
    model_yaml_sha256: str
    # BentoML's BentoModelInfo fields besides `tag`
    module: str | None = None
    creation_time: datetime | None = None


class BentoEnvironment(_Doc):
    python_version: str
    base_image: str
    system_packages: list[str] = Field(default_factory=list)
    requirements: str = "env/python/requirements.txt"
    packages: dict[str, str] = Field(default_factory=dict)  # the service's direct needs
    wheels: list[str] = Field(default_factory=list)
    unresolved_imports: list[str] = Field(default_factory=list)
    built_on: dict[str, str] = Field(default_factory=dict)


class BentomlSpec(_Doc):
    """The spec-2 keys BentoML reads to serve, containerize and push the Bento (see
    runtime/export/bentoml_service.py, which writes the service module they name)."""

    service: str  # "module:Class" inside src/
    entry_service: str
    services: list[dict[str, Any]]
    api_schema: dict[str, Any] = Field(default_factory=dict)  # `schema` on disk
    image: dict[str, Any] = Field(default_factory=dict)


class BentoInfo(_Doc):
    """`bento.yaml` (see the module docstring for the on-disk key names)."""

    name: str
    version: str
    service: str
    entry_point: str  # relative to the Bento root, what `nbento serve` is given
    command: list[str]
    creation_time: datetime
    nbento_version: str
    labels: dict[str, str] = Field(default_factory=dict)
    source: dict[str, str | None] = Field(default_factory=dict)
    apis: list[BentoApi]
    runners: list[BentoRunner]
    models: list[BentoModel]
    python_version: str
    environment: BentoEnvironment
    config: str = CONFIG_FILE
    api_server_resources: Resources = Field(default_factory=Resources)
    bentoml: BentomlSpec | None = None  # None in Bentos built before BentoML interop

    def to_yaml_dict(self) -> dict[str, Any]:
        """What `bento.yaml` holds: BentoML's spec-2 keys first, nbento's beside them."""
        data = self.model_dump(mode="json", exclude={"bentoml"})
        out: dict[str, Any] = {"name": data.pop("name"), "version": data.pop("version")}
        if self.bentoml is not None:
            spec = self.bentoml.model_dump(mode="json")
            out["spec"] = 2
            out["service"] = spec["service"]
            out["entry_service"] = spec["entry_service"]
            out["services"] = spec["services"]
            out["schema"] = spec["api_schema"]
            out["image"] = spec["image"]
            for old, new in _RENAMED.items():
                out[new] = data.pop(old)
        out.update(data)
        return out

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_yaml_dict(), sort_keys=False, allow_unicode=True)

    @classmethod
    def from_yaml_dict(cls, data: Any) -> BentoInfo:
        if not isinstance(data, dict):
            raise ValueError(f"expected a mapping, got {type(data).__name__}")
        data = dict(data)
        if data.pop("spec", 1) == 2:
            if "nbento_service" not in data:
                raise ValueError(
                    "a BentoML Bento, not one nbento built (no nbento_service key); serve it "
                    "with `bentoml serve`"
                )
            data["bentoml"] = {
                "service": data.pop("service"),
                "entry_service": data.pop("entry_service", ""),
                "services": data.pop("services", []),
                "api_schema": data.pop("schema", {}),
                "image": data.pop("image", {}),
            }
            for key in _BENTOML_ONLY:
                data.pop(key, None)
            for old, new in _RENAMED.items():
                data[old] = data.pop(new)
        return cls.model_validate(data)


# nbento's keys whose BentoML namesakes mean something else (spec 2 on disk).
_RENAMED = {"service": "nbento_service", "apis": "nbento_apis", "runners": "nbento_runners"}
# Keys BentoML may add when it rewrites bento.yaml (`bentoml import` keeps the file as it is).
_BENTOML_ONLY = ("bentoml_version", "envs", "args")


class Bento:
    """A built Bento folder and its parsed `bento.yaml`."""

    def __init__(self, path: Path, info: BentoInfo) -> None:
        self.path = path
        self.info = info

    @property
    def tag(self) -> Tag:
        return Tag(self.info.name, self.info.version)

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def version(self) -> str:
        return self.info.version

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())

    def server_config(self) -> ServerConfig:
        return load_config(self.path / self.info.config)

    def __repr__(self) -> str:
        return f"Bento(tag='{self.tag}', path='{self.path}')"

    @classmethod
    def read(cls, path: Path) -> Bento:
        file = path / BENTO_FILE
        try:
            info = BentoInfo.from_yaml_dict(yaml.safe_load(file.read_text()))
        except OSError as exc:
            raise NbentoError(f"{path} is not a Bento folder: no readable {BENTO_FILE}") from exc
        except (yaml.YAMLError, ValueError) as exc:  # pydantic ValidationError is a ValueError
            raise NbentoError(f"cannot read {file}: {exc}") from exc
        return cls(path, info)


# ------------------------------------------------------------------ the bento store


def bentos_root() -> Path:
    return nbento_home() / "bentos"


def list_bentos(name: str | None = None) -> list[Bento]:
    """Every stored Bento (or those of `name`), sorted by name then version. A folder nbento
    cannot read (a Bento another tool wrote, a damaged bento.yaml) is skipped with a warning:
    one bad entry must not hide the others."""
    root = bentos_root()
    names = [validate_name(name, "bento name")] if name else _dirs(root)
    found: list[Bento] = []
    for bento_name in names:
        for version in _dirs(root / bento_name):
            if (root / bento_name / version / BENTO_FILE).is_file():
                try:
                    found.append(Bento.read(root / bento_name / version))
                except NbentoError as exc:
                    log.warning("skipping %s/%s: %s", bento_name, version, exc)
    return found


def _dirs(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def get_bento(ref: str | Path) -> Bento:
    """A Bento by tag (`NAME`, `NAME:latest`, `NAME:VERSION`) or by folder path."""
    path = Path(ref)
    if (path / BENTO_FILE).is_file():
        return Bento.read(path.resolve())
    text = str(ref)
    if os.sep in text or text.startswith("."):
        raise NbentoError(f"{ref} is not a Bento folder (no {BENTO_FILE} in it)")
    tag = Tag.parse(text)
    versions = [b for b in list_bentos(tag.name)]
    if not versions:
        names = _dirs(bentos_root())
        known = f"; built Bentos: {', '.join(names)}" if names else " (none built yet)"
        raise NbentoError(
            f"no Bento {tag.name!r} in {bentos_root()}{known}. Build one with `nbento build SRC`"
        )
    if tag.version is None:
        return versions[-1]
    for bento in versions:
        if bento.version == tag.version:
            return bento
    shown = ", ".join(b.version for b in versions[-5:])
    raise NbentoError(f"Bento {tag.name!r} has no version {tag.version!r} (versions: {shown})")


def delete_bento(ref: str) -> Bento:
    """Remove one stored Bento version (a folder outside the store is never deleted)."""
    bento = get_bento(ref)
    root = bentos_root().resolve()
    if root not in bento.path.resolve().parents:
        raise NbentoError(f"{bento.path} is not in the bento store {root}; delete it yourself")
    shutil.rmtree(bento.path)
    return bento


# ------------------------------------------------------------------------ build
