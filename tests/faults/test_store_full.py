"""A save into a nearly full file system (a 2 MiB tmpfs as the store): the save fails with an
error naming ENOSPC and what to do, no partial version or temp folder is left, and the store
keeps working (a small save afterwards succeeds, earlier versions still load)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from runtime.errors import NbentoError
from runtime.store.model_store import ModelStore
from tests.conftest import missing

SIZE = "2m"


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mount)],
        capture_output=True, text=True,
    )
    if done.returncode != 0:
        missing(f"cannot mount a {SIZE} tmpfs (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def visible(root: Path) -> set[str]:
    """Every file and folder under `root`, relative (what list/get could ever see)."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("what", ["array", "pickle"])
def test_a_save_bigger_than_the_free_space(tiny_fs: Path, what: str) -> None:
    store = ModelStore(tiny_fs / "models")
    kept = store.save_model("kept", np.arange(1000, dtype=np.float64))
    before = visible(tiny_fs)
    big: object = np.ones(1 << 19, dtype=np.float64)  # 4 MiB on a 2 MiB file system
    if what == "pickle":
        big = {"blob": bytes(4 << 20)}  # cloudpickle's path
    for name in ("kept", "brand_new"):
        with pytest.raises(NbentoError) as failed:
            store.save_model(name, big)
        message = str(failed.value)
        assert "ENOSPC" in message and "No space left on device" in message, message
        assert "free space" in message and "NBENTO_HOME" in message, message
        assert "nothing was saved" in message, message
        # no partial version, no temp folder, nothing new to see at all
        assert [str(m.tag) for m in store.list_models()] == [str(kept.tag)]
        with pytest.raises(NbentoError):
            store.get(f"{name}:latest") if name == "brand_new" else store.get("kept:nope")
        assert store.get("kept:latest").tag == kept.tag
        assert visible(tiny_fs) - before == set(), visible(tiny_fs) - before
    # and the store keeps working
    small = store.save_model("kept", np.arange(10, dtype=np.float64))
    assert str(store.get("kept:latest").tag) == str(small.tag)
    np.testing.assert_array_equal(store.load(str(kept.tag)), np.arange(1000, dtype=np.float64))
    with contextlib.suppress(NbentoError):
        store.delete(str(small.tag))
