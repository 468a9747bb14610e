"""The versioned model store: `$NBENTO_HOME/models/NAME/VERSION/` with `model.yaml` + artifacts.

A save writes into `models/NAME/.tmp-*`, fsyncs, then renames the folder into place, so readers
see a whole version or none (a killed save leaves only a hidden temp folder). Versions are
immutable; `latest` is the newest version name (versions sort in creation order). Loading only
reads: a Bento serves its models from a read-only filesystem. A version whose loading runs code
(a pickle) loads only when this machine trusts it (trust.py): saves here are trusted, imports
are not unless asked.

    from runtime import save_model, load
    model = save_model("support_classifier", clf, signatures={"predict": {"batchable": True}})
    clf2 = load("support_classifier:latest")
"""

from __future__ import annotations

import difflib
import errno
import os
import platform
import secrets
import shutil
import time
import warnings
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from runtime.errors import ModelNotFound, NbentoError, SerializationError
from runtime.settings import nbento_home
from runtime.store.artifacts import ArtifactReader, ArtifactWriter, fsync_dir
from runtime.store.info import (
    MODEL_FILE,
    Framework,
    ModelInfo,
    ModelSignature,
)
from runtime.store.save_inputs import (
    check_labels,
    check_metadata,
    check_provenance,
    jsonable,
    normalize_signatures,
)
from runtime.store.serializers import (
    Serializer,
    framework_version,
    prepared,
    runs_code_on_load,
    serializer_for,
    serializer_module,
    serializer_named,
)
from runtime.store.trust import TrustRegistry, check_trusted, record_saved, yaml_digest
from runtime.tags import Tag, new_version, validate_name

TMP_PREFIX = ".tmp-"
# A temp folder untouched this long belongs to a save that was killed; saves remove it.
STALE_TEMP_SECONDS = 24 * 3600


class Model:
    """A stored version: metadata only until `load()` is called."""

    def __init__(self, store: ModelStore, info: ModelInfo, path: Path, yaml_sha256: str) -> None:
        self.store = store
        self.info = info
        self.path = path
        self.tag = Tag(info.name, info.version)
        self.yaml_sha256 = yaml_sha256  # the trust registry's key for this exact version

    def load(self, *, trust: bool = False, **options: Any) -> Any:
        """Rebuild the object (sha256 of every artifact checked). Options go to the serializer,
        e.g. `mmap_mode="r"` for arrays. A version from outside whose loading runs code is
        refused with `UntrustedModel` unless this machine trusts it or `trust=True` (this call
        only; `nbento models trust TAG` records it)."""
        return self.store._load_model(self, options, trust=trust)

    def __repr__(self) -> str:
        return f"Model(tag='{self.tag}', serializer={self.info.serializer!r}, path='{self.path}')"


