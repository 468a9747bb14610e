"""The `nbento` command's own habits: `--version`, help when run alone, `--log-level`, and the
progress of long steps on stderr (results stay on stdout)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from runtime.cli import main
from runtime.export.bento_store import get_bento
from runtime.version import __version__
from tests.runtime.bento_fixtures import save_toy_model, write_toy_service
from tests.runtime.store_fixtures import REPO


def _nbento(*args: str, module: str | None = None) -> subprocess.CompletedProcess[str]:
    """The installed `nbento` script (or `python -m MODULE`), as a user runs it."""
    exe = shutil.which("nbento", path=str(Path(sys.executable).parent))
    command = [sys.executable, "-m", module] if module or not exe else [exe]
    path = os.pathsep.join([str(REPO), str(REPO / "runtime" / "_nbento_pkg")])
    return subprocess.run(
        [*command, *args], env={**os.environ, "PYTHONPATH": path},
        capture_output=True, text=True, timeout=60, check=False,
    )


@pytest.mark.parametrize("module", [None, "nbento", "runtime"])
def test_version(module: str | None) -> None:
    result = _nbento("--version", module=module)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"nbento {__version__}"


def test_nbento_alone_prints_the_help() -> None:
    result = _nbento()
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: nbento")
    for command in ("models", "serve", "build", "bentos", "export", "containerize"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.M), command
    assert "--log-level" in result.stdout and "--version" in result.stdout
    assert result.stderr == ""


def test_a_bad_log_level_is_a_usage_error() -> None:
    result = _nbento("--log-level", "loud", "models", "list")
    assert result.returncode == 2
    assert "invalid choice: 'loud'" in result.stderr and "debug" in result.stderr


def test_build_prints_progress_with_sizes_and_times(
    tmp_path: Path, nbento_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = save_toy_model()
    service = write_toy_service(tmp_path / "svc")
    assert main(["build", str(service)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("built Bento toy:")  # the result on stdout, progress on stderr
    assert re.search(rf"^copying model {model.tag}\.\.\. [\d.]+ (B|KiB|MiB) in [\d.]+ s", err, re.M), err
    assert re.search(r"^pinned \d+ requirement\(s\), nbento-[^ ]+\.whl [\d.]+ KiB in [\d.]+ s$", err, re.M), err
    assert re.search(r"^Bento toy:\S+: [\d.]+ (KiB|MiB) in [\d.]+ s$", err, re.M), err
    assert "NBENTO_LOG_LEVEL" not in os.environ  # main() run in-process leaves no trace
    bento = get_bento("toy")
    [wheel] = (bento.path / "env" / "python" / "wheels").glob("nbento-*.whl")
    with zipfile.ZipFile(wheel) as zf:  # what the image installs serves `from nbento import`
        assert "nbento/__init__.py" in zf.namelist()

    assert main(["--log-level", "warning", "build", str(service)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("built Bento toy:") and err == ""
