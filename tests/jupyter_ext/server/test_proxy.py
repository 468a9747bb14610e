"""`/nbento/proxy/ID/...` through a real Jupyter server subprocess and a real development server:
the server's /docs, its files and its APIs reached through Jupyter's URL (for browsers that
cannot reach 127.0.0.1:PORT), behind Jupyter's auth, and never a way to other addresses."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.jupyter_ext.lab_server import (
    LabServer,
    copy_example,
    jupyter_server,
    save_support_classifier,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    with jupyter_server(tmp_path_factory.mktemp("jupyter")) as server:
        copy_example(server.root)
        save_support_classifier(server.home)
        yield server


@pytest.fixture(scope="module")
def dev(lab: LabServer) -> Iterator[dict[str, Any]]:
    started = httpx.post(lab.url("nbento/servers"), json={"notebook": "support_tickets.ipynb"},
                         headers=lab.auth(), timeout=120, trust_env=False)
    assert started.status_code == 201, started.text
    server = started.json()
    yield server
    httpx.delete(lab.url(f"nbento/servers/{server['id']}"), headers=lab.auth(), timeout=30,
                 trust_env=False)


def get(lab: LabServer, path: str, **kw: Any) -> httpx.Response:
    return httpx.get(lab.url(path), headers=kw.pop("headers", lab.auth()), timeout=30,
                     trust_env=False, **kw)


def test_docs_and_their_files_come_through_jupyter(lab: LabServer, dev: dict[str, Any]) -> None:
    page = get(lab, f"nbento/proxy/{dev['id']}/docs")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "swagger-ui-bundle.js" in page.text
    # no script ban on the page (an APIHandler's Content-Security-Policy would blank it)
    assert "default-src 'none'" not in page.headers.get("content-security-policy", "")
    port = dev["url"].rsplit(":", 1)[1]
    css = get(lab, f"nbento/proxy/{port}/docs/swagger-ui.css")  # by port works too
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_openapi_points_try_it_out_at_the_proxy(lab: LabServer, dev: dict[str, Any]) -> None:
    doc = get(lab, f"nbento/proxy/{dev['id']}/openapi.json").json()
    assert doc["servers"][0]["url"] == f"/nbento/proxy/{dev['id']}"
    assert "/classify" in doc["paths"]


def test_an_api_call_through_the_proxy(lab: LabServer, dev: dict[str, Any]) -> None:
    body = {"texts": ["I was charged twice for my subscription"]}
    answer = httpx.post(lab.url(f"nbento/proxy/{dev['id']}/classify"), json=body,
                        headers=lab.auth(), timeout=60, trust_env=False)
    assert answer.status_code == 200, answer.text
    assert answer.json()["labels"] == ["billing"]
    bad = httpx.post(lab.url(f"nbento/proxy/{dev['id']}/classify"), json={"texts": 3},
                     headers=lab.auth(), timeout=60, trust_env=False)
    assert bad.status_code == 422  # the service's own answer, passed through
    assert bad.json()["error"]["field"] == "texts"


def test_without_jupyters_token_nothing_passes(lab: LabServer, dev: dict[str, Any]) -> None:
    page = get(lab, f"nbento/proxy/{dev['id']}/docs", headers={})
    assert page.status_code == 302 and "/login" in page.headers["location"]  # a page: log in first
    post = httpx.post(lab.url(f"nbento/proxy/{dev['id']}/classify"), json={"texts": ["x"]},
                      timeout=30, trust_env=False)
    assert post.status_code == 403


def test_not_an_open_proxy(lab: LabServer, dev: dict[str, Any]) -> None:
    # a real HTTP server on 127.0.0.1 that this Jupyter did not start: out of reach
    other = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=other.serve_forever, daemon=True)
    thread.start()
    try:
        for key in (str(other.server_address[1]), "nope-1", "22"):
            answer = get(lab, f"nbento/proxy/{key}/")
            assert answer.status_code == 404, (key, answer.text)
            assert "started or adopted here" in answer.json()["message"]
    finally:
        other.shutdown()
        other.server_close()
    # a URL in the path stays a path on the known server (its own 404), never another host
    answer = get(lab, f"nbento/proxy/{dev['id']}/http://example.com/")
    assert answer.status_code == 404
    assert "no route" in answer.json()["error"]["message"]
