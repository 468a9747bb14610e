"""Shared fixtures: every test gets its own empty NBENTO_HOME."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def nbento_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "nbento-home"
    home.mkdir()
    monkeypatch.setenv("NBENTO_HOME", str(home))
    yield home
