"""`/docs` without a CDN: a real `nbento serve` subprocess serves Swagger UI's page and every
file it loads, with relative URLs only, so the page also works behind the Jupyter proxy.
(The browser test `tests/browser/test_panel_look.py` renders it with the network blocked.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.runtime.serving_support import ServerProcess, running_server, write_service

SERVICE = """
from runtime import api


@api
def echo(text: str) -> str:
    return text
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("docs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NBENTO_HOME", str(root / "home"))
        with running_server(write_service(root, SERVICE)) as proc:
            yield proc


def test_docs_page_loads_only_files_the_server_serves(server: ServerProcess) -> None:
    page = httpx.get(f"{server.url}/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert urls, page.text
    for url in urls:
        # relative: resolves under /docs here and under /nbento/proxy/ID/ behind Jupyter
        assert not url.startswith(("http:", "https:", "//", "/")), url
        asset = httpx.get(f"{server.url}/{url}")
        assert asset.status_code == 200, url
        assert len(asset.content) > 1000, url
    assert '"openapi.json"' in page.text
    bundle = httpx.get(f"{server.url}/docs/swagger-ui-bundle.js")
    assert bundle.headers["content-type"].startswith("text/javascript")
    # Swagger UI 5 renders OpenAPI 3.1, the version nbento's document declares
    assert re.search(r'"5\.\d+\.\d+"', bundle.text[:2_000_000])


def test_an_unknown_docs_file_is_a_clear_404(server: ServerProcess) -> None:
    answer = httpx.get(f"{server.url}/docs/index.html")
    assert answer.status_code == 404
    assert "swagger-ui.css" in answer.json()["error"]["message"]
    # only the three named files: no path reaches the service folder
    assert httpx.get(f"{server.url}/docs/..%2Fservice.py").status_code == 404


def test_no_cdn_left_in_the_page(server: ServerProcess) -> None:
    text = httpx.get(f"{server.url}/docs").text
    assert "cdn" not in text.lower() and "unpkg" not in text.lower()


def test_the_assets_are_part_of_the_install() -> None:
    from runtime.serving.openapi import DOCS_ASSETS, docs_assets_dir

    folder = docs_assets_dir()
    assert all((folder / name).is_file() for name in DOCS_ASSETS), Path(folder)
