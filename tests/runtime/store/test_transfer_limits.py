"""Tar import caps: sparse members, too many members and oversized declarations are refused
before anything is written, quickly, with messages that say what was wrong."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest

from runtime import store
from runtime.errors import NbentoError
from runtime.store import transfer
from tests.runtime.store.trust_fixtures import model_yaml, write_tar

NAME, VERSION = "bomb", "20260101-000000-cccccc"
GIB = 1 << 30


def _nothing_written(home: Path) -> None:
    models = home / "models"
    leftovers = [p for p in models.rglob("*") if p.is_file()] if models.exists() else []
    assert leftovers == []


def _sparse_tar(tmp_path: Path) -> Path:
    """What the issue measured: a few KiB of tar whose member declares a GiB of zeros. GNU tar
    writes it from a sparse file; its model.yaml lists that GiB's real sha256."""
    folder = tmp_path / "src" / NAME / VERSION
    folder.mkdir(parents=True)
    blob = folder / "weights.bin"
    with open(blob, "wb") as f:
        f.truncate(GIB)
    digest = hashlib.sha256()
    chunk = bytes(1 << 20)
    for _ in range(1024):
        digest.update(chunk)
    text = model_yaml(NAME, VERSION, {}, serializer="numpy",
                      module="runtime.store.serializers.numpy")
    text = text.replace("files: {}", f"files:\n  weights.bin: {digest.hexdigest()}")
    (folder / "model.yaml").write_text(text)
    archive = tmp_path / "sparse.tar"
    subprocess.run(
        ["tar", "--sparse", "--format=posix", "-cf", str(archive), "-C", str(tmp_path / "src"),
         f"{NAME}/{VERSION}/model.yaml", f"{NAME}/{VERSION}/weights.bin"],
        check=True, timeout=60,
    )
    shutil.rmtree(tmp_path / "src")
    return archive


def test_sparse_member_is_refused(tmp_path: Path, nbento_home: Path) -> None:
    archive = _sparse_tar(tmp_path)
    assert archive.stat().st_size < 64 << 10

    began = time.perf_counter()
    with pytest.raises(NbentoError) as refused:
        store.import_model(archive)

    assert "weights.bin" in str(refused.value) and "sparse" in str(refused.value)
    assert "declares 1.0 GiB" in str(refused.value)
    assert time.perf_counter() - began < 5
    _nothing_written(nbento_home)


def test_too_many_members_are_refused_early(tmp_path: Path, nbento_home: Path) -> None:
    archive = tmp_path / "many.tar"
    with tarfile.open(archive, "w") as tar:
        for i in range(transfer.MAX_MEMBERS + 5):
            tar.addfile(tarfile.TarInfo(f"{NAME}/{VERSION}/f{i}"), io.BytesIO())

    began = time.perf_counter()
    with pytest.raises(NbentoError, match=f"more than {transfer.MAX_MEMBERS} entries"):
        store.import_model(archive)
    assert time.perf_counter() - began < 5
    _nothing_written(nbento_home)


def test_declared_size_over_the_cap_is_refused(tmp_path: Path, nbento_home: Path) -> None:
    files = {"array.npy": b"\x93NUMPY" + bytes(5000)}
    text = model_yaml(NAME, VERSION, files, serializer="numpy",
                      module="runtime.store.serializers.numpy")
    archive = write_tar(tmp_path / "big.tar", NAME, VERSION, files, text)

    with pytest.raises(NbentoError, match=r"declare 4\.9 KiB, more than the 4\.0 KiB"):
        transfer.import_tar(store.default_store(), archive, max_bytes=4096)
    _nothing_written(nbento_home)


def test_truncated_archive_is_a_clean_error(tmp_path: Path, nbento_home: Path) -> None:
    files = {"array.npy": os.urandom(200_000)}
    text = model_yaml(NAME, VERSION, files, serializer="numpy",
                      module="runtime.store.serializers.numpy")
    archive = write_tar(tmp_path / "whole.tar", NAME, VERSION, files, text)
    cut = tmp_path / "cut.tar"
    cut.write_bytes(archive.read_bytes()[:100_000])

    with pytest.raises(NbentoError, match="damaged or truncated"):
        store.import_model(cut)
    _nothing_written(nbento_home)
