"""One server per service: a server started by one face (a kernel's `KernelServer`) is
registered in `.nbento/<service>/server.json`, adopted by the panels' `DevServers` instead of a
second one being started, and stopped from either side. Real `nbento serve` processes."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from jupyter_ext.actions.dev_servers import DevServers
from jupyter_ext.actions.kernel_server import KernelServer, free_port
from jupyter_ext.actions.server_registry import (
    REGISTRY_NAME,
    ServerRecord,
    is_server_process,
    live_near,
    read_live,
    register,
    server_gone,
)

SERVICE = """
from runtime import api


@api
def shout(text: str) -> dict:
    return {"loud": text.upper()}
"""


def service_folder(tmp_path: Path) -> tuple[Path, Path]:
    """A notebook with one captured API, and its service folder as the kernel writes it."""
    notebook = tmp_path / "loud.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(
        "%%nbento api shout\ndef shout(text: str) -> str:\n    return text.upper()"
    )]), str(notebook))
    folder = tmp_path / ".nbento" / "loud"
    folder.mkdir(parents=True)
    (folder / "service.py").write_text(SERVICE)
    return notebook, folder


def shout(url: str) -> str:
    response = httpx.post(f"{url}/shout", json="hi", timeout=10, trust_env=False)
    assert response.status_code == 200, response.text
    return str(response.json()["loud"])


def test_a_kernel_started_server_is_adopted_by_the_panel_and_stopped_from_it(tmp_path: Path) -> None:
    notebook, folder = service_folder(tmp_path)
    kernel = KernelServer(folder, port=free_port(), reload=True, notebook=notebook)
    panels = DevServers()
    try:
        kernel.start(timeout=60)
        record = json.loads((folder / REGISTRY_NAME).read_text())
        assert record["url"] == kernel.url and record["pid"] == kernel.pid
        assert record["owner"] == "kernel" and record["notebook"] == str(notebook)
        assert is_server_process(kernel.pid, folder) and not server_gone(kernel.pid, folder)
        assert "token" not in json.dumps(record).lower()

        # the panel's Start on this notebook attaches: same URL, same PID, no second process
        adopted = panels.start(notebook, timeout=60)
        assert (adopted.url, adopted.pid) == (kernel.url, kernel.pid)
        assert adopted.started_by == "kernel"
        assert [s.id for s in panels.list()] == [adopted.id]
        described = adopted.describe()
        assert described["state"] == "running" and described["pid"] == kernel.pid
        assert shout(adopted.url) == "HI"

        # the kernel's `%nbento serve` would attach too
        again = KernelServer.attach(folder)
        assert again is not None and again.url == kernel.url

        # Stop from the panel ends the kernel's server and clears the registry
        panels.stop(adopted.id)
        assert not kernel.running
        assert not (folder / REGISTRY_NAME).exists()
        assert panels.discover([notebook]) == []
    finally:
        kernel.stop()
        panels.stop_all()


def test_the_kernel_asks_its_server_to_reload_instead_of_waiting_for_the_watcher(
    tmp_path: Path,
) -> None:
    _, folder = service_folder(tmp_path)
    kernel = KernelServer(folder, port=free_port(), reload=True)
    try:
        kernel.start(timeout=60)
        before = kernel.status()
        code = SERVICE.replace("text.upper()", "text.upper() + '!'")
        (folder / "service.py").write_text(code)
        outcome = kernel.wait_for_reload(hashlib.sha256(code.encode()).hexdigest(), before,
                                         started=time.perf_counter())
        assert outcome.ok, outcome
        assert kernel.reloads_on_request is True
        assert shout(kernel.url) == "HI!"
        metrics = httpx.get(f"{kernel.url}/metrics", timeout=10, trust_env=False).text
        assert 'nbento_requests_total{endpoint="reload",status="200"} 1.0' in metrics, [
            line for line in metrics.splitlines() if "requests_total" in line]
    finally:
        kernel.stop()


def test_stopping_in_the_kernel_removes_the_adopted_server_from_the_panel(tmp_path: Path) -> None:
    notebook, folder = service_folder(tmp_path)
    kernel = KernelServer(folder, port=free_port(), reload=True, notebook=notebook)
    panels = DevServers()
    try:
        kernel.start(timeout=60)
        assert [s.pid for s in panels.discover([notebook])] == [kernel.pid]
        kernel.stop()
        assert not (folder / REGISTRY_NAME).exists()
        assert panels.discover([notebook]) == [] and panels.list() == []
    finally:
        kernel.stop()
        panels.stop_all()


def test_a_stale_or_forged_record_is_not_believed(tmp_path: Path) -> None:
    notebook, folder = service_folder(tmp_path)
    # a live process that is not an nbento server (Stop must never signal it)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for pid in (sleeper.pid, 2**22 + 7):
            register(ServerRecord(url="http://127.0.0.1:3999", pid=pid, folder=str(folder),
                                  notebook=str(notebook), owner="kernel", owner_pid=os.getpid(),
                                  reload=True, started_at=0.0))
            assert read_live(folder) is None
            assert not (folder / REGISTRY_NAME).exists()  # the stale file is removed
        assert live_near(notebook) == [] and KernelServer.attach(folder) is None
        assert sleeper.poll() is None and not is_server_process(sleeper.pid, folder)
        assert server_gone(sleeper.pid, folder)  # a PID now running another program
        sleeper.kill()
        os.waitid(os.P_PID, sleeper.pid, os.WEXITED | os.WNOWAIT)  # a zombie, not yet collected
        assert server_gone(sleeper.pid, folder)
    finally:
        sleeper.kill()
        sleeper.wait()
    (folder / REGISTRY_NAME).write_text("{not json")
    assert read_live(folder) is None


@pytest.mark.parametrize("garbage", ['{"url": 3}', "[]", ""])
def test_a_registry_file_of_another_shape_reads_as_no_server(tmp_path: Path, garbage: str) -> None:
    _, folder = service_folder(tmp_path)
    (folder / REGISTRY_NAME).write_text(garbage)
    assert read_live(folder) is None


@pytest.mark.slow
def test_nbento_serve_in_a_kernel_attaches_to_the_panels_server(tmp_path: Path) -> None:
    from tests.jupyter_ext.kernel_session import KernelSession

    notebook = tmp_path / "loud.ipynb"
    nbformat.write(new_notebook(cells=[
        new_code_cell("%load_ext nbento"),
        new_code_cell("%%nbento api shout\ndef shout(text: str) -> dict:\n"
                      "    return {'loud': text.upper()}"),
        new_code_cell("%nbento serve"),
        new_code_cell("%nbento stop"),
    ]), str(notebook))
    panels = DevServers()
    session = KernelSession(notebook)
    try:
        started = panels.start(notebook, timeout=60)  # the side panel's Start, first
        assert started.started_by == "jupyter"
        outputs = session.run_all(3)
        assert f"attached to the server at {started.url} (started by jupyter)" in outputs[-1]
        assert panels.list() == [started] and shout(started.url) == "HI"
        assert "stopped the server" in session.run(3)  # %nbento stop from the kernel
        assert not started.running()
        assert started.describe()["state"] == "stopped"
    finally:
        session.close()
        panels.stop_all()
