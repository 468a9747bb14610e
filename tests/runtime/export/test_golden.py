"""Golden replay at build time and `nbento verify`: the built Bento is served on 127.0.0.1 and
asked what the notebook was asked; a different answer refuses the build. Also the build's
refusal of free names, with the message `serve` prints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from runtime.cli import main
from runtime.errors import BuildError
from runtime.export.bento import build_bento
from runtime.export.bento_store import list_bentos
from runtime.export.golden import Golden, json_diff, read_goldens, record_goldens, write_goldens
from runtime.export.golden_replay import served
from tests.conftest import require_module
from tests.runtime.bento_fixtures import save_toy_model

require_module("jupyter_ext.capture.notebook")

PRE = (
    "%%nbento preprocess\nfrom runtime import runner\n\nSCALE = 2.0\n"
    "clf = runner('toy_clf:latest')\n\ndef scale(xs):\n    return [x * SCALE for x in xs]\n"
)
API = (
    "%%nbento api double\ndef double(x: list[float]) -> dict:\n"
    "    label = int(clf.predict([[len(x) * 5.0, 3.0]])[0])\n"
    "    return {'scaled': scale(x), 'label': label}\n"
)


def write_service(tmp_path: Path, cells: list[str]) -> Path:
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from jupyter_ext.capture.notebook import build_service

    nb = new_notebook(cells=[new_code_cell(c) for c in cells])
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"c{index}"
    nbformat.write(nb, str(tmp_path / "scaler.ipynb"))
    _, written = build_service(tmp_path / "scaler.ipynb")
    return written.folder


def golden(request: object, answer: object, **extra: object) -> Golden:
    return Golden.model_validate(
        {"api": "double", "request": request, "answer": answer, "source": "sample",
         "cell_id": "c1", "recorded_at": "2026-11-29T20:00:00Z", **extra}
    )


def test_json_diff_names_the_path_and_keeps_the_float_tolerance() -> None:
    expected = {"scores": [0.5, 1.0], "labels": ["a"], "ok": True, "n": 3}
    assert json_diff(expected, {"scores": [0.5 * (1 + 5e-7), 1.0], "labels": ["a"], "ok": True, "n": 3.0}) == []
    assert json_diff(expected, {"scores": [0.5001, 1.0], "labels": ["b", "c"], "ok": 1, "x": None}) == [
        "$.scores[0]: expected 0.5, got 0.5001",
        "$.labels: expected 1 items, got 2",
        '$.labels[0]: expected "a", got "b"',
        "$.ok: expected true, got 1",
        "$.n: missing (expected 3)",
        "$.x: unexpected (got null)",
    ]
    assert json_diff(0.0, 1e-12) == []  # absolute tolerance near zero
    assert json_diff("text", "text") == [] and json_diff([1], {"a": 1}) != []


def test_recording_replaces_the_same_request_and_a_cells_old_samples(tmp_path: Path) -> None:
    path = tmp_path / "golden.jsonl"
    record_goldens(path, [golden({"x": [1.0]}, {"scaled": [2.0]}), golden({"x": [2.0]}, {"scaled": [4.0]})])
    record_goldens(path, [golden({"x": [1.0]}, {"scaled": [3.0]}, source="call", cell_id="z")])
    assert [(g.request, g.answer, g.source) for g in read_goldens(path)] == [
        ({"x": [2.0]}, {"scaled": [4.0]}, "sample"), ({"x": [1.0]}, {"scaled": [3.0]}, "call"),
    ]
    record_goldens(path, [], replace_samples_of="c1")
    assert [g.source for g in read_goldens(path)] == ["call"]
    path.write_text(path.read_text() + '{"api": "double"}\n')
    with pytest.raises(Exception, match=r"golden.jsonl:2 is not a golden answer \(request: Field required\)"):
        read_goldens(path)


def test_build_replays_the_goldens_and_refuses_a_drifted_module(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_toy_model()
    folder = write_service(tmp_path, [PRE, API])
    write_goldens(folder / "golden.jsonl", [golden({"x": [1.0, 2.5]}, {"scaled": [2.0, 5.0], "label": 1})])

    bento = build_bento(folder)  # unchanged: the Bento answers as the notebook did
    assert read_goldens(bento.path / "golden" / "golden.jsonl")[0].answer == {"scaled": [2.0, 5.0], "label": 1}

    module = folder / "service.py"
    module.write_text(module.read_text().replace("SCALE = 2.0", "SCALE = 2.5"))
    assert main(["build", str(folder)]) == 1
    err = capsys.readouterr().err
    err = err[err.index("error: "):]  # after the build's progress lines, which share stderr
    assert err.startswith(
        "error: refusing to build: the Bento answers differently from the notebook. 1 of 1 "
        "golden answer(s) differ from what http://127.0.0.1:"
    ), err
    assert (
        '  POST /double {"x": [1.0, 2.5]} (sample call in cell 2 (api double), recorded '
        "2026-11-29T20:00:00Z):\n"
        "    $.scaled[0]: expected 2.0, got 2.5\n"
        "    $.scaled[1]: expected 5.0, got 6.25\n"
        "  (numbers compare within relative 1e-06, absolute 1e-09)\n"
        "If the change is intended, re-run the API cell's sample calls"
    ) in err
    assert [b.version for b in list_bentos()] == [bento.version]  # nothing half-built left
    assert main(["build", str(folder), "--skip-replay"]) == 0


def test_verify_a_bento_and_a_running_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    save_toy_model()
    folder = write_service(tmp_path, [PRE, API])
    write_goldens(folder / "golden.jsonl", [golden({"x": [3.0]}, {"scaled": [6.0], "label": 0})])
    bento = build_bento(folder)
    capsys.readouterr()
    assert main(["verify", str(bento.path)]) == 0
    assert "1 golden answer(s) replayed against http://127.0.0.1:" in capsys.readouterr().out

    module = folder / "service.py"
    module.write_text(module.read_text().replace("SCALE = 2.0", "SCALE = -1.0"))
    with served(folder) as url:  # a canary running the drifted code
        assert main(["verify", bento.tag.name, "--url", url, "--json"]) == 1
        report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["url"] == url
    assert report["mismatches"] == [{
        "api": "double", "request": {"x": [3.0]}, "status": 200,
        "differences": ["$.scaled[0]: expected 6.0, got -3.0"],
    }]
    assert main(["verify", str(folder)]) == 1  # SRC: served from the service folder itself
    assert "$.scaled[0]: expected 6.0, got -3.0" in capsys.readouterr().err
    (folder / "golden.jsonl").unlink()
    assert main(["verify", str(folder)]) == 1
    assert "no golden answers in" in capsys.readouterr().err


def test_build_refuses_free_names_with_the_message_serve_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from jupyter_ext.capture.notebook import capture_notebook

    helper = "def shorten(text):\n    return text[:3]"
    api = "%%nbento api short\ndef short(text: str) -> dict:\n    return {'short': shorten(text)}"
    folder = write_service(tmp_path, [helper, api])
    notebook = tmp_path / "scaler.ipynb"
    served_message = capture_notebook(notebook).free_names[0].message
    expected = (
        "refusing to build: the captured cells use names no captured cell defines; the service "
        "would fail with NameError in production:\n"
        "  cell 2 (api short) line 3 uses 'shorten', which no captured cell defines; defined in "
        "cell 1 (id c0), which is not captured: capture it with %%nbento preprocess or move the "
        "definition\n"
        "Capture the cells that define them (or move the definitions into captured cells), or "
        "build anyway with --allow-free-names"
    )
    assert served_message in expected
    with pytest.raises(BuildError) as err:
        build_bento(notebook)
    assert str(err.value) == expected
    capsys.readouterr()
    assert main(["build", str(folder)]) == 1
    assert capsys.readouterr().err.endswith(f"error: {expected}\n")
    assert main(["build", str(folder), "--allow-free-names"]) == 0
    manifest = yaml.safe_load((folder / "service.yaml").read_text())
    assert [f["name"] for f in manifest["free_names"]] == ["shorten"]
