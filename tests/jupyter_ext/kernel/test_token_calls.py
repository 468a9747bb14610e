"""`%nbento call` and the widget panel's Try it against a server that requires the API token:
the kernel's server is started with the kernel's environment (so it requires the token the
kernel has), and both send it, whether it is set as `NBENTO_API_TOKEN` or as a file
(`NBENTO_API_TOKEN_FILE`, a mounted Secret)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from jupyter_ext.kernel.magics import backend_for_magics
from jupyter_ext.kernel.panel import NbentoPanel

TOKEN = "kernel-side-token-7f3a"
PRE = "%%nbento preprocess\ndef clean(texts):\n    return [t.strip().lower() for t in texts]"
API = "%%nbento api classify\ndef classify(texts: list[str]) -> dict:\n    return {'labels': clean(texts)}"


@pytest.mark.parametrize("how", ["env", "file"])
def test_call_and_try_it_send_the_token(
    how: str, ip: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if how == "env":
        monkeypatch.setenv("NBENTO_API_TOKEN", TOKEN)
    else:
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN + "\n")
        monkeypatch.setenv("NBENTO_API_TOKEN_FILE", str(token_file))
    shell, magics = ip
    assert shell.run_cell(PRE, cell_id="p").success
    assert shell.run_cell(API, cell_id="a").success
    assert shell.run_cell("%nbento serve --no-reload").success, capsys.readouterr()
    url = magics.server.url

    # the server really requires it: without the token a call is refused
    refused = httpx.post(f"{url}/classify", json={"texts": ["X"]}, trust_env=False, timeout=30)
    assert refused.status_code == 401, refused.text

    capsys.readouterr()
    result = shell.run_cell("%nbento call classify " + json.dumps({"texts": [" Hi "]}))
    out = capsys.readouterr().out
    assert result.success, out
    assert "200" in out and "hi" in out, out
    # a call the server refuses shows the answer and fails the cell (Run All stops there)
    result = shell.run_cell("%nbento call classify " + json.dumps({"texts": "not a list"}))
    seen = capsys.readouterr()
    assert not result.success
    assert "-> 422" in seen.out and "texts" in seen.out, seen
    assert "POST /classify answered 422" in seen.err and "Traceback" not in seen.err, seen

    panel = NbentoPanel(backend_for_magics(magics))
    panel.tryit.refresh()  # reads /openapi.json with the token
    assert list(panel.tryit.api.options) == ["classify"], panel.tryit.answer.value
    panel.tryit.body.value = json.dumps({"texts": [" Yes "]})
    answer = panel.tryit.send()
    assert answer is not None and answer["status"] == 200, panel.tryit.answer.value
    assert answer["body"] == {"labels": ["yes"]}
    assert "running" in panel.server.info.value  # the status probe sent it too
    # without --reload the server trims its pid from the status; the panel shows the kernel's
    assert f"PID {magics.server.pid}," in panel.server.info.value, panel.server.info.value
