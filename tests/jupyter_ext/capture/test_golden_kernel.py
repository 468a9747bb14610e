"""The whole loop in a real kernel (nbclient): the notebook records its answers (a sample call
in the API cell, `%nbento call`), a re-run keeps the API the panel tagged in the saved file,
and `nbento build` builds the unchanged service but refuses the drifted one with the diff."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from runtime.cli import main
from tests.jupyter_ext.kernel_session import KernelSession
from tests.runtime.bento_fixtures import save_toy_model

PRE = (
    "%%nbento preprocess\nfrom runtime import runner\n\nSCALE = 2.0\n"
    "clf = runner('toy_clf:latest')\n\ndef scale(xs):\n    return [x * SCALE for x in xs]"
)
API = (
    "%%nbento api double\ndef double(x: list[float]) -> dict:\n"
    "    label = int(clf.predict([[len(x) * 5.0, 3.0]])[0])\n"
    "    return {'scaled': scale(x), 'label': label}\n\n"
    "double([1.0, 2.5])"
)
TAGGED = "def shout(text: str) -> str:\n    return text.upper()"


def test_recorded_answers_build_and_a_drifted_module_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    save_toy_model()
    tagged = new_code_cell(TAGGED)
    tagged.metadata["nbento"] = {"kind": "api", "name": "shout"}  # what the panel writes
    nb = new_notebook(cells=[
        new_code_cell("%load_ext jupyter_ext"), new_code_cell(PRE), new_code_cell(API), tagged,
        new_code_cell("%nbento serve"), new_code_cell('%nbento call double {"x": [4.0]}'),
        new_code_cell("%nbento stop"),
    ])
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"c{index}"
    notebook = tmp_path / "scaler.ipynb"
    nbformat.write(nb, str(notebook))
    folder = tmp_path / ".nbento" / "scaler"

    session = KernelSession(notebook)
    try:
        outputs = [session.run(i) for i in range(3)]
        assert "{'scaled': [2.0, 5.0], 'label': 1}" in outputs[2], outputs
        assert "_nbento_api(shout, name='shout')" in (folder / "service.py").read_text()
        session.run(1)  # a re-run of a captured cell rewrites the module ...
        assert "_nbento_api(shout, name='shout')" in (folder / "service.py").read_text()  # ... keeping it
        assert "serving scaler at" in session.run(4)
        assert "POST /double -> 200" in session.run(5)
        assert "stopped the server" in session.run(6)
    finally:
        session.close()

    goldens = [json.loads(line) for line in (folder / "golden.jsonl").read_text().splitlines()]
    assert [(g["api"], g["request"], g["answer"], g["source"], g["cell_id"]) for g in goldens] == [
        ("double", {"x": [1.0, 2.5]}, {"scaled": [2.0, 5.0], "label": 1}, "sample", "c2"),
        ("double", {"x": [4.0]}, {"scaled": [8.0], "label": 0}, "call", "c5"),
    ]
    capsys.readouterr()
    assert main(["build", str(folder)]) == 0, capsys.readouterr().err
    assert "2 golden answer(s) replayed against http://127.0.0.1:" in capsys.readouterr().err

    module = folder / "service.py"
    module.write_text(module.read_text().replace("SCALE = 2.0", "SCALE = 3.0"))
    assert main(["build", str(folder)]) == 1
    err = capsys.readouterr().err
    assert "2 of 2 golden answer(s) differ" in err
    assert ('POST /double {"x": [1.0, 2.5]} (sample call in cell 3 (api double)' in err
            and "$.scaled[0]: expected 2.0, got 3.0" in err)
    assert ('POST /double {"x": [4.0]} (%nbento call in cell c5, recorded' in err
            and "$.scaled[0]: expected 8.0, got 12.0" in err)
