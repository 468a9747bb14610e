"""Shared fixtures: every test gets its own empty NBENTO_HOME.

The `nbento` package ships from runtime/_nbento_pkg (see pyproject.toml): put this tree's on
the path, here and (PYTHONPATH) in the kernels, servers and CLIs the tests start, whatever
the environment's install points at.

`require(condition, why)` / `require_module(name)` are the one rule for prerequisites
(a tool, a package, root, a browser): a developer's machine without one skips the test, but
under `CI=true` a missing prerequisite fails it, so a green CI run means every test ran.

`descendants(pid)` is the one way tests list a server's process tree."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

_REPO = Path(__file__).resolve().parents[1]
_PATHS = [str(_REPO), str(_REPO / "runtime" / "_nbento_pkg")]
sys.path[:0] = [p for p in _PATHS if p not in sys.path]
os.environ["PYTHONPATH"] = os.pathsep.join(
    dict.fromkeys([*_PATHS, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])
)


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing(why: str) -> NoReturn:
    """Skip the calling test (or module) for a missing prerequisite; fail it under CI=true."""
    if under_ci():
        pytest.fail(f"prerequisite missing under CI=true: {why} (scripts/install sets this "
                    "machine up; a CI run must not skip)", pytrace=False)
    pytest.skip(why, allow_module_level=True)


def require(condition: object, why: str) -> None:
    """`require(shutil.which("kubectl"), "needs kubectl")`: go on when `condition` holds."""
    if not condition:
        missing(why)


def require_module(name: str, why: str = "") -> ModuleType:
    """`pytest.importorskip` under the same rule: the module, or a skip (a failure under CI)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        missing(why or f"needs the Python module {name!r} ({exc})")


def descendants(pid: int) -> dict[int, str]:
    """Every live process under `pid` (from /proc parent links), each with its start time (in
    clock ticks since boot), so that a PID reused later is not mistaken for the same process."""
    children: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # gone meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        starts[int(entry.name)] = fields[19]
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found[child] = starts[child]
                todo.append(child)
    return found


@pytest.fixture(autouse=True)
def nbento_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "nbento-home"
    home.mkdir()
    monkeypatch.setenv("NBENTO_HOME", str(home))
    yield home
