"""Offline capture from .ipynb files, the one renderer, free names and `nbento build-service`."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from jupyter_ext.capture.notebook import (
    CapturedCell,
    CaptureError,
    build_service,
    capture_notebook,
    cell_line,
    render_module,
)
from runtime.cli import main as cli_main
from runtime.service.sources import resolve_source

PRE = '%%nbento preprocess\nfrom runtime import runner\nclf = runner("clf:latest")\n\ndef clean(t):\n    return [x.lower() for x in t]\n'
API = '%%nbento api classify --max-batch-size 8\ndef classify(texts: list[str]) -> dict:\n    return {"labels": clean(texts)}\n\nclassify(["Try"])\n'


def write_nb(path: Path, cells: list[object]) -> Path:
    nb = new_notebook(cells=cells)
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"c{index}"
    nbformat.write(nb, str(path))
    return path


def test_magic_cells_render_in_notebook_order_with_registration(tmp_path: Path) -> None:
    nb = write_nb(tmp_path / "My Tickets.ipynb", [
        new_markdown_cell("# title"),
        new_code_cell("import pandas  # training, not captured"),
        new_code_cell(PRE),
        new_code_cell("%%nbento model clf --batchable predict\nmodel"),
        new_code_cell(API),
    ])
    capture = capture_notebook(nb)
    assert capture.service_name == "my_tickets"
    assert [(c.kind, c.name, c.cell_id) for c in capture.cells] == [
        ("preprocess", None, "c2"), ("model", "clf", "c3"), ("api", "classify", "c4"),
    ]
    text = render_module(capture.cells, capture.service_name)
    ast.parse(text)
    assert text.index("def clean") < text.index("def classify")
    assert "_nbento_api(classify, name='classify', max_batch_size=8)" in text
    assert "model\n" not in text.split("SERVICE_NAME")[1]  # the model cell stays out
    # The sample call runs only in the kernel; commented out, the module keeps the cell's lines.
    assert '\nclassify(["Try"])' not in text and '# kernel only: classify(["Try"])' in text
    assert "SERVICE_NAME = 'my_tickets'" in text


def test_tags_and_metadata_capture_like_magic_lines(tmp_path: Path) -> None:
    magic = write_nb(tmp_path / "a.ipynb", [new_code_cell(PRE), new_code_cell(API)])
    pre_body = PRE.split("\n", 1)[1]
    api_body = API.split("\n", 1)[1]
    tagged = write_nb(tmp_path / "b.ipynb", [
        new_code_cell(pre_body, metadata={"tags": ["nbento:preprocess"]}),
        new_code_cell(api_body, metadata={"nbento": {"kind": "api", "name": "classify", "max_batch_size": 8}}),
    ])
    a, b = capture_notebook(magic), capture_notebook(tagged)
    assert render_module(a.cells, "svc") == render_module(b.cells, "svc")


def test_module_lines_map_back_to_notebook_cells(tmp_path: Path) -> None:
    nb = write_nb(tmp_path / "n.ipynb", [new_code_cell(PRE), new_code_cell("%%nbento api classify\n\nX = 1\nclassify(['a'])\ndef classify(texts: list[str]) -> dict:\n    return {'labels': clean(texts) + missing}\n")])
    capture = capture_notebook(nb)
    text = render_module(capture.cells, "svc")
    lines = text.splitlines()
    missing_at = next(i for i, line in enumerate(lines, 1) if "+ missing" in line)
    cell, line = cell_line(capture.cells, text, missing_at) or (None, 0)
    assert cell is not None and cell.cell_id == "c1" and line == 6  # line 6 of the notebook cell
    clf_at = next(i for i, line in enumerate(lines, 1) if "runner(" in line)
    assert cell_line(capture.cells, text, clf_at) == (capture.cells[0], 3)
    registration = next(i for i, line in enumerate(lines, 1) if line.startswith("_nbento_api("))
    assert cell_line(capture.cells, text, registration) is None
    assert cell_line(capture.cells, text, 1) is None


def test_bad_capture_arguments_name_the_cell(tmp_path: Path) -> None:
    nb = write_nb(tmp_path / "n.ipynb", [new_code_cell("x = 1"), new_code_cell("%%nbento api classify --max-batch-size zero\ndef classify(): ...")])
    with pytest.raises(CaptureError, match=r"cell 2 \(id c1\).*max-batch-size.*'zero'"):
        capture_notebook(nb)
    nb2 = write_nb(tmp_path / "m.ipynb", [new_code_cell("%%nbento endpoint x\n")])
    with pytest.raises(CaptureError, match="unknown capture kind 'endpoint'"):
        capture_notebook(nb2)


def test_syntax_error_and_missing_function_are_plain_words() -> None:
    broken = CapturedCell("id1", "api", "classify", "def classify(:\n    pass\n", index=4)
    with pytest.raises(CaptureError, match=r"cell 5 \(api classify\) line 1"):
        render_module([broken], "svc")
    magic = CapturedCell("id2", "preprocess", None, "x = 1\n%matplotlib inline\n", index=0)
    with pytest.raises(CaptureError, match=r"line 2.*IPython syntax"):
        render_module([magic], "svc")
    nofn = CapturedCell("id3", "api", "classify", "def a(): ...\ndef b(): ...\n", index=1)
    with pytest.raises(CaptureError, match=r"def classify.*functions found: a, b"):
        render_module([nofn], "svc")
    single = CapturedCell("id4", "api", "classify", "def predict(texts):\n    return texts\n")
    assert "_nbento_api(predict, name='classify')" in render_module([single], "svc")


def test_free_names_report_the_uncaptured_cell_defining_them(tmp_path: Path) -> None:
    nb = write_nb(tmp_path / "n.ipynb", [
        new_code_cell("import re\ndef helper(t):\n    return t.strip()\nTHRESHOLD = 0.5"),
        new_code_cell("%%nbento api classify\nimport json\ndef classify(texts: list[str]) -> dict:\n    out = [helper(t) for t in texts]\n    return {'x': out, 'j': json.dumps(out), 'n': len(out), 'u': undefined_thing}"),
    ])
    free = {f.name: f for f in capture_notebook(nb).free_names}
    assert set(free) == {"helper", "undefined_thing"}
    assert "cell 1 (id c0)" in free["helper"].message
    assert "cell 2 (api classify) line 4" in free["helper"].message
    assert "no cell of the notebook defines it" in free["undefined_thing"].message


def test_build_service_writes_module_and_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nb = write_nb(tmp_path / "support.ipynb", [new_code_cell(PRE), new_code_cell("%%nbento model clf --batchable predict\nm"), new_code_cell(API)])
    assert cli_main(["build-service", str(nb)]) == 0
    folder = tmp_path / ".nbento" / "support"
    assert "POST /classify" in capsys.readouterr().out
    manifest = yaml.safe_load((folder / "service.yaml").read_text())
    assert manifest["service"] == "support"
    assert manifest["notebook"] == "../../support.ipynb"
    assert manifest["apis"] == [{"name": "classify", "cell_id": "c2", "batchable": False, "max_batch_size": 8, "max_latency_ms": None}]
    assert manifest["runners"] == [{"name": "clf", "tag": "clf:latest"}]
    assert [c["kind"] for c in manifest["cells"]] == ["preprocess", "model", "api"]
    assert sorted(p.name for p in folder.iterdir()) == ["service.py", "service.yaml"]  # no temp files


def test_build_service_refuses_notebook_without_api(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    nb = write_nb(tmp_path / "n.ipynb", [new_code_cell(PRE)])
    assert cli_main(["build-service", str(nb)]) == 1
    assert "has no API cell" in capsys.readouterr().err
    assert cli_main(["build-service", str(tmp_path / "missing.ipynb")]) == 1


def test_notebook_source_regenerates_and_watches_the_notebook(tmp_path: Path) -> None:
    nb = write_nb(tmp_path / "svc.ipynb", [new_code_cell(PRE), new_code_cell(API)])
    source = resolve_source(nb)
    assert source.path == tmp_path / ".nbento" / "svc" / "service.py"
    assert nb.resolve() in source.watch
    assert source.regenerate is not None
    edited = nbformat.read(str(nb), as_version=4)
    edited.cells[1].source = edited.cells[1].source.replace('"labels"', '"tags"')
    nbformat.write(edited, str(nb))
    source.regenerate()
    assert '"tags"' in source.path.read_text()


def test_written_module_unchanged_bytes_are_not_rewritten(tmp_path: Path) -> None:
    nb = write_nb(tmp_path / "svc.ipynb", [new_code_cell(PRE), new_code_cell(API)])
    _, first = build_service(nb)
    mtime = first.module_path.stat().st_mtime_ns
    _, second = build_service(nb)
    assert first.changed and not second.changed
    assert second.module_path.stat().st_mtime_ns == mtime
    assert first.sha256 == second.sha256


def test_serve_a_notebook_from_a_terminal_recaptures_on_save(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    import httpx

    from jupyter_ext.actions.kernel_server import free_port

    api = "%%nbento api shout\ndef shout(text: str) -> dict:\n    return {'said': text.upper()}\n"
    nb = write_nb(tmp_path / "shouty.ipynb", [new_code_cell(api)])
    port = free_port(3950)
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "runtime", "serve", str(nb), "--reload", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    client = httpx.Client(timeout=5, trust_env=False)

    def ask() -> object:
        return client.post(f"http://127.0.0.1:{port}/shout", json={"text": "hi"}).json()

    def wait_for(expected: object) -> object:
        seen: object = None
        for _ in range(300):
            try:
                seen = ask()
                if seen == expected:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        return seen

    try:
        assert wait_for({"said": "HI"}) == {"said": "HI"}, (tmp_path / "serve.log").read_text()
        edited = nbformat.read(str(nb), as_version=4)
        edited.cells[0].source = api.replace("text.upper()", "text.upper() + '!'")
        nbformat.write(edited, str(nb))
        assert wait_for({"said": "HI!"}) == {"said": "HI!"}, (tmp_path / "serve.log").read_text()
        assert (tmp_path / ".nbento" / "shouty" / "service.py").read_text().count("+ '!'") == 1
    finally:
        client.close()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
        log.close()
