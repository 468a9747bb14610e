"""Jupyter hides files under dot-folders (`.secret/x.ipynb`) unless
`ContentsManager.allow_hidden` is set; the nbento routes refuse them the same way, with a 404
that says why, through a real Jupyter server."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from tests.jupyter_ext.lab_server import LabServer, jupyter_server

API = "%%nbento api echo\ndef echo(texts: list[str]) -> dict:\n    return {'texts': texts}"
HIDDEN = [".secret/x.ipynb", "sub/../.secret/x.ipynb", "/.secret/x.ipynb", "visible.ipynb",
          "open/.hidden.ipynb"]


def populate(root: Path) -> None:
    text = json.dumps(new_notebook(cells=[new_code_cell(API)]))
    for rel in (".secret/x.ipynb", "open/.hidden.ipynb", "plain.ipynb"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "sub").mkdir()
    os.symlink(root / ".secret" / "x.ipynb", root / "visible.ipynb")


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    with jupyter_server(tmp_path_factory.mktemp("jupyter")) as server:
        populate(server.root)
        yield server


def call(lab: LabServer, method: str, path: str, body: object = None) -> httpx.Response:
    return httpx.request(method, lab.url(path), headers=lab.auth(), timeout=60, trust_env=False,
                         content=json.dumps(body).encode() if body is not None else None)


@pytest.mark.parametrize("rel", HIDDEN)
def test_a_hidden_notebook_is_refused_like_jupyter_does(lab: LabServer, rel: str) -> None:
    if rel != "visible.ipynb":  # Jupyter follows a link to a hidden file; nbento does not
        assert call(lab, "GET", f"api/contents/{rel.lstrip('/')}").status_code in (400, 404)
    for method, route, body in [("GET", f"nbento/services?notebook={rel}", None),
                                ("POST", "nbento/servers", {"notebook": rel}),
                                ("POST", "nbento/exports", {"notebook": rel})]:
        answer = call(lab, method, route, body)
        assert answer.status_code == 404, (route, answer.text)
        message = answer.json()["message"]
        assert "hidden" in message and "allow_hidden" in message, message
    assert call(lab, "GET", "nbento/services?notebook=plain.ipynb").status_code == 200


def test_a_hidden_out_dir_is_refused(lab: LabServer) -> None:
    r = call(lab, "POST", "nbento/exports", {"notebook": "plain.ipynb", "out_dir": ".git/k8s"})
    assert r.status_code == 400 and "hidden folder" in r.json()["message"], r.text
    assert not (lab.root / ".git").exists()


def test_allow_hidden_lets_them_through(tmp_path: Path) -> None:
    with jupyter_server(tmp_path, extra_args=["--ContentsManager.allow_hidden=True"]) as server:
        populate(server.root)
        for rel in HIDDEN:
            r = call(server, "GET", f"nbento/services?notebook={rel}")
            assert r.status_code == 200, (rel, r.text)
