"""A panel-tagged API stays served across kernel re-runs and saves (issue 10), and the side
panel shows the server the kernel started instead of offering a second one (issue 14).

In real JupyterLab and headless Chromium, on a copy of the support-tickets example with one
more, uncaptured cell (`ticket_length`): tag that cell as an API in the panel, save, Run All
(the kernel's `%nbento serve` starts the server), then twice edit and re-run the preprocess
cell and save. After every re-run and every save the tagged API answers over HTTP from the
code on disk, and the panel shows the kernel's server (same URL and PID) with the API in Try
it. Stop in the panel stops the kernel's server. No request of the page may fail."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.conftest import cell, open_notebook, panel, widen_left_area, write_example
from tests.jupyter_ext.lab_server import LabServer

NOTEBOOK = "tickets_kernel.ipynb"
SERVICE = "tickets_kernel"
TAGGED = 7  # the extra cell, right after the classify API
PREPROCESS = 2
EXTRA_CELL = (
    "def ticket_length(texts: list[str]) -> dict:\n"
    '    """Characters per ticket after the same cleaning as the classifier\'s."""\n'
    '    return {"lengths": [len(t) for t in clean(texts)]}'
)


def make_notebook(root: Path) -> Path:
    """The example without its final `%nbento stop`, plus one uncaptured API-shaped cell."""
    return write_example(root, NOTEBOOK, {"tickets-extra": EXTRA_CELL}, at=TAGGED)


@pytest.fixture(scope="module")
def page(lab: LabServer, browser: Any) -> Iterator[Any]:
    make_notebook(lab.root)
    # a workspace of its own: not the layout (open notebooks, panel) an earlier module left
    with open_notebook(browser, lab, f"/lab/workspaces/kernel-server/tree/{NOTEBOOK}?reset") as page:
        yield page


def palette(page: Any, command: str) -> None:
    page.keyboard.press("Control+Shift+c")
    page.locator(".lm-CommandPalette-input").fill(command)
    page.keyboard.press("Enter")


def service_folder(lab: LabServer) -> Path:
    return lab.root / ".nbento" / SERVICE


def registered(lab: LabServer, timeout: float = 240.0) -> dict[str, Any]:
    """The server.json the kernel's `%nbento serve` writes once its server is ready."""
    path = service_folder(lab) / "server.json"
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"no {path} after {timeout:.0f} s"
        time.sleep(0.25)
    record: dict[str, Any] = json.loads(path.read_text())
    return record


def saved_notebook(lab: LabServer) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((lab.root / NOTEBOOK).read_text())
    return data


def wait_saved(lab: LabServer, check: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check(saved_notebook(lab)):
        assert time.monotonic() < deadline, "the notebook was not saved in time"
        time.sleep(0.2)


def serves_what_is_on_disk(lab: LabServer, url: str, stamp: str | None, timeout: float = 30.0) -> str:
    """Wait until the server serves the module on disk (and that module has `stamp`), then
    call the tagged API; its answer must come from the cleaning in the preprocess cell."""
    module = service_folder(lab) / "service.py"
    deadline = time.monotonic() + timeout
    with httpx.Client(trust_env=False, timeout=10) as http:
        while True:
            source = module.read_text()
            status = http.get(f"{url}/_nbento/status").json()
            digest = hashlib.sha256(source.encode()).hexdigest()
            if status.get("source_sha256") == digest and (stamp is None or stamp in source):
                break
            assert time.monotonic() < deadline, (
                f"the server does not serve service.py as on disk: {status.get('last_error')}"
            )
            time.sleep(0.1)
        assert "def ticket_length" in source and "def classify" in source
        answer = http.post(f"{url}/ticket_length", json={"texts": ["  Where IS   my parcel? "]})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"lengths": [len("where is my parcel?")]}
        return source


def panel_shows_the_kernels_server(page: Any, record: dict[str, Any]) -> None:
    from playwright.sync_api import expect

    server = panel(page).locator(".nbento-section-server")
    expect(server.locator(".nbento-state")).to_have_text("running")
    expect(server.locator(".nbento-server-url")).to_have_text(record["url"])
    expect(server).to_contain_text(f"PID {record['pid']}")
    expect(server).to_contain_text("started by the kernel")
    options = panel(page).locator(".nbento-section-tryit .nbento-tryit-api option")
    expect(options).to_have_text(["classify", "ticket_length"])


def test_tag_a_cell_as_an_api_in_the_panel(page: Any, lab: LabServer) -> None:
    from playwright.sync_api import expect

    palette(page, "nbento: Open Panel")
    expect(panel(page)).to_be_visible()
    widen_left_area(page, 440)
    expect(panel(page).locator(".nbento-notebook-name")).to_have_text(NOTEBOOK)
    expect(panel(page).locator(".nbento-server")).to_contain_text("No server for this notebook")
    cell(page, TAGGED).locator(".jp-InputArea-prompt").click()
    expect(panel(page).locator(".nbento-active-mark")).to_have_text("not captured")
    panel(page).locator(".nbento-tag-name").fill("ticket_length")
    panel(page).locator(".nbento-tag-api").click()
    expect(panel(page).locator(".nbento-active-mark")).to_have_text("api ticket_length")
    page.keyboard.press("Control+s")
    wait_saved(lab, lambda nb: nb["cells"][TAGGED]["metadata"].get("nbento"))
    assert saved_notebook(lab)["cells"][TAGGED]["metadata"]["nbento"] == {
        "kind": "api", "name": "ticket_length",
    }


