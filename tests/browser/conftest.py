"""Browser-test fixtures: one JupyterLab (token auth on) and one headless Debian Chromium per
session, the support-tickets example copied into the server root, its model saved in the
server's NBENTO_HOME. Screenshots go to tests/artifacts/browser/. `open_notebook` is the one
way a test module opens its page; `write_example`, `send_load`, `panel`, `cell` and
`widen_left_area` are the other helpers the modules share."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import require
from tests.jupyter_ext.lab_server import (
    EXAMPLES,
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
TIMEOUT_MS = 90_000
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


def _failed(request: Any, failures: list[str]) -> None:
    # A GET the browser cancelled itself (`net::ERR_ABORTED`: the test navigated while the
    # panel's two-second status poll was in flight) lost nothing; any other failure counts.
    if request.method == "GET" and request.failure == "net::ERR_ABORTED":
        return
    failures.append(f"{request.method} {request.url}: {request.failure}")


def _watch(page: Any, failures: list[str]) -> None:
    """Collect the page's failed requests, 4xx/5xx answers and console errors in `failures`."""
    page.on("requestfailed", lambda r: _failed(r, failures))
    page.on("response", lambda r: r.status >= 400 and failures.append(f"HTTP {r.status} {r.url}"))
    page.on("console", lambda m: m.type == "error" and failures.append(f"console: {m.text}"))


@contextmanager
def open_notebook(browser: Any, lab: LabServer, path: str, *, loopback_only: bool = False) -> Iterator[Any]:
    """A new browser context with one page logged in to `lab` at `path` (e.g.
    `"/lab/workspaces/look/tree/x.ipynb?reset"`), waited for until the notebook shows its cells
    and an idle kernel; closed on exit. Every page of the context records its failures in
    `page.failures` (a module's last test asserts it is empty). `loopback_only`: requests to
    anything but 127.0.0.1 are aborted and listed in `page.blocked` (an air-gapped cluster).

        with open_notebook(browser, lab, f"/lab/tree/{NOTEBOOK}") as page:
            yield page
    """
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1440, "height": 900})
    blocked: list[str] = []

    def only_loopback(route: Any) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:  # no CDN, no internet
            blocked.append(route.request.url)
            route.abort("blockedbyclient")

    if loopback_only:
        context.route("**/*", only_loopback)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    failures: list[str] = []
    _watch(page, failures)
    context.on("page", lambda p: _watch(p, failures))  # tabs the page opens (/docs) too
    page.failures = failures
    page.blocked = blocked
    # ?token= logs the browser in (cookie); its API calls then carry the XSRF header.
    separator = "&" if "?" in path else "?"
    try:
        page.goto(f"{lab.base}{path}{separator}token={lab.token}")
        page.wait_for_selector("#jupyterlab-splash", state="detached")
        expect(page.locator(".jp-NotebookPanel .jp-Cell").first).to_be_visible()
        expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle")
        yield page
    finally:
        context.close()


def panel(page: Any) -> Any:
    return page.locator("#nbento-panel")


def cell(page: Any, index: int) -> Any:
    return page.locator(".jp-NotebookPanel .jp-Cell").nth(index)


def widen_left_area(page: Any, width: int) -> None:
    """Drag the handle between the left area and the notebook so the panel reads well."""
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").first
    box = handle.bounding_box()
    if box is None:
        return
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 200)
    page.mouse.down()
    page.mouse.move(width, box["y"] + 200, steps=5)
    page.mouse.up()


def write_example(root: Path, name: str, cells: dict[str, str], at: int | None = None) -> Path:
    """examples/support_tickets.ipynb without its final `%nbento stop`, with `cells` (cell id ->
    source) inserted at index `at` (appended by default), written as `root/name`."""
    import nbformat
    from nbformat.v4 import new_code_cell

    nb = nbformat.read(str(EXAMPLES / "support_tickets.ipynb"), as_version=4)
    assert "".join(nb.cells[-1].source).strip() == "%nbento stop"
    nb.cells.pop()
    added = []
    for cell_id, source in cells.items():
        cell = new_code_cell(source)
        cell["id"] = cell_id
        added.append(cell)
    position = len(nb.cells) if at is None else at
    nb.cells[position:position] = added
    path = root / name
    nbformat.write(nb, str(path))
    return path


def send_load(url: str, body: Any, seconds: float, clients: int = 8) -> int:
    """`clients` concurrent clients POSTing `body` to `url/classify` for `seconds` (so batches
    form); the OK count. Tests talk to the service port itself; the browser only ever sees the
    Jupyter server."""
    deadline = time.monotonic() + seconds

    def client(_: int) -> int:
        ok = 0
        with httpx.Client(trust_env=False, timeout=30) as http:
            while time.monotonic() < deadline:
                ok += http.post(f"{url}/classify", json=body).status_code == 200
        return ok

    with ThreadPoolExecutor(clients) as pool:
        return sum(pool.map(client, range(clients)))
