"""The nbento side panel in real headless Chromium, on examples/support_tickets.ipynb: open it
from the command palette, see the captured cells and the stored model, tag a cell (and see
the notebook metadata change on disk), start the server, send a request in Try it, watch
the batching chart draw, export, stop. One page for the whole module, tests in order."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.conftest import open_notebook, panel, send_load, widen_left_area
from tests.jupyter_ext.lab_server import LabServer


@pytest.fixture(scope="module")
def page(lab: LabServer, browser: Any) -> Iterator[Any]:
    with open_notebook(browser, lab, "/lab/tree/support_tickets.ipynb") as page:
        yield page


def notebook_on_disk(lab: LabServer) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((lab.root / "support_tickets.ipynb").read_text())
    return data


def test_palette_command_opens_the_panel_with_the_notebooks_cells(page: Any, artifacts: Path) -> None:
    from playwright.sync_api import expect

    page.keyboard.press("Control+Shift+c")
    page.locator(".lm-CommandPalette-input").fill("nbento: Open Panel")
    page.keyboard.press("Enter")
    expect(panel(page)).to_be_visible()
    widen_left_area(page, 440)
    expect(panel(page).locator(".nbento-notebook-name")).to_have_text("support_tickets.ipynb")
    groups = panel(page).locator(".nbento-cell-group")
    expect(groups.nth(0).locator(".nbento-cell-row")).to_have_count(1)  # preprocess
    expect(groups.nth(1).locator(".nbento-cell-row")).to_contain_text(["support_classifier"])
    expect(groups.nth(2).locator(".nbento-cell-row")).to_contain_text(["classify"])
    # the saved notebook's service, captured offline by the server extension
    expect(panel(page).locator(".nbento-service")).to_contain_text("service support_tickets")

    # click an entry: the notebook jumps to that cell
    groups.nth(2).locator(".nbento-cell-row").first.click()
    active = page.locator(".jp-NotebookPanel .jp-Cell.jp-mod-active")
    expect(active).to_contain_text("def classify")
    page.screenshot(path=str(artifacts / "panel-cells.png"))


def test_models_section_shows_the_stored_model(page: Any, lab: LabServer) -> None:
    from playwright.sync_api import expect

    models = panel(page).locator(".nbento-model")
    expect(models).to_have_count(1)
    expect(models.first.locator(".nbento-model-name")).to_have_text("support_classifier")
    expect(models.first.locator(".nbento-model-signatures")).to_contain_text("predict_proba")
    expect(models.first).to_contain_text("batchable")
    expect(models.first).to_contain_text("saved by")


def test_tagging_the_active_cell_writes_the_metadata_capture_reads(page: Any, lab: LabServer) -> None:
    from playwright.sync_api import expect

    # the training cell (index 4) is not captured; make it an API, save, check the file
    page.locator(".jp-NotebookPanel .jp-Cell").nth(4).locator(".jp-InputArea-prompt").click()
    expect(panel(page).locator(".nbento-active-mark")).to_have_text("not captured")
    panel(page).locator(".nbento-tag-name").fill("train_api")
    panel(page).locator(".nbento-tag-api").click()
    expect(panel(page).locator(".nbento-active-mark")).to_have_text("api train_api")
    expect(panel(page).locator(".nbento-cell-group-api .nbento-cell-row")).to_have_count(2)
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        cell = notebook_on_disk(lab)["cells"][4]
        if cell["metadata"].get("nbento"):
            break
        time.sleep(0.2)
    assert cell["metadata"]["nbento"] == {"kind": "api", "name": "train_api"}
    services = httpx.get(lab.url("nbento/services?notebook=support_tickets.ipynb"),
                         headers=lab.auth(), trust_env=False, timeout=30).json()
    assert [c["name"] for c in services["cells"]["api"]] == ["train_api", "classify"]

    # a bad name is refused in plain words, and untag removes the mark again
    panel(page).locator(".nbento-tag-name").fill("Bad Name")
    panel(page).locator(".nbento-tag-model").click()
    expect(panel(page).locator(".nbento-message")).to_contain_text("must be lowercase")
    panel(page).locator(".nbento-untag").click()
    expect(panel(page).locator(".nbento-active-mark")).to_have_text("not captured")
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "nbento" in notebook_on_disk(lab)["cells"][4]["metadata"]:
        time.sleep(0.2)
    assert "nbento" not in notebook_on_disk(lab)["cells"][4]["metadata"]


def test_start_the_server_from_the_panel(page: Any, artifacts: Path) -> None:
    from playwright.sync_api import expect

    panel(page).locator(".nbento-server-start").click()
    expect(panel(page).locator(".nbento-state")).to_have_text("running")
    expect(panel(page).locator(".nbento-server-url")).to_contain_text("http://127.0.0.1:")
    expect(panel(page).locator(".nbento-last-reload")).to_contain_text("generation 1 · loaded at")
    expect(panel(page).locator(".nbento-server-stop")).to_be_enabled()
    panel(page).locator(".nbento-section-models").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "panel-server.png"))


def test_try_it_sends_a_request_and_shows_the_answer(page: Any, artifacts: Path) -> None:
    from playwright.sync_api import expect

    tryit = panel(page).locator(".nbento-section-tryit")
    expect(tryit.locator(".nbento-tryit-api select")).to_have_value("classify")
    expect(tryit.locator(".nbento-tryit-body")).to_have_value('{\n  "texts": [\n    "text"\n  ]\n}')  # from the schema
    tryit.locator(".nbento-tryit-body").fill('{"texts": ["I was charged twice for my subscription", "Where is my parcel?"]}')
    tryit.locator(".nbento-tryit-send").click()
    expect(tryit.locator(".nbento-tryit-response")).to_contain_text("billing")
    expect(tryit.locator(".nbento-tryit-answer")).to_contain_text("HTTP 200")
    expect(tryit.locator(".nbento-tryit-latency")).to_contain_text(" ms")
    page.screenshot(path=str(artifacts / "panel-tryit.png"))


def test_a_broken_save_shows_the_reload_error_in_plain_words(page: Any, lab: LabServer) -> None:
    from playwright.sync_api import expect

    server = panel(page).locator(".nbento-section-server")
    editor = page.locator(".jp-NotebookPanel .jp-Cell").nth(6).locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+End")
    page.keyboard.type("\nraise RuntimeError('boom from the browser test')")
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    expect(server.locator(".nbento-reload-error")).to_contain_text("notebook cell 7 (api classify)")
    expect(server.locator(".nbento-reload-error")).to_contain_text("boom from the browser test")
    expect(server.locator(".nbento-state")).to_have_text("reload failed (serving generation 1)")

    editor.click()
    page.keyboard.press("Control+End")
    page.keyboard.press("Shift+Home")
    page.keyboard.press("Backspace")
    page.keyboard.press("Backspace")
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    expect(server.locator(".nbento-reload-outcome")).to_contain_text("reloaded in")
    expect(server.locator(".nbento-state")).to_have_text("running")
    expect(server.locator(".nbento-reload-error")).to_have_count(0)
    assert "boom" not in (lab.root / "support_tickets.ipynb").read_text()


def test_batching_chart_draws_while_requests_flow(page: Any, artifacts: Path) -> None:
    from playwright.sync_api import expect

    url = panel(page).locator(".nbento-server-url").inner_text().strip()
    assert send_load(url, ["I was charged twice", "The app crashes on upload", "Where is my parcel?"],
                     seconds=8.0) > 0
    chart = panel(page).locator(".nbento-chart-latency")
    expect(chart.locator("path.nbento-chart-line").first).to_be_attached(timeout=30_000)
    assert int(chart.get_attribute("data-series-drawn") or 0) == 2  # p50 and p95
    expect(panel(page).locator(".nbento-chart-batch path.nbento-chart-line")).to_have_count(1)
    expect(panel(page).locator(".nbento-section-batching")).to_contain_text(re.compile(r"\d+ requests in the last \d+ s"))
    panel(page).locator(".nbento-section-batching").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "panel-batching.png"))


def test_export_builds_the_bento_and_lists_the_manifests(page: Any, lab: LabServer, artifacts: Path) -> None:
    from playwright.sync_api import expect

    export = panel(page).locator(".nbento-section-export")
    export.locator(".nbento-export-split").check()
    export.locator(".nbento-export-image").fill("tickets:dev")
    export.locator(".nbento-export-run").click()
    expect(export.locator(".nbento-progress")).to_be_visible()
    paths = export.locator(".nbento-export-paths")
    expect(paths).to_be_visible(timeout=180_000)
    expect(paths).to_contain_text(str(lab.home / "bentos" / "support_tickets"))
    listed = [t.strip() for t in paths.locator("li").all_inner_texts()]
    assert listed and all(name.endswith((".yaml", ".yml")) for name in listed)
    manifests = lab.root / "k8s-support_tickets"
    assert sorted(listed) == sorted(p.name for p in manifests.iterdir() if not p.name.startswith("."))
    export.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "panel-export.png"))


def test_dark_theme_then_stop_the_server(page: Any, artifacts: Path) -> None:
    from playwright.sync_api import expect

    page.keyboard.press("Control+Shift+c")
    page.locator(".lm-CommandPalette-input").fill("Use Theme: JupyterLab Dark")
    page.keyboard.press("Enter")
    expect(page.locator("body")).to_have_attribute("data-jp-theme-light", "false")
    panel(page).locator(".nbento-section-batching").scroll_into_view_if_needed()
    page.wait_for_timeout(800)
    page.screenshot(path=str(artifacts / "panel-dark.png"))

    panel(page).locator(".nbento-server-stop").click()
    expect(panel(page).locator(".nbento-server")).to_contain_text("No server for this notebook")
    expect(panel(page).locator(".nbento-section-tryit")).to_contain_text("Start the server")


def test_no_request_of_the_page_failed(page: Any) -> None:
    """Expected conditions (a broken save, no server yet) are answered as data: nothing in this
    module's walk through the panel shows up as a failed request or a console error."""
    assert page.failures == []
