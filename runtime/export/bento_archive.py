"""`.bento` archives in BentoML's layout: an xz-compressed tar of the Bento folder rooted at
`./`, models included (`./models/NAME/VERSION/`). `bentoml import FILE.bento` takes what
`export_bento` writes, and `import_bento` takes what `bentoml export` writes of a Bento nbento
built.

    export_bento("support_tickets:20261121-...", "support_tickets.bento")
    bento = import_bento("support_tickets.bento")     # into $NBENTO_HOME/bentos/

Importing trusts nothing in the file: only regular files and folders under `./`, no absolute
paths, `..`, links or devices; caps on entry count and size; every model file is checked
against the sha256 its `model.yaml` records before the Bento appears in the store.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

import yaml

from runtime.errors import NbentoError
from runtime.export.bento_store import BENTO_FILE, Bento, BentoInfo, bentos_root, get_bento
from runtime.store.info import MODEL_FILE, ModelInfo
from runtime.tags import validate_name

MAX_ENTRIES = 100_000
MAX_TOTAL_BYTES = 64 * 1024**3
MAX_YAML_BYTES = 4 * 1024**2
_TMP_PREFIX = ".tmp-import-"


def export_bento(ref: str | Path, file: str | Path) -> Path:
    """Write the Bento `ref` (tag or folder) to `file` (a new `.bento`); returns its path."""
    bento = get_bento(ref)
    out = Path(file)
    if out.exists():
        raise NbentoError(f"{out} exists; choose a new file name (nothing was overwritten)")
    out.parent.mkdir(parents=True, exist_ok=True)
    # a fresh temp name (O_EXCL): a planted `.NAME.partial` link is never written through
    fd, partial_name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent)
    partial = Path(partial_name)
    os.fchmod(fd, 0o644)  # as a plain open would (mkstemp makes it private)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:xz") as tar:
            tar.add(bento.path, arcname=".", recursive=False, filter=_normalize)
            for path in sorted(bento.path.rglob("*")):
                if path.is_symlink():
                    raise NbentoError(f"{path} is a symbolic link; a Bento holds only files")
                arcname = "./" + path.relative_to(bento.path).as_posix()
                tar.add(path, arcname=arcname, recursive=False, filter=_normalize)
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return out


def _normalize(info: tarfile.TarInfo) -> tarfile.TarInfo:
    """No owner names or ids of this machine in the archive."""
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def import_bento(file: str | Path) -> Bento:
    """Add the Bento in `file` to the local bento store; refuses a version already there."""
    path = Path(file)
    try:
        tar = tarfile.open(path, "r:*")  # noqa: SIM115 (closed by the with below)
    except (OSError, tarfile.TarError) as exc:
        raise NbentoError(f"cannot read {path} as a .bento archive (an xz tar): {exc}") from exc
    with tar:
        members = _checked_members(tar, path)
        info = _read_info(tar, members, path)
        name = validate_name(info.name, "bento name")
        version = validate_name(info.version, "bento version")
        store = bentos_root() / name
        final = store / version
        if final.exists():
            raise NbentoError(
                f"Bento {name}:{version} is already in {bentos_root()}; delete it first "
                f"(nbento bentos delete {name}:{version}) to import it again"
            )
        store.mkdir(parents=True, exist_ok=True)
        tmp = store / f"{_TMP_PREFIX}{version}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir()
            _extract(tar, members, tmp)
            _verify_models(tmp, info, path)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return Bento.read(final)


def _relative(member: tarfile.TarInfo, archive: Path) -> PurePosixPath | None:
    """The member's path inside the Bento (None for the root itself), or a refusal."""
    raw = member.name
    pure = PurePosixPath(raw)
    parts = [p for p in pure.parts if p != "."]
    if pure.is_absolute() or raw.startswith("\\") or ".." in parts or "\\" in raw:
        raise NbentoError(f"refusing to import {archive}: entry {raw!r} points outside the Bento")
    return PurePosixPath(*parts) if parts else None


def _checked_members(tar: tarfile.TarFile, archive: Path) -> dict[PurePosixPath, tarfile.TarInfo]:
    members: dict[PurePosixPath, tarfile.TarInfo] = {}
    total = 0
    for count, member in enumerate(tar, start=1):
        if count > MAX_ENTRIES:
            raise NbentoError(f"refusing to import {archive}: more than {MAX_ENTRIES} entries")
        rel = _relative(member, archive)
        if not (member.isfile() or member.isdir()):
            raise NbentoError(
                f"refusing to import {archive}: entry {member.name!r} is a link or device; a "
                f"Bento holds only files and folders"
            )
        if member.issparse():
            raise NbentoError(
                f"refusing to import {archive}: entry {member.name!r} is a sparse file (it would "
                f"unpack to far more than the archive holds); export the Bento again without "
                f"sparse files"
            )
        total += member.size
        if total > MAX_TOTAL_BYTES:
            raise NbentoError(
                f"refusing to import {archive}: more than {MAX_TOTAL_BYTES // 1024**3} GiB unpacked"
            )
        if rel is not None:
            if rel in members:
                raise NbentoError(f"refusing to import {archive}: entry {rel} appears twice")
            members[rel] = member
    return members


def _read_info(
    tar: tarfile.TarFile, members: dict[PurePosixPath, tarfile.TarInfo], archive: Path
) -> BentoInfo:
    member = members.get(PurePosixPath(BENTO_FILE))
    if member is None or not member.isfile():
        raise NbentoError(f"cannot import {archive}: no ./{BENTO_FILE} at the top of the archive")
    if member.size > MAX_YAML_BYTES:
        raise NbentoError(f"refusing to import {archive}: {BENTO_FILE} is implausibly large")
    handle = tar.extractfile(member)
    assert handle is not None
    try:
        return BentoInfo.from_yaml_dict(yaml.safe_load(handle.read()))
    except (yaml.YAMLError, ValueError) as exc:
        raise NbentoError(f"cannot import {archive}: invalid {BENTO_FILE}: {exc}") from exc


def _extract(
    tar: tarfile.TarFile, members: dict[PurePosixPath, tarfile.TarInfo], dest: Path
) -> None:
    for rel, member in sorted(members.items()):
        target = dest.joinpath(*rel.parts)
        if member.isdir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        source = tar.extractfile(member)
        assert source is not None
        with source, target.open("wb") as out:
            shutil.copyfileobj(source, out, 1 << 20)
        target.chmod(0o755 if member.mode & 0o111 else 0o644)


def _verify_models(root: Path, info: BentoInfo, archive: Path) -> None:
    for model in info.models:
        name, _, version = model.tag.partition(":")
        folder = root / "models" / name / version
        yaml_path = folder / MODEL_FILE
        if not yaml_path.is_file():
            raise NbentoError(
                f"cannot import {archive}: model {model.tag} is missing (no "
                f"models/{name}/{version}/{MODEL_FILE}); export the Bento with its models"
            )
        try:
            model_info = ModelInfo.model_validate(yaml.safe_load(yaml_path.read_text()))
        except (yaml.YAMLError, ValueError) as exc:
            raise NbentoError(f"cannot import {archive}: invalid {yaml_path.name} of {model.tag}: {exc}") from exc
        for rel, expected in model_info.files.items():
            pure = PurePosixPath(rel)
            if pure.is_absolute() or ".." in pure.parts:
                raise NbentoError(f"refusing to import {archive}: model file {rel!r} points outside its folder")
            file = folder / rel
            if not file.is_file() or _sha256(file) != expected:
                raise NbentoError(
                    f"refusing to import {archive}: model {model.tag} file {rel} does not match "
                    f"the checksum in its {MODEL_FILE}"
                )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
