"""Moving one model version between stores as a single `.tar` (`export_model` / `import_model`).

The archive holds `NAME/VERSION/model.yaml` and the artifact files, nothing else. Import treats
the tar as untrusted input: only regular files at safe relative paths, exactly the files that
model.yaml lists, each checked against its sha256 while it is copied; nothing is unpickled.
Caps come before any byte is written: at most `MAX_MEMBERS` entries, no sparse members (a few
KiB of tar can declare a GiB of zeros), and the declared sizes must fit `MAX_IMPORT_BYTES` and
the free space of the store. An imported version is not trusted (trust.py) unless `trust=True`:
if loading it would run code, `load()` refuses it until someone decides to trust it.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import tarfile
from pathlib import Path, PurePosixPath
from typing import IO

import yaml
from pydantic import ValidationError

from runtime.errors import ChecksumMismatch, NbentoError
from runtime.store.artifacts import CHUNK_BYTES, check_relpath, fsync_dir, human_size
from runtime.store.info import MODEL_FILE, ModelInfo
from runtime.store.model_store import Model, ModelStore, _io_errors, default_store
from runtime.store.trust import ensure_registry, trust_model
from runtime.tags import Tag, validate_name

_MAX_YAML_BYTES = 4 << 20
# A saved transformers model is a few dozen files; ten thousand leaves room for odd formats
# while a 300k-entry archive is refused after reading at most this many headers.
MAX_MEMBERS = 10_000
# Larger than any model this store is meant for; a bigger one is copied with the store's
# folder, not through a tar.
MAX_IMPORT_BYTES = 256 << 30


class _HashingReader:
    """Read a file for tarfile.addfile while hashing it, so export verifies what it copies."""

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self.digest.update(data)
        return data


def export_tar(model: Model, path: Path) -> Path:
    """Write `model` to `path` (a folder gets `NAME-VERSION.tar` inside). The tar appears only
    when complete; a damaged artifact stops the export with `ChecksumMismatch`."""
    if path.is_dir():
        path = path / f"{model.tag.name}-{model.tag.version}.tar"
    if not path.parent.is_dir():
        raise NbentoError(f"cannot export to {path}: folder {path.parent} does not exist")
    prefix = f"{model.tag.name}/{model.tag.version}"
    mtime = model.info.creation_time.timestamp()
    tmp = path.parent / f".{path.name}.tmp-{secrets.token_hex(4)}"
    try:
        with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
            for relpath in ["model.yaml", *model.info.files]:
                source = model.path / check_relpath(relpath)
                if source.is_symlink() or not source.is_file():
                    raise ChecksumMismatch(f"artifact {relpath!r} is missing from {model.path}")
                member = tarfile.TarInfo(f"{prefix}/{relpath}")
                member.size = source.stat().st_size
                member.mode = 0o644
                member.mtime = mtime
                with open(source, "rb") as f:
                    reader = _HashingReader(f)
                    tar.addfile(member, reader)
                expected = model.info.files.get(relpath)
                if expected is not None and reader.digest.hexdigest() != expected:
                    raise ChecksumMismatch(
                        f"artifact {relpath!r} of {model.tag} does not match its recorded sha256; "
                        "refusing to export a damaged model"
                    )
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _member_parts(member: tarfile.TarInfo) -> tuple[str, str, str]:
    """Split a member name into (NAME, VERSION, relpath), refusing anything unusual."""
    if not member.isreg():
        kind = "link" if member.issym() or member.islnk() else "non-regular entry"
        raise NbentoError(
            f"refusing to import: tar member {member.name!r} is a {kind}; "
            "a model archive holds regular files only"
        )
    name = member.name
    if name.startswith("./"):
        name = name[2:]
    if name.startswith("/") or PurePosixPath(name).is_absolute():
        raise NbentoError(f"refusing to import: tar member {member.name!r} has an absolute path")
    parts = name.split("/")
    if len(parts) < 3:
        raise NbentoError(
            f"refusing to import: tar member {member.name!r} is not under NAME/VERSION/"
        )
    try:
        relpath = check_relpath("/".join(parts[2:]))
        validate_name(parts[0], "model name")
        validate_name(parts[1], "version")
    except NbentoError as exc:
        raise NbentoError(f"refusing to import: tar member {member.name!r}: {exc}") from exc
    return parts[0], parts[1], relpath


def _checked_members(
    tar: tarfile.TarFile, path: Path, max_members: int
) -> list[tarfile.TarInfo]:
    """The archive's entries, reading at most `max_members` + 1 headers; sparse entries and
    archives with too many entries are refused."""
    found: list[tarfile.TarInfo] = []
    for member in tar:
        if len(found) >= max_members:
            raise NbentoError(
                f"refusing to import {path}: more than {max_members} entries; a model archive "
                "made by `nbento models export` holds model.yaml and its artifacts only"
            )
        if member.issparse():
            raise NbentoError(
                f"refusing to import {path}: tar member {member.name!r} is a sparse file "
                f"(declares {human_size(member.size)}); export the model again with "
                "`nbento models export`, which writes plain files"
            )
        found.append(member)
    return found


def _check_space(store: ModelStore, path: Path, total: int, max_bytes: int) -> None:
    if total > max_bytes:
        raise NbentoError(
            f"refusing to import {path}: its files declare {human_size(total)}, more than the "
            f"{human_size(max_bytes)} an import may write; copy such a model's folder instead"
        )
    probe = store.root
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if total > free:
        raise NbentoError(
            f"cannot import {path}: its files need {human_size(total)} but {probe} has only "
            f"{human_size(free)} free; free some space and import again"
        )


def import_tar(
    store: ModelStore,
    path: Path,
    *,
    max_members: int = MAX_MEMBERS,
    max_bytes: int = MAX_IMPORT_BYTES,
) -> Model:
    """Add the version in `path` to `store`; if that exact version is present already, return
    it. Raises `NbentoError` for anything but a clean archive made by `export_tar`."""
    try:
        tar = tarfile.open(path, "r:*")  # noqa: SIM115 - `with tar:` below
    except FileNotFoundError as exc:
        raise NbentoError(f"cannot import {path}: no such file") from exc
    except (tarfile.TarError, OSError) as exc:
        raise NbentoError(f"cannot import {path}: not a readable tar archive ({exc})") from exc
    with tar:
        try:
            return _import_members(store, tar, path, max_members, max_bytes)
        except (tarfile.TarError, EOFError) as exc:
            raise NbentoError(
                f"cannot import {path}: the archive is damaged or truncated ({exc}); "
                "export the model again"
            ) from exc


def _import_members(
    store: ModelStore, tar: tarfile.TarFile, path: Path, max_members: int, max_bytes: int
) -> Model:
    members: dict[str, tarfile.TarInfo] = {}
    identity: tuple[str, str] | None = None
    for member in _checked_members(tar, path, max_members):
        if member.isdir():
            continue
        name, version, relpath = _member_parts(member)
        if identity is None:
            identity = (name, version)
        elif identity != (name, version):
            raise NbentoError(
                f"refusing to import {path}: it mixes {identity[0]}:{identity[1]} and "
                f"{name}:{version}; an archive holds one model version"
            )
        if relpath in members:
            raise NbentoError(f"refusing to import {path}: {member.name!r} appears twice")
        members[relpath] = member
    if identity is None or MODEL_FILE not in members:
        raise NbentoError(f"cannot import {path}: no NAME/VERSION/{MODEL_FILE} inside")
    name, version = identity
    yaml_member = members.pop(MODEL_FILE)
    if yaml_member.size > _MAX_YAML_BYTES:
        raise NbentoError(f"refusing to import {path}: {MODEL_FILE} is implausibly large")
    yaml_file = tar.extractfile(yaml_member)
    assert yaml_file is not None
    yaml_bytes = yaml_file.read()
    try:
        info = ModelInfo.model_validate(yaml.safe_load(yaml_bytes))
    except (yaml.YAMLError, ValidationError) as exc:
        raise NbentoError(f"cannot import {path}: invalid {MODEL_FILE}: {exc}") from exc
    if (info.name, info.version) != (name, version):
        raise NbentoError(
            f"refusing to import {path}: {MODEL_FILE} says {info.name}:{info.version} "
            f"but the files are under {name}/{version}/"
        )
    for relpath in info.files:
        check_relpath(relpath)
    if set(info.files) != set(members):
        missing = sorted(set(info.files) - set(members))
        extra = sorted(set(members) - set(info.files))
        raise NbentoError(
            f"refusing to import {path}: files differ from {MODEL_FILE} "
            f"(missing: {missing or 'none'}, unlisted: {extra or 'none'})"
        )
    final = store.root / name / version
    if final.exists():
        return _existing(store, final, info.files, path)
    _check_space(store, path, sum(m.size for m in members.values()), max_bytes)
    ensure_registry(store)  # before the version appears: it must never count as legacy
    tmp = store._make_temp(store.root / name, f"import-{version}-{secrets.token_hex(4)}")
    try:
        for relpath, member in members.items():
            _copy_member(tar, member, tmp / relpath, relpath, info.files[relpath], store.fsync)
        (tmp / MODEL_FILE).write_bytes(yaml_bytes)
        if store.fsync:
            fsync_dir(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if final.exists():  # imported concurrently by someone else
                shutil.rmtree(tmp, ignore_errors=True)
                return _existing(store, final, info.files, path)
            raise
        if store.fsync:
            fsync_dir(final.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return store.get(f"{name}:{version}")


def _existing(store: ModelStore, final: Path, files: dict[str, str], path: Path) -> Model:
    model = store.get(f"{final.parent.name}:{final.name}")
    if model.info.files != files:
        raise NbentoError(
            f"cannot import {path}: {model.tag} already exists in {store.root} with different "
            "files; delete it first if you mean to replace it"
        )
    return model


def _copy_member(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    target: Path,
    relpath: str,
    expected: str,
    fsync: bool,
) -> None:
    source = tar.extractfile(member)
    assert source is not None
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with os.fdopen(os.open(target, flags, 0o644), "wb") as out:
        while chunk := source.read(CHUNK_BYTES):
            digest.update(chunk)
            out.write(chunk)
        out.flush()
        if fsync:
            os.fsync(out.fileno())
    if digest.hexdigest() != expected:
        raise ChecksumMismatch(
            f"artifact {relpath!r} in the archive does not match the sha256 in model.yaml; "
            "the archive was changed or damaged. Export it again."
        )


def export_model(
    tag: str | Tag, path: str | os.PathLike[str], *, store: ModelStore | None = None
) -> Path:
    """Write one version as a `.tar` (to `path`, or into `path` when it is a folder)."""
    store = store or default_store()
    model = store.get(tag)
    with _io_errors(f"export {model.tag} to {path}"):
        return export_tar(model, Path(path))


def import_model(
    path: str | os.PathLike[str], *, store: ModelStore | None = None, trust: bool = False
) -> Model:
    """Add the version held in a `.tar` made by `export_model`; nothing is unpickled.

    The version is not trusted: if loading it runs code (a pickle), `load()` refuses it until
    `nbento models trust TAG`. `trust=True` (`import FILE --trust`) records the decision now,
    for an archive you know the origin of."""
    store = store or default_store()
    with _io_errors(f"import {path} into {store.root}"):
        model = import_tar(store, Path(path))
        if trust:
            trust_model(model, f"imported from {Path(path).name} with --trust")
        return model