def test_run_all_starts_the_kernels_server_and_the_panel_shows_it(
    page: Any, lab: LabServer, artifacts: Path,
) -> None:
    from playwright.sync_api import expect

    started = time.monotonic()
    cell(page, 1).locator(".jp-InputArea-prompt").click()
    palette(page, "Run All Cells")
    record = registered(lab)
    assert record["owner"] == "kernel" and record["notebook"] == str((lab.root / NOTEBOOK).resolve())
    expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle")
    print(f"\nRun All until the kernel's server was registered and idle: "
          f"{time.monotonic() - started:.1f} s")
    serves_what_is_on_disk(lab, record["url"], None)
    # the side panel adopts the kernel's server: Start is not offered a second time
    panel_shows_the_kernels_server(page, record)
    expect(panel(page).locator(".nbento-server-start")).to_be_disabled()
    expect(panel(page).locator(".nbento-cell-group-api .nbento-cell-row")).to_have_count(2)
    servers = httpx.get(lab.url("nbento/servers"), headers=lab.auth(), trust_env=False,
                        timeout=30).json()["servers"]
    mine = [s for s in servers if s["notebook"] == NOTEBOOK]
    assert [(s["url"], s["pid"], s["started_by"]) for s in mine] == [
        (record["url"], record["pid"], "kernel")
    ]
    panel(page).locator(".nbento-section-server").scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "panel-kernel-server.png"))


@pytest.mark.parametrize("round_", [1, 2])
def test_the_tagged_api_stays_served_across_re_runs_and_saves(
    page: Any, lab: LabServer, round_: int,
) -> None:
    from playwright.sync_api import expect

    record = registered(lab)
    stamp = f"RERUN_ROUND = {round_}"
    editor = cell(page, PREPROCESS).locator(".cm-content")
    editor.scroll_into_view_if_needed()
    editor.click()
    page.keyboard.press("Control+Home")
    page.keyboard.press("End")
    if round_ == 1:
        page.keyboard.press("Enter")
    else:  # replace the line the last round added
        page.keyboard.press("ArrowDown")
        page.keyboard.press("End")
        page.keyboard.press("Shift+Home")
    page.keyboard.type(stamp)
    started = time.monotonic()
    page.keyboard.press("Control+Enter")  # re-run the captured cell in the kernel
    output = cell(page, PREPROCESS).locator(".jp-OutputArea-output")
    expect(output).to_contain_text("live in")
    serves_what_is_on_disk(lab, record["url"], stamp)
    print(f"\nround {round_}: re-run to served {time.monotonic() - started:.2f} s")
    panel_shows_the_kernels_server(page, record)

    page.keyboard.press("Escape")
    started = time.monotonic()
    page.keyboard.press("Control+s")
    wait_saved(lab, lambda nb: stamp in "".join(nb["cells"][PREPROCESS]["source"]))
    expect(panel(page).locator(".nbento-reload-outcome")).to_contain_text("saved:")
    serves_what_is_on_disk(lab, record["url"], stamp)
    print(f"round {round_}: save to served {time.monotonic() - started:.2f} s")
    expect(panel(page).locator(".nbento-reload-error")).to_have_count(0)
    panel_shows_the_kernels_server(page, record)


def test_try_it_calls_the_tagged_api_on_the_kernels_server(page: Any, artifacts: Path) -> None:
    from playwright.sync_api import expect

    tryit = panel(page).locator(".nbento-section-tryit")
    tryit.locator(".nbento-tryit-api select").select_option("ticket_length")
    tryit.locator(".nbento-tryit-body").fill('{"texts": ["  Two   spaces "]}')
    tryit.locator(".nbento-tryit-send").click()
    expect(tryit.locator(".nbento-tryit-answer")).to_contain_text("HTTP 200")
    expect(tryit.locator(".nbento-tryit-response")).to_contain_text(str(len("two spaces")))
    page.screenshot(path=str(artifacts / "panel-kernel-tryit.png"))


def test_stop_in_the_panel_stops_the_kernels_server(page: Any, lab: LabServer) -> None:
    from playwright.sync_api import expect

    record = registered(lab)
    panel(page).locator(".nbento-server-stop").click()
    expect(panel(page).locator(".nbento-server")).to_contain_text("No server for this notebook")
    assert not (service_folder(lab) / "server.json").exists()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{record['url']}/livez", trust_env=False, timeout=2)
    # the kernel knows: its status says so, and the panel does not bring the server back
    editor = cell(page, PREPROCESS)
    editor.scroll_into_view_if_needed()
    editor.locator(".jp-InputArea-prompt").click()
    page.keyboard.press("b")  # a new cell below, in command mode
    page.keyboard.press("Enter")
    page.keyboard.type("%nbento status")
    page.keyboard.press("Control+Enter")
    status = cell(page, PREPROCESS + 1).locator(".jp-OutputArea-output")
    expect(status).to_contain_text("server: not running")
    page.wait_for_timeout(2500)  # one more poll of the panel
    expect(panel(page).locator(".nbento-server")).to_contain_text("No server for this notebook")


def test_no_request_of_the_page_failed(page: Any) -> None:
    assert page.failures == []
