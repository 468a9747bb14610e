"""How the panel looks and where its links go (issue 14), in real JupyterLab and headless
Chromium with every request to anything but 127.0.0.1 blocked (Playwright route blocking):
nbento's own sidebar icon, badges on captured cells that follow tags, the panel's default
width, the server's /docs rendering through the Jupyter server's URL with no CDN, Try it's API
dropdown keeping a body per API, and every request starting clean. No request of the page may
fail. Screenshots go to tests/artifacts/browser/ (to docs/img/ with NBENTO_SCREENSHOTS=docs)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import nbformat
import pytest

from tests.browser.conftest import TIMEOUT_MS, open_notebook, panel, write_example
from tests.jupyter_ext.lab_server import EXAMPLES, LabServer

NOTEBOOK = "tickets_look.ipynb"
SECOND_API = (
    "%%nbento api ticket_length\n"
    "def ticket_length(texts: list[str]) -> dict:\n"
    '    """Characters per ticket after cleaning."""\n'
    '    return {"lengths": [len(t) for t in clean(texts)]}'
)
PLAIN = 'print("not captured")'


def make_notebook(root: Path) -> Path:
    """The example without its final `%nbento stop`, with a second API and a plain cell."""
    return write_example(root, NOTEBOOK, {"look-api": SECOND_API, "look-plain": PLAIN})


@pytest.fixture(scope="module")
def page(lab: LabServer, browser: Any) -> Iterator[Any]:
    make_notebook(lab.root)
    with open_notebook(browser, lab, f"/lab/workspaces/look/tree/{NOTEBOOK}?reset",
                       loopback_only=True) as page:
        yield page


def cells(page: Any) -> Any:
    return page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")


def test_the_sidebar_tab_has_nbentos_own_icon(page: Any) -> None:
    from playwright.sync_api import expect

    tab = page.locator('.jp-SideBar .lm-TabBar-tab[data-id="nbento-panel"]')
    expect(tab.locator('svg[data-icon="nbento:bento"]')).to_have_count(1)
    # not the icon another left-area panel (the Property Inspector) shows
    expect(page.locator('.jp-SideBar .lm-TabBar-tab svg[data-icon="nbento:bento"]')).to_have_count(1)
    tab.click()
    expect(panel(page)).to_be_visible()


def test_the_default_width_keeps_buttons_and_versions_on_one_line(page: Any, artifacts: Path) -> None:
    from playwright.sync_api import expect

    expect(panel(page).locator(".nbento-model").first).to_be_visible()
    width = panel(page).evaluate("n => n.getBoundingClientRect().width")
    assert width >= 340, width
    for row in (".nbento-tagbar .nbento-buttons", ".nbento-server .nbento-buttons"):
        tops = panel(page).locator(f"{row} button").evaluate_all(
            "bs => bs.map(b => Math.round(b.getBoundingClientRect().top))")
        assert len(tops) >= 2 and len(set(tops)) == 1, (row, tops)
        overflow = panel(page).locator(f"{row} button").evaluate_all(
            "bs => bs.filter(b => b.scrollWidth > b.clientWidth + 1).map(b => b.textContent)")
        assert overflow == [], (row, overflow)  # no label cut or wrapped inside a button
    version = panel(page).locator(".nbento-model-version").first
    line = version.evaluate("n => parseFloat(getComputedStyle(n).lineHeight) || 16")
    assert version.evaluate("n => n.getBoundingClientRect().height") < 1.6 * line  # not wrapped
    assert version.evaluate("n => n.scrollWidth <= n.clientWidth"), version.inner_text()  # not cut
    # one name per cell: execution count and kind/name, the id only in the tooltip
    rows = panel(page).locator(".nbento-cell-row")
    expect(rows.first).to_contain_text("preprocess")
    texts = rows.all_inner_texts()
    assert all(t.startswith("[") and "tickets-" not in t for t in texts), texts
    assert any("model support_classifier" in t for t in texts), texts
    origin = panel(page).locator(".nbento-model-origin").first
    expect(origin).to_contain_text("model support_classifier")
    expect(origin).not_to_contain_text("tickets-05")
    expect(origin.locator("a")).to_have_attribute("title", "cell id tickets-05 · cell 6 of the notebook · marked by magic")
    expect(panel(page).locator(".nbento-model").first).to_contain_text("KiB")
    page.screenshot(path=str(artifacts / "panel-default-width.png"))


def test_captured_cells_carry_a_badge_that_follows_tags(page: Any, artifacts: Path) -> None:
    from playwright.sync_api import expect

    model = cells(page).filter(has_text="%%nbento model support_classifier")
    expect(model).to_have_class(re.compile(r"\bnbento-captured-model\b"))
    expect(model.locator(".nbento-cell-badge")).to_have_text("model: support_classifier")
    expect(cells(page).filter(has_text="%%nbento api ticket_length").locator(".nbento-cell-badge")).to_have_text(
        "api: ticket_length")
    plain = cells(page).filter(has_text=PLAIN)
    expect(plain.locator(".nbento-cell-badge")).to_have_count(0)
    # tag the plain cell in the panel: the badge appears; untag: it goes
    plain.locator(".jp-InputArea-prompt").click()
    panel(page).locator(".nbento-tag-name").fill("shout")
    panel(page).locator(".nbento-tag-api").click()
    expect(plain.locator(".nbento-cell-badge")).to_have_text("api: shout")
    expect(plain).to_have_class(re.compile(r"\bnbento-captured\b"))
    expect(panel(page).locator(".nbento-message")).to_have_text("now captured: [ ] api shout")
    plain.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "panel-badges.png"))
    panel(page).locator(".nbento-untag").click()
    expect(plain.locator(".nbento-cell-badge")).to_have_count(0)
    expect(plain).not_to_have_class(re.compile(r"\bnbento-captured\b"))
    # a name-less API is refused in plain words
    panel(page).locator(".nbento-tag-name").fill("")
    panel(page).locator(".nbento-tag-api").click()
    expect(panel(page).locator(".nbento-message")).to_have_text("an API cell needs a name")


def test_start_the_server(page: Any) -> None:
    from playwright.sync_api import expect

    panel(page).locator(".nbento-server-start").click()  # saves the notebook first
    expect(panel(page).locator(".nbento-state")).to_have_text("running", timeout=120_000)
    expect(panel(page).locator(".nbento-tryit-api select option")).to_have_count(2)


def test_docs_open_through_the_jupyter_server_with_the_network_blocked(
    page: Any, lab: LabServer, artifacts: Path,
) -> None:
    from playwright.sync_api import expect

    link = panel(page).locator(".nbento-server-docs")
    href = link.get_attribute("href")
    assert href is not None and href.startswith(f"{lab.base}/nbento/proxy/"), href
    assert panel(page).locator(".nbento-tryit-docs").get_attribute("href") == href
    with page.context.expect_page() as opened:
        link.click()
    docs = opened.value
    docs.set_default_timeout(TIMEOUT_MS)
    expect(docs.locator(".swagger-ui .info .title")).to_contain_text("tickets_look")
    classify = docs.locator(".opblock-post").filter(has_text="/classify")
    expect(classify).to_be_visible()
    expect(docs.locator(".opblock-post").filter(has_text="/ticket_length")).to_be_visible()
    docs.screenshot(path=str(artifacts / "docs-through-jupyter.png"))
    # "Try it out" posts through the proxy too (Jupyter's XSRF check passes)
    classify.locator(".opblock-summary").click()
    classify.get_by_role("button", name="Try it out").click()
    classify.locator("textarea.body-param__text").fill('{"texts": ["Where is my parcel?"]}')
    classify.get_by_role("button", name="Execute").click()
    expect(classify.locator(".live-responses-table tr.response td.response-col_status")).to_have_text("200")
    expect(classify.locator(".live-responses-table")).to_contain_text("shipping")
    docs.close()
    assert all(urlsplit(u).hostname != "127.0.0.1" for u in page.blocked)


def test_the_api_dropdown_keeps_a_body_per_api(page: Any) -> None:
    from playwright.sync_api import expect

    tryit = panel(page).locator(".nbento-section-tryit")
    select = tryit.locator(".nbento-tryit-api select")
    body = tryit.locator(".nbento-tryit-body")
    expect(tryit.locator(".nbento-tryit-api")).to_have_class(re.compile(r"\bjp-HTMLSelect\b"))
    select.select_option("classify")
    body.fill('{"texts": ["I was charged twice"]}')
    select.select_option("ticket_length")
    expect(body).to_have_value('{\n  "texts": [\n    "text"\n  ]\n}')  # its own example
    body.fill('{"texts": ["  Hello  "]}')
    select.select_option("classify")
    expect(body).to_have_value('{"texts": ["I was charged twice"]}')
    select.select_option("ticket_length")
    expect(body).to_have_value('{"texts": ["  Hello  "]}')


def test_every_request_starts_clean(page: Any, artifacts: Path) -> None:
    from playwright.sync_api import expect

    tryit = panel(page).locator(".nbento-section-tryit")
    tryit.locator(".nbento-tryit-api select").select_option("classify")
    tryit.locator(".nbento-tryit-body").fill('{"texts": ["I was charged twice for my subscription"]}')
    tryit.locator(".nbento-tryit-send").click()
    expect(tryit.locator(".nbento-tryit-status")).to_have_text("HTTP 200")
    expect(tryit.locator(".nbento-tryit-latency")).to_have_text(re.compile(r"^\d+(\.\d)? (ms|s)$"))
    page.screenshot(path=str(artifacts / "panel-tryit.png"))
    tryit.locator(".nbento-tryit-body").fill('{"texts": [')
    tryit.locator(".nbento-tryit-send").click()
    expect(tryit.locator(".nbento-tryit-error")).to_contain_text("The body is not valid JSON")
    expect(tryit.locator(".nbento-tryit-answer")).to_have_count(0)  # no stale "HTTP 200" above it
    tryit.locator(".nbento-tryit-body").fill('{"texts": 3}')
    tryit.locator(".nbento-tryit-send").click()
    expect(tryit.locator(".nbento-tryit-status")).to_have_text("HTTP 422")
    expect(tryit.locator(".nbento-tryit-error")).to_have_count(0)  # the JSON error went with its request


def test_stop_the_server(page: Any) -> None:
    from playwright.sync_api import expect

    panel(page).locator(".nbento-server-stop").click()
    expect(panel(page).locator(".nbento-server")).to_contain_text("No server for this notebook")


@pytest.mark.parametrize("example", ["support_tickets.ipynb", "support_tickets_minilm.ipynb"])
def test_the_examples_open_without_an_unsaved_mark(page: Any, lab: LabServer, example: str) -> None:
    """Opened and its kernel started, an example is as JupyterLab would save it: no change to
    save, so no dirty dot on its tab."""
    from playwright.sync_api import expect

    fresh = f"fresh_{example}"
    shutil.copy(EXAMPLES / example, lab.root / fresh)
    page.goto(f"{lab.base}/lab/workspaces/look-{Path(example).stem}/tree/{fresh}?reset&token={lab.token}")
    page.wait_for_selector("#jupyterlab-splash", state="detached")
    expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle")
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")
    expect(tab).to_contain_text(fresh)
    page.wait_for_timeout(1500)  # kernel info arrives after Idle; a metadata update would show now
    expect(tab).not_to_have_class(re.compile(r"\bjp-mod-dirty\b"))


@pytest.mark.parametrize("example", ["support_tickets.ipynb", "support_tickets_minilm.ipynb"])
def test_the_examples_are_written_as_jupyter_writes_them(example: str) -> None:
    text = (EXAMPLES / example).read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=4)
    assert text == nbformat.writes(nb) + "\n"  # indent 1, sorted keys, trailing newline
    assert (nb.nbformat, nb.nbformat_minor) == (4, 5)  # cell ids: nothing to add on open
    assert nb.metadata.kernelspec.display_name == "Python 3 (ipykernel)"
    assert nb.metadata.language_info.name == "python"


def test_no_request_of_the_page_failed_and_nothing_left_the_machine(page: Any) -> None:
    assert page.failures == []
    assert page.blocked == [], json.dumps(page.blocked, indent=1)
