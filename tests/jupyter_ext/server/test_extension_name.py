"""The server extension is enabled as `nbento` (the name the wheel's config file uses); the old
name `jupyter_ext` still works, and both at once register the /nbento/ routes once."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.jupyter_ext.lab_server import jupyter_server

CONFIG = Path(__file__).resolve().parents[3] / "jupyter-config" / "server-config" / "nbento.json"


@pytest.mark.parametrize(
    "extensions", ["{'nbento': True}", "{'jupyter_ext': True}", "{'nbento': True, 'jupyter_ext': True}"],
    ids=["nbento", "old-name", "both"],
)
def test_the_rest_routes_answer_under_each_name(tmp_path: Path, extensions: str) -> None:
    with jupyter_server(tmp_path, extensions=extensions) as lab:
        response = httpx.get(lab.url("nbento/models"), headers=lab.auth(), timeout=30, trust_env=False)
        assert response.status_code == 200, lab.log_text()[-2000:]
        assert response.json()["models"] == []
        log = lab.log_text()
    assert log.count("nbento: REST handlers registered under /nbento/") == 1, log[-2000:]


def test_the_shipped_config_enables_nbento() -> None:
    assert json.loads(CONFIG.read_text()) == {"ServerApp": {"jpserver_extensions": {"nbento": True}}}