class ModelStore:
    """The models under one root folder (`$NBENTO_HOME/models`, or a Bento's `models/`).

    `fsync=False` skips the durability flushes (benchmarks, throw-away stores); renames stay
    atomic either way."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        fsync: bool = True,
        trust: TrustRegistry | None = None,
    ) -> None:
        self.root = Path(root)
        self.fsync = fsync
        self._trust = trust

    @property
    def trust(self) -> TrustRegistry:
        """The registry deciding which versions may run code on load: the one given, else this
        machine's (`$NBENTO_TRUST_DIR`, else `$NBENTO_HOME/trust`; see trust.py)."""
        return self._trust or TrustRegistry.default()

    def __repr__(self) -> str:
        return f"ModelStore('{self.root}')"

    # ---------------------------------------------------------------- reading

    def _names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if not p.name.startswith(".") and p.is_dir()
        )

    def _versions(self, name: str) -> list[str]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        return sorted(
            p.name
            for p in folder.iterdir()
            if not p.name.startswith(".") and (p / MODEL_FILE).is_file()
        )

    def resolve(self, tag: str | Tag) -> Tag:
        """`NAME` / `NAME:latest` -> `NAME:VERSION` of the newest version; checks existence."""
        parsed = Tag.parse(tag)
        versions = self._versions(parsed.name)
        if not versions:
            names = [n for n in self._names() if self._versions(n)]
            where = f"in store {self.root}"
            if not names:
                raise ModelNotFound(f"no model {parsed.name!r} {where} (the store is empty)")
            close = difflib.get_close_matches(parsed.name, names, n=3)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise ModelNotFound(
                f"no model {parsed.name!r} {where}{hint} (models: {', '.join(names)})"
            )
        if parsed.version is None:
            return Tag(parsed.name, versions[-1])
        if parsed.version not in versions:
            close = difflib.get_close_matches(parsed.version, versions, n=1, cutoff=0.8)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            shown = ", ".join(versions[-5:])
            raise ModelNotFound(
                f"model {parsed.name!r} has no version {parsed.version!r} in store "
                f"{self.root}{hint} (latest versions: {shown})"
            )
        return parsed

    def get(self, tag: str | Tag) -> Model:
        """The model's metadata (nothing is loaded). Raises `ModelNotFound` with suggestions."""
        resolved = self.resolve(tag)
        assert resolved.version is not None
        return self._read(self.root / resolved.name / resolved.version)

    def _read(self, path: Path) -> Model:
        yaml_path = path / MODEL_FILE
        try:
            raw = yaml_path.read_bytes()
            info = ModelInfo.model_validate(yaml.safe_load(raw.decode("utf-8")))
        except (OSError, UnicodeDecodeError, yaml.YAMLError, ValidationError) as exc:
            raise NbentoError(f"cannot read {yaml_path}: {exc}") from exc
        if (info.name, info.version) != (path.parent.name, path.name):
            raise NbentoError(
                f"{yaml_path} describes {info.name}:{info.version} but lives in "
                f"{path.parent.name}/{path.name}; the store was edited by hand"
            )
        return Model(self, info, path, yaml_digest(raw))

    def list_models(self, name: str | None = None) -> list[Model]:
        """Every stored version (or those of `name`), sorted by name then version."""
        names = [validate_name(name, "model name")] if name is not None else self._names()
        found: list[Model] = []
        for model_name in names:
            for version in self._versions(model_name):
                try:
                    found.append(self._read(self.root / model_name / version))
                except NbentoError as exc:
                    warnings.warn(f"skipping unreadable model: {exc}", stacklevel=2)
        return found

    def load(self, tag: str | Tag, *, trust: bool = False, **options: Any) -> Any:
        """Load the object saved under `tag` (see `Model.load`)."""
        return self.get(tag).load(trust=trust, **options)

    def _load_model(self, model: Model, options: dict[str, Any], *, trust: bool) -> Any:
        if not trust:
            check_trusted(model)
        reader = ArtifactReader(model.path, model.info.files)
        serializer = serializer_named(model.info.serializer, model.info.module)
        try:
            obj = serializer.load(reader, model.info, **options)
        except ModuleNotFoundError as exc:
            needed = sorted(model.info.options.get("versions") or {}) or [model.info.framework.name]
            missing = (exc.name or "a missing").split(".")[0]
            raise SerializationError(
                f"loading {model.tag} ({model.info.serializer}, "
                f"{model.info.options.get('format', 'default')} format) needs the {missing} "
                f"module, which is not installed here; install it (the model was saved with "
                f"{', '.join(needed)}) and load again"
            ) from exc
        reader.verify_rest()
        return obj

    # ---------------------------------------------------------------- writing

    def save_model(
        self,
        name: str,
        obj: Any,
        *,
        signatures: Mapping[str, Any] | Iterable[str] | None = None,
        labels: Mapping[str, str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        serializer: Serializer | str | None = None,
        provenance: Mapping[str, Any] | None = None,
    ) -> Model:
        """Save `obj` as a new immutable version of `name` and return it.

        `signatures`: `{"predict": {"batchable": True, "batch_dim": 0}}` or a list of method
        names (not batchable); default: the predict-like methods the object has."""
        validate_name(name, "model name")
        chosen = _choose_serializer(obj, serializer)
        obj = prepared(chosen, obj)
        info_fields: dict[str, Any] = {
            "signatures": normalize_signatures(obj, signatures),
            "labels": check_labels(labels),
            "metadata": check_metadata(metadata),
            "provenance": check_provenance(provenance),
        }
        version = new_version()
        created = datetime.now(timezone.utc)
        name_dir = self.root / name
        with _io_errors(
            f"save model {name!r} in {self.root}",
            when_full=", nothing was saved (the partial files were removed)",
        ):
            tmp = self._make_temp(name_dir, f"{version}-{secrets.token_hex(4)}")
            try:
                artifacts = ArtifactWriter(tmp, fsync=self.fsync)
                options = chosen.save(obj, artifacts) or {}
                files = artifacts.finish()
                if MODEL_FILE in files:
                    raise SerializationError(
                        f"serializer {chosen.name!r} wrote {MODEL_FILE}, a name the store reserves"
                    )
                info = ModelInfo(
                    name=name,
                    version=version,
                    module=serializer_module(chosen),
                    serializer=chosen.name,
                    framework=Framework(name=chosen.framework, version=framework_version(chosen)),
                    code_on_load=runs_code_on_load(chosen, options),
                    python_version=platform.python_version(),
                    nbento_version=_dist_version("nbento"),
                    options=jsonable(options, "serializer options"),
                    creation_time=created,
                    size_bytes=sum((tmp / rel).stat().st_size for rel in files),
                    files=files,
                    **info_fields,
                )
                text = info.to_yaml()
                record_saved(self, text, f"{name}:{version}")  # before the version appears
                self._publish(tmp, name_dir / version, text)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                with suppress(OSError):  # a new name's folder, if nothing else is in it
                    name_dir.rmdir()  # (a concurrent save's _make_temp retries)
                raise
            self.remove_stale_temp(name)
        return Model(self, info, name_dir / version, yaml_digest(text.encode("utf-8")))

    def remove_stale_temp(
        self, name: str, *, older_than_s: float = STALE_TEMP_SECONDS
    ) -> list[Path]:
        """Delete `.tmp-*` folders of `name` left by killed saves, imports or deletes.

        Only folders not modified for `older_than_s` go, so saves in flight are safe."""
        name_dir = self.root / validate_name(name, "model name")
        removed: list[Path] = []
        cutoff = time.time() - older_than_s
        try:
            candidates = [p for p in name_dir.iterdir() if p.name.startswith(TMP_PREFIX)]
        except OSError:
            return removed
        for path in candidates:
            try:
                if path.stat().st_mtime < cutoff:
                    shutil.rmtree(path)
                    removed.append(path)
            except OSError:
                continue  # removed by someone else meanwhile
        return removed

    def _make_temp(self, name_dir: Path, suffix: str) -> Path:
        # A concurrent delete may remove an empty NAME folder between mkdir calls; retry.
        for _ in range(5):
            if not name_dir.is_dir():
                name_dir.mkdir(parents=True, exist_ok=True)
                if self.fsync:
                    fsync_dir(name_dir.parent)  # the new NAME entry survives a crash too
            tmp = name_dir / f"{TMP_PREFIX}{suffix}"
            try:
                tmp.mkdir()
                return tmp
            except FileNotFoundError:
                continue
        raise NbentoError(f"cannot create a temporary folder in {name_dir}")

    def _publish(self, tmp: Path, final: Path, yaml_text: str) -> None:
        """Write model.yaml last, make everything durable, then rename into place."""
        yaml_path = tmp / MODEL_FILE
        with open(yaml_path, "x", encoding="utf-8", newline="") as f:
            f.write(yaml_text)
            f.flush()
            if self.fsync:
                os.fsync(f.fileno())
        if self.fsync:
            fsync_dir(tmp)
        try:
            os.rename(tmp, final)
        except OSError as exc:
            raise NbentoError(f"cannot publish {final} (exists already?): {exc}") from exc
        if self.fsync:
            fsync_dir(final.parent)

    def delete(self, tag: str | Tag) -> Model:
        """Remove one version (`NAME` / `NAME:latest` = the newest). Returns what was removed.

        The folder is renamed away first, so readers never see a half-deleted version."""
        model = self.get(tag)
        trash = model.path.parent / f"{TMP_PREFIX}del-{model.path.name}-{secrets.token_hex(4)}"
        with _io_errors(f"delete {model.tag} from {self.root}"):
            os.rename(model.path, trash)
        shutil.rmtree(trash, ignore_errors=True)
        try:
            model.path.parent.rmdir()  # only succeeds when no version and no save in flight
        except OSError:
            pass
        return model


# -------------------------------------------------------------------- helpers


@contextmanager
def _io_errors(action: str, *, when_full: str = "") -> Iterator[None]:
    """Turn a file-system failure (read-only store, disk full, no permission) into one
    readable NbentoError line instead of a traceback. `when_full`: what the caller left
    behind when the disk filled up (said in the message)."""
    try:
        yield
    except NbentoError:
        raise
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        if exc.errno in _FULL:
            raise NbentoError(
                f"cannot {action}: {exc.strerror} ({errno.errorcode[exc.errno]}){where}; the "
                f"file system is full{when_full}; free space there or, for the model store, set "
                f"NBENTO_HOME to a folder on a larger disk, then try again"
            ) from exc
        raise NbentoError(f"cannot {action}: {exc.strerror or exc}{where}") from exc


_FULL = (errno.ENOSPC, errno.EDQUOT)


def _choose_serializer(obj: Any, serializer: Serializer | str | None) -> Serializer:
    if serializer is None:
        return serializer_for(obj)
    if isinstance(serializer, str):
        return serializer_named(serializer)
    if not isinstance(serializer, Serializer):
        raise SerializationError(
            f"serializer={serializer!r} is neither a serializer name nor a Serializer object"
        )
    return serializer


def _dist_version(distribution: str) -> str | None:
    try:
        return importlib_metadata.version(distribution)
    except importlib_metadata.PackageNotFoundError:
        return None


# ------------------------------------------------- module functions (default store)


def default_store() -> ModelStore:
    """The store at `$NBENTO_HOME/models`, read at call time."""
    return ModelStore(nbento_home() / "models")


def save_model(
    name: str,
    obj: Any,
    *,
    signatures: Mapping[str, Any] | Iterable[str] | None = None,
    labels: Mapping[str, str] | None = None,
    metadata: Mapping[str, Any] | None = None,
    serializer: Serializer | str | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Model:
    """Save `obj` as a new version of `name` in the default store (see `ModelStore.save_model`)."""
    return default_store().save_model(
        name,
        obj,
        signatures=signatures,
        labels=labels,
        metadata=metadata,
        serializer=serializer,
        provenance=provenance,
    )


def get(tag: str | Tag) -> Model:
    return default_store().get(tag)


def load(tag: str | Tag, *, trust: bool = False, **options: Any) -> Any:
    """Load a version from the default store; `trust=True` loads a model from outside that runs
    code on load, for this call only (see `Model.load`)."""
    return default_store().load(tag, trust=trust, **options)


def list_models(name: str | None = None) -> list[Model]:
    return default_store().list_models(name)


def delete(tag: str | Tag) -> Model:
    return default_store().delete(tag)


__all__ = [
    "MODEL_FILE",
    "Model",
    "ModelInfo",
    "ModelSignature",
    "ModelStore",
    "default_store",
    "delete",
    "get",
    "list_models",
    "load",
    "save_model",
]
