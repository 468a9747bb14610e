"""Golden answers recorded in the kernel: an API cell's sample calls (as the request the server
would decode and the answer its encoder would write) and `%nbento call`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jupyter_ext.capture.golden import Unrecordable, request_body, sample_golden
from runtime.export.golden import read_goldens
from runtime.service.definition import ApiSpec
from runtime.service.schema import ApiSchema, NDArray

PRE = "%%nbento preprocess\ndef clean(texts):\n    return [t.lower() for t in texts]"
API = (
    "%%nbento api classify\ndef classify(texts: list[str]) -> dict:\n"
    "    return {'labels': clean(texts), 'n': len(texts)}\n\n"
    "classify(['Hi'])\n"
    "print(classify(texts=['A', 'b']))\n"
    "len(clean(['not', 'a', 'sample']))\n"
)



def test_sample_calls_are_recorded_with_the_served_encoding(
    ip: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shell, _ = ip
    shell.run_cell(PRE, cell_id="p")
    assert shell.run_cell(API, cell_id="a").success
    out = capsys.readouterr().out
    assert "{'labels': ['a', 'b'], 'n': 2}" in out and ": 3" in out  # the cell ran as written
    folder = tmp_path / ".nbento" / "notebook"
    goldens = read_goldens(folder / "golden.jsonl")
    assert [(g.api, g.request, g.answer, g.source, g.cell_id) for g in goldens] == [
        ("classify", {"texts": ["Hi"]}, {"labels": ["hi"], "n": 1}, "sample", "a"),
        ("classify", {"texts": ["A", "b"]}, {"labels": ["a", "b"], "n": 2}, "sample", "a"),
    ]
    sha = hashlib.sha256((folder / "service.py").read_bytes()).hexdigest()
    assert {g.module_sha256 for g in goldens} == {sha}  # recorded against the module written
    assert "_nbento_sample_" not in shell.user_ns and shell.ast_transformers == []  # cleaned up

    # Re-running the cell replaces its samples; without sample calls none are left.
    shell.run_cell(API.split("\n\n")[0], cell_id="a")
    assert read_goldens(folder / "golden.jsonl") == []


def test_a_failing_cell_records_nothing(ip: Any, tmp_path: Path) -> None:
    shell, _ = ip
    shell.run_cell(PRE, cell_id="p")
    shell.run_cell(API, cell_id="a")
    before = (tmp_path / ".nbento" / "notebook" / "golden.jsonl").read_text()
    shell.run_cell(API + "classify(None)\n", cell_id="a")
    assert (tmp_path / ".nbento" / "notebook" / "golden.jsonl").read_text() == before


def _schema(func: Any, batchable: bool = False) -> ApiSchema:
    return ApiSchema(ApiSpec(name=func.__name__, func=func, is_async=False, batchable=batchable))


def test_requests_take_the_shape_the_server_decodes() -> None:
    def embed(x: NDArray[np.float32, (-1, 2)]) -> np.ndarray:
        return np.asarray(x) * 2

    def scale(values: list[float], factor: float = 1.0, label: str = "x") -> dict:
        return {}

    def echo(payload: dict) -> str:
        return json.dumps(payload)

    def upload(data: bytes) -> int:
        return len(data)

    array = np.array([[1.5, 2.0]], dtype=np.float32)
    golden = sample_golden(_schema(embed), (array,), {}, embed(array))
    assert golden.request == {"x": [[1.5, 2.0]]}
    assert golden.answer == [[3.0, 4.0]] and golden.media_type == "application/json"
    assert request_body(_schema(scale), ([1, 2],), {"label": "y"}) == {"values": [1, 2], "label": "y"}
    text = sample_golden(_schema(echo), ({"a": 1},), {}, echo({"a": 1}))
    assert text.request == {"a": 1}  # an object parameter is the body itself
    assert text.answer == '{"a": 1}' and text.media_type.startswith("text/plain")
    with pytest.raises(Unrecordable, match="'data' takes a file"):
        request_body(_schema(upload), (b"abc",), {})
    with pytest.raises(Unrecordable, match="do not fit"):
        request_body(_schema(scale), (), {"nope": 1})
