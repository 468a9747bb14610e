"""The kernel-owned server: hot reload from re-run cells, broken cells keep the last good
version serving, and the server never outlives its kernel (even on SIGKILL)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from jupyter_ext.actions.kernel_server import KernelServer, free_port
from tests.jupyter_ext.kernel.test_examples import port_is_free
from tests.jupyter_ext.kernel_session import KernelSession, served_url

TRAIN = (
    "from sklearn.linear_model import LogisticRegression\n"
    "model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])\n"
    "SUFFIX_FROM_TRAINING = '!'"
)
PRE = '%%nbento preprocess\nimport numpy as np\nfrom runtime import runner\n\nclf = runner("tiny:latest")'
API = (
    "%%nbento api answer\n"
    "def answer(values: list[float]) -> dict:\n"
    "    return {'classes': np.asarray(clf.predict(np.asarray(values).reshape(-1, 1))).tolist()}"
)


def make_notebook(folder: Path) -> Path:
    nb = new_notebook(cells=[
        new_code_cell("%load_ext jupyter_ext"),
        new_code_cell(TRAIN),
        new_code_cell("%%nbento model tiny --batchable predict\nmodel"),
        new_code_cell(PRE),
        new_code_cell(API),
        new_code_cell("%nbento serve"),
    ])
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"k{index}"
    path = folder / "tiny.ipynb"
    nbformat.write(nb, str(path))
    return path


def answer(url: str) -> dict[str, object]:
    response = httpx.post(f"{url}/answer", json={"values": [0.0, 3.0]}, timeout=10, trust_env=False)
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


def requests_to(url: str, endpoint: str) -> float:
    """Requests the server has answered on `endpoint` (its own Prometheus counter)."""
    metrics = httpx.get(f"{url}/metrics", timeout=10, trust_env=False).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith(f'nbento_requests_total{{endpoint="{endpoint}",'))


@pytest.mark.slow
def test_edit_reload_and_broken_cells(tmp_path: Path) -> None:
    session = KernelSession(make_notebook(tmp_path))
    try:
        outputs = session.run_all(5)
        assert not any("nbento:" in text for text in outputs), outputs
        url = served_url(session.run(5))
        assert answer(url) == {"classes": [0, 1]}

        # An edited API cell is live when the cell finishes.
        out = session.edit(4, API.replace("'classes'", "'labels'"))
        assert "live in" in out, out
        assert answer(url) == {"labels": [0, 1]}

        # A syntax error: not captured, the last good version keeps serving.
        out = session.edit(4, API.replace("def answer(values: list[float])", "def answer(values: list[float]"))
        assert "cell 5 (api answer) line 2" in out and "capture was not updated" in out, out
        assert "jupyter_ext" not in out
        assert answer(url) == {"labels": [0, 1]}

        # A NameError at import (a name only an uncaptured training cell defines).
        broken = API.replace("def answer", "SUFFIX = SUFFIX_FROM_TRAINING\n\n\ndef answer")
        out = session.edit(4, broken)
        assert "uses 'SUFFIX_FROM_TRAINING', which no captured cell defines" in out, out
        assert "could not load the new code" in out, out
        assert "cell 5 (api answer) line 2: NameError" in out, out
        assert answer(url) == {"labels": [0, 1]}
        status = session.edit(5, "%nbento status")
        assert "last reload failed" in status and "cell 5 (api answer) line 2" in status, status
        assert "last reload took " in status and "- ms" not in status, status

        # Fixing the cell makes the new code live again. The server answers the reload
        # request itself, so the kernel no longer reads the status before writing.
        status_reads = requests_to(url, "status")
        out = session.edit(4, API.replace("'classes'", "'fixed'"))
        assert "live in" in out, out
        assert answer(url) == {"fixed": [0, 1]}
        assert requests_to(url, "status") == status_reads

        # A new model version for the `tiny:latest` runner: that runner reloads, code stays.
        before = httpx.get(f"{url}/_nbento/status", trust_env=False).json()
        session.edit(1, TRAIN.replace("[0, 0, 1, 1]", "[1, 1, 0, 0]"))
        out = session.run(2)
        assert "runner tiny now serves tiny:" in out, out
        assert answer(url) == {"fixed": [1, 0]}
        after = httpx.get(f"{url}/_nbento/status", trust_env=False).json()
        assert after["source_sha256"] == before["source_sha256"]
    finally:
        session.close()


@pytest.mark.slow
def test_server_stops_when_the_kernel_is_killed(tmp_path: Path) -> None:
    session = KernelSession(make_notebook(tmp_path))
    try:
        session.run_all(5)
        url = served_url(session.run(5))
        server_pid = httpx.get(f"{url}/_nbento/status", trust_env=False).json()["pid"]
        os.kill(session.kernel_pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not port_is_free(url):
            time.sleep(0.2)
        assert port_is_free(url)
        with pytest.raises(ProcessLookupError):
            for _ in range(50):  # the server process itself is gone too (reaped by init)
                os.kill(server_pid, 0)
                time.sleep(0.1)
    finally:
        session.close()


def test_start_failure_shows_the_log(tmp_path: Path) -> None:
    folder = tmp_path / "svc"
    folder.mkdir()
    (folder / "service.py").write_text("raise RuntimeError('boom at import')\n")
    server = KernelServer(folder, port=free_port(3900))
    with pytest.raises(Exception, match="exited while starting") as info:
        server.start(timeout=60)
    assert "boom at import" in str(info.value)
    assert not server.running


def test_a_port_taken_after_the_check_moves_to_the_next_free_one(tmp_path: Path) -> None:
    import socket

    folder = tmp_path / "svc"
    folder.mkdir()
    (folder / "service.py").write_text(
        "from runtime import api\n\n\n@api\ndef echo(x: int) -> dict:\n    return {'x': x}\n"
    )
    taken = socket.socket()
    taken.bind(("127.0.0.1", free_port(3920)))
    taken.listen()
    port = taken.getsockname()[1]
    server = KernelServer(folder, port=port)
    try:
        server.start(timeout=60, port_tries=3)
        assert server.port != port
        response = httpx.post(f"{server.url}/echo", json={"x": 3}, trust_env=False)
        assert response.json() == {"x": 3}
    finally:
        server.stop()
        taken.close()
    assert port_is_free(server.url)


def test_modules_next_to_the_notebook_are_importable_in_the_server(tmp_path: Path) -> None:
    (tmp_path / "ticket_rules.py").write_text("def shout(text):\n    return text.upper()\n")
    folder = tmp_path / ".nbento" / "svc"
    folder.mkdir(parents=True)
    (folder / "service.py").write_text(
        "from runtime import api\nfrom ticket_rules import shout\n\n\n"
        "@api\ndef echo(text: str) -> dict:\n    return {'said': shout(text)}\n"
    )
    server = KernelServer(folder, port=free_port(3930))
    try:
        server.start(timeout=60, port_tries=3)
        response = httpx.post(f"{server.url}/echo", json={"text": "hi"}, trust_env=False)
        assert response.json() == {"said": "HI"}
    finally:
        server.stop()


def test_a_users_runtime_or_nbento_module_cannot_shadow_nbento_in_the_server(tmp_path: Path) -> None:
    # The notebook folder holds modules named like nbento's packages (a user's own
    # runtime.py is common); the server still imports nbento, and the user's other modules.
    for shadow in ("runtime", "nbento", "jupyter_ext"):
        (tmp_path / f"{shadow}.py").write_text(f"raise ImportError('the user\\'s own {shadow}.py')\n")
    (tmp_path / "ticket_rules.py").write_text("def shout(text):\n    return text.upper()\n")
    folder = tmp_path / ".nbento" / "svc"
    folder.mkdir(parents=True)
    (folder / "service.py").write_text(
        "import sys\nfrom nbento import api\nfrom ticket_rules import shout\n\n\n"
        "@api\ndef echo(text: str) -> dict:\n"
        "    site = max(i for i, p in enumerate(sys.path) if p.endswith('site-packages'))\n"
        f"    return {{'said': shout(text), 'after_site': sys.path.index({str(tmp_path)!r}) > site}}\n"
    )
    server = KernelServer(folder, port=free_port(3940))
    try:
        server.start(timeout=60, port_tries=3)
        response = httpx.post(f"{server.url}/echo", json={"text": "hi"}, trust_env=False)
        assert response.status_code == 200, server.log_tail()
        assert response.json() == {"said": "HI", "after_site": True}
    finally:
        server.stop()
