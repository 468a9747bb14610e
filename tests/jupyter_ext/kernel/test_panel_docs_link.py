"""The widget panel's `/docs` link goes through the Jupyter server's proxy when the kernel runs
under a Jupyter server with nbento's extension (a browser elsewhere cannot open the kernel's
127.0.0.1), and says so when it has to link the server directly."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_core.paths import jupyter_runtime_dir

from jupyter_ext.kernel.jupyter_link import (
    DIRECT_NOTE,
    JupyterServer,
    docs_link,
    find_jupyter_server,
)
from tests.jupyter_ext.lab_server import jupyter_server


def test_the_kernel_finds_the_jupyter_server_that_started_it(tmp_path: Path) -> None:
    (tmp_path / "jpserver-111.json").write_text(json.dumps(
        {"pid": 111, "base_url": "/other/", "url": "http://127.0.0.1:1/other/"}))
    (tmp_path / "jpserver-222.json").write_text(json.dumps(
        {"pid": 222, "base_url": "/user/ana/", "url": "http://127.0.0.1:8888/user/ana/"}))
    (tmp_path / "jpserver-333.json").write_text("{not json")
    found = find_jupyter_server(tmp_path, parent_pid=222, environ={})
    assert found == JupyterServer("/user/ana/", "http://127.0.0.1:8888/user/ana/")
    assert find_jupyter_server(tmp_path, parent_pid=999, environ={}) is None
    hub = {"JUPYTERHUB_SERVICE_PREFIX": "/user/bo/", "JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:8888/user/bo/"}
    assert find_jupyter_server(tmp_path, parent_pid=999, environ=hub) == JupyterServer(
        "/user/bo/", "http://0.0.0.0:8888/user/bo/")


def test_without_a_jupyter_server_the_link_is_direct_and_says_so() -> None:
    link = docs_link("http://127.0.0.1:3000", None)
    assert (link.href, link.via_jupyter, link.note) == ("http://127.0.0.1:3000/docs", False, DIRECT_NOTE)
    nothing_there = JupyterServer("/", "http://127.0.0.1:9/")  # port 9: nothing listens
    assert docs_link("http://127.0.0.1:3000", nothing_there).via_jupyter is False


CELLS = [
    "%load_ext jupyter_ext",
    "%%nbento preprocess\ndef clean(texts):\n    return [t.strip().lower() for t in texts]",
    "%%nbento api classify\ndef classify(texts: list[str]) -> dict:\n    return {'labels': clean(texts)}",
    "%nbento serve --no-reload",
    "panel = get_ipython().run_line_magic('nbento', 'panel')\nprint(panel.children[1].children[1].value)",
]


def _run(client: BlockingKernelClient, code: str) -> str:
    out: list[str] = []

    def keep(msg: dict[str, Any]) -> None:
        content = msg["content"]
        if msg["msg_type"] == "stream":
            out.append(content["text"])
        elif msg["msg_type"] == "error":
            out.append("\n".join(content["traceback"]))

    client.execute_interactive(code, timeout=180, output_hook=keep)
    return "".join(out)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_the_widget_links_docs_through_the_jupyter_proxy(tmp_path: Path) -> None:
    with jupyter_server(tmp_path, base_url="/jh/u/") as lab:
        notebook = lab.root / "linked.ipynb"
        nbformat.write(nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_code_cell(c) for c in CELLS]), str(notebook))
        # a kernel the Jupyter server starts, as a front end gets one
        session = httpx.post(
            lab.url("api/sessions"), headers=lab.auth(), trust_env=False, timeout=60,
            json={"path": "linked.ipynb", "type": "notebook", "kernel": {"name": "python3"}},
        )
        assert session.status_code == 201, session.text
        kernel_id = session.json()["kernel"]["id"]
        client = BlockingKernelClient()
        connection = Path(jupyter_runtime_dir()) / f"kernel-{kernel_id}.json"
        deadline = time.monotonic() + 30
        while not connection.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        client.load_connection_file(str(connection))
        client.start_channels()
        try:
            client.wait_for_ready(timeout=60)
            outputs = [_run(client, code) for code in CELLS]
            served = outputs[3]
            port = re.search(r"at http://127\.0\.0\.1:(\d+)", served)
            assert port is not None, "\n---\n".join(outputs)
            href = f"/jh/u/nbento/proxy/{port.group(1)}/docs"
            assert f"/docs through Jupyter, for a browser on another machine: {href}" in served
            assert f"<a href='{href}' target='_blank'>/docs</a>" in outputs[4], outputs[4]
            assert "direct link" not in outputs[4]

            # the link opens (nobody listed the servers first: the proxy adopts the kernel's)
            origin = lab.base.removesuffix("/jh/u")
            page = httpx.get(origin + href, headers=lab.auth(), trust_env=False, timeout=60)
            assert page.status_code == 200, page.text
            assert "swagger-ui-bundle.js" in page.text
            _run(client, "%nbento stop")
        finally:
            client.stop_channels()
            httpx.delete(lab.url(f"api/sessions/{session.json()['id']}"), headers=lab.auth(),
                         trust_env=False, timeout=60)
