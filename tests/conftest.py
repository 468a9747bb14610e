"""Shared fixtures: every test gets its own empty NBENTO_HOME.

The `nbento` package ships from runtime/_nbento_pkg (see pyproject.toml): put this tree's on
the path, here and (PYTHONPATH) in the kernels, servers and CLIs the tests start, whatever
the environment's install points at."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

_REPO = Path(__file__).resolve().parents[1]
_PATHS = [str(_REPO), str(_REPO / "runtime" / "_nbento_pkg")]
sys.path[:0] = [p for p in _PATHS if p not in sys.path]
os.environ["PYTHONPATH"] = os.pathsep.join(
    dict.fromkeys([*_PATHS, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])
)


@pytest.fixture(autouse=True)
def nbento_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "nbento-home"
    home.mkdir()
    monkeypatch.setenv("NBENTO_HOME", str(home))
    yield home
