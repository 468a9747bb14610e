"""The ipywidgets panel: `%nbento panel` in a real kernel (nbclient) renders a widget, and
each section does its job against a real store, a real server and a real export."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell, new_notebook

from jupyter_ext.actions.jobs import JobRegistry
from jupyter_ext.actions.kernel_server import KernelServer, free_port
from jupyter_ext.capture.notebook import build_service
from jupyter_ext.kernel.magics import backend_for_magics
from jupyter_ext.kernel.panel import (
    ExportSection,
    ModelsSection,
    NbentoPanel,
    PanelBackend,
    TryItSection,
)
from tests.jupyter_ext.lab_server import copy_example, save_support_classifier

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def test_magic_renders_the_panel_widgets_in_a_real_kernel(tmp_path: Path, nbento_home: Path) -> None:
    save_support_classifier(nbento_home)
    nb = new_notebook(cells=[new_code_cell("%load_ext jupyter_ext"), new_code_cell("%nbento panel")])
    path = tmp_path / "panel.ipynb"
    nbformat.write(nb, str(path))
    client = NotebookClient(nb, timeout=120, kernel_name="python3", store_widget_state=True,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = nb.cells[1].outputs
    views = [o for o in outputs if WIDGET_VIEW in o.get("data", {})]
    assert len(views) == 1, outputs
    model_id = views[0]["data"][WIDGET_VIEW]["model_id"]
    state = nb.metadata["widgets"][WIDGET_STATE]["state"]
    accordion = state[model_id]["state"]
    assert state[model_id]["model_name"] == "AccordionModel"
    assert accordion["titles"] == ["Models", "Server", "Try it", "Export"]
    html_values = " ".join(str(s["state"].get("value", "")) for s in state.values())
    assert "support_classifier" in html_values  # the Models table came from the store
    assert "No server running" in html_values


def test_panel_with_arguments_is_refused_in_plain_words(tmp_path: Path) -> None:
    nb = new_notebook(cells=[new_code_cell("%load_ext jupyter_ext"), new_code_cell("%nbento panel --big")])
    with pytest.raises(CellExecutionError) as failed:  # the cell fails, as every bad %nbento line
        NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    assert failed.value.ename == "UsageError"
    text = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert "%nbento panel takes no arguments" in text


def test_models_section_lists_the_store(nbento_home: Path) -> None:
    section = ModelsSection()
    assert "No models saved yet" in section.table.value
    tag = save_support_classifier(nbento_home)
    section.refresh()
    assert tag.split(":")[1] in section.table.value
    assert "predict_proba (batchable)" in section.table.value
    # the cell named as the JupyterLab panel names it, its id in the tooltip; sizes in KiB/MiB
    assert "model support_classifier" in section.table.value
    assert "title='cell id tickets-05'" in section.table.value
    assert "KiB" in section.table.value or "MiB" in section.table.value


def test_start_and_stop_buttons_run_a_real_server(ip: Any) -> None:
    """Start and Stop in the Server section, wired to the magics as `%nbento panel` wires
    them: a real `nbento serve` process on 127.0.0.1 answers, then is gone."""
    shell, magics = ip
    captured = shell.run_cell("%%nbento api double\ndef double(x: int) -> int:\n    return 2 * x",
                              cell_id="a")
    assert captured.success
    panel = NbentoPanel(backend_for_magics(magics), JobRegistry())
    section = panel.server
    assert "No server running" in section.info.value
    assert not section.start_button.disabled and section.stop_button.disabled

    section.start_button.click()
    server = magics.server
    assert server is not None and server.running, section.log.outputs
    url = server.url
    try:
        assert url.startswith("http://127.0.0.1:") and url in section.info.value
        assert "running" in section.info.value and "generation 1" in section.info.value
        assert section.start_button.disabled and not section.stop_button.disabled
        assert httpx.post(f"{url}/double", json=21, trust_env=False).json() == 42
        assert list(panel.tryit.api.options) == ["double"]  # Try it follows the new server

        section.stop_button.click()
        assert not server.running
        assert "No server running" in section.info.value
        assert not section.start_button.disabled and section.stop_button.disabled
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/livez", timeout=2, trust_env=False)
    finally:
        server.stop()


def _backend(folder: Path, server: KernelServer | None = None) -> PanelBackend:
    return PanelBackend(
        service_folder=lambda: folder,
        server_url=lambda: server.url if server is not None and server.running else None,
        server_status=lambda: server.status() if server is not None else None,
        start_server=lambda: None,
        stop_server=lambda: None,
    )


@pytest.mark.slow
def test_try_it_calls_the_running_server(tmp_path: Path, nbento_home: Path) -> None:
    save_support_classifier(nbento_home)
    _, written = build_service(copy_example(tmp_path))
    server = KernelServer(written.folder, port=free_port(3300))
    server.start(timeout=120)
    try:
        panel = NbentoPanel(_backend(written.folder, server), JobRegistry())
        tryit: TryItSection = panel.tryit
        assert list(tryit.api.options) == ["classify"]
        assert tryit.body.value == '{\n  "texts": [\n    "text"\n  ]\n}'
        tryit.body.value = '{"texts": ["Where is my parcel?"]}'
        result = tryit.send()
        assert result is not None and result["status"] == 200
        assert "HTTP 200" in tryit.answer.value and "shipping" in tryit.answer.value
        assert "running" in panel.server.info.value and server.url in panel.server.info.value
        tryit.body.value = "{not json"
        assert tryit.send() is None and "not JSON" in tryit.answer.value
    finally:
        server.stop()


@pytest.mark.slow
def test_export_moves_the_progress_bar_to_the_paths(tmp_path: Path, nbento_home: Path) -> None:
    save_support_classifier(nbento_home)
    _, written = build_service(copy_example(tmp_path))
    jobs = JobRegistry()
    section = ExportSection(_backend(written.folder), jobs)
    section.yatai.value = True
    job_id = section.start()
    assert job_id is not None
    job = jobs.wait(job_id, timeout=300)
    assert job.state == "done", job.error
    deadline = time.monotonic() + 10
    while section.progress.bar_style != "success" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert section.progress.value == 1.0 and section.progress.bar_style == "success"
    assert "Bento:" in section.result.value and "bentodeployment" in section.result.value.lower()
    assert all(Path(f).is_file() for f in job.result["manifests"])
    assert Path(job.result["manifests_dir"]).parent == tmp_path
