"""Browser-test fixtures: one JupyterLab (token auth on) and one headless Debian Chromium per
session, the support-tickets example copied into the server root, its model saved in the
server's NBENTO_HOME. Screenshots go to tests/artifacts/browser/."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require
from tests.jupyter_ext.lab_server import (
    LabServer,
    copy_example,
    jupyter_server,
    save_support_classifier,
)

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# Playwright adds --headless and its own --user-data-dir (passing one is rejected).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "browser"
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="package")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    require(shutil.which(CHROMIUM) or Path(CHROMIUM).exists(),
            f"no Chromium at {CHROMIUM} (scripts/install installs Debian's)")
    labext = Path(__file__).resolve().parents[2] / "jupyter_ext" / "labextension" / "package.json"
    if not labext.exists():
        pytest.fail("the JupyterLab extension is not built: run scripts/install (or jlpm build in labextension/)")
    # JupyterLab loads the first `nbento` labextension on its path; the venv's may be another
    # checkout's build. JUPYTER_PATH comes first, so this tree's build is the one under test.
    data = tmp_path_factory.mktemp("jupyter-data")
    (data / "labextensions").mkdir()
    (data / "labextensions" / "nbento").symlink_to(labext.parent, target_is_directory=True)
    previous = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(data), previous]))
    try:
        with jupyter_server(tmp_path_factory.mktemp("lab"), lab=True) as server:
            copy_example(server.root)
            save_support_classifier(server.home)
            yield server
    finally:
        if previous is None:
            os.environ.pop("JUPYTER_PATH", None)
        else:
            os.environ["JUPYTER_PATH"] = previous


@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="package")
def artifacts() -> Path:
    """Where screenshots go: tests/artifacts/browser/, or docs/img/ (the pictures README.md and
    the docs show) with NBENTO_SCREENSHOTS=docs, to retake them after a change of the look."""
    folder = DOCS_IMG if os.environ.get("NBENTO_SCREENSHOTS") == "docs" else ARTIFACTS
    folder.mkdir(parents=True, exist_ok=True)
    return folder
