"""The prerequisite rule of tests/conftest.py in a real pytest run: a missing tool or module
skips the test on a developer's machine and fails it under CI=true, with the reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

NEEDY = '''
from tests.conftest import require, require_module


def test_needs_a_tool():
    require(False, "needs the frobnicator tool")


def test_needs_a_module():
    require_module("no_such_module_nbento_xyz")


def test_has_what_it_needs():
    require(True, "never shown")
    assert require_module("json").dumps(1) == "1"
'''


def _run(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_needy.py").write_text(NEEDY)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rsf", "-p", "no:cacheprovider",
         "--rootdir", str(tmp_path), str(tmp_path / "test_needy.py")],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )


def test_a_missing_prerequisite_skips_locally(tmp_path: Path) -> None:
    done = _run(tmp_path, None)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed, 2 skipped" in done.stdout
    assert "needs the frobnicator tool" in done.stdout
    assert "no_such_module_nbento_xyz" in done.stdout


@pytest.mark.parametrize("ci", ["true", "1"])
def test_a_missing_prerequisite_fails_under_ci(tmp_path: Path, ci: str) -> None:
    done = _run(tmp_path, ci)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 failed, 1 passed" in done.stdout
    assert "prerequisite missing under CI=true: needs the frobnicator tool" in done.stdout
    assert "no_such_module_nbento_xyz" in done.stdout
