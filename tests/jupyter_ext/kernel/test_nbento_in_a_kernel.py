"""What a user types in a real kernel (nbclient): `import nbento`, `%load_ext nbento`, and a
failing `%%nbento` / `%nbento` cell that stops Run All (nbconvert, papermill) at that cell."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat.v4 import new_code_cell, new_notebook

from tests.jupyter_ext.kernel_session import output_text


def run_notebook(folder: Path, sources: list[str]) -> tuple[nbformat.NotebookNode, CellExecutionError | None]:
    """Run All as nbconvert does (stop at the first failing cell); the executed notebook and
    the error, if a cell failed."""
    nb = new_notebook(cells=[new_code_cell(source) for source in sources])
    client = NotebookClient(
        nb, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(folder)}},
    )
    env = {k: v for k, v in os.environ.items() if k != "JPY_SESSION_NAME"}
    try:
        client.execute(env=env)
    except CellExecutionError as exc:
        return nb, exc
    return nb, None


def test_import_nbento_and_load_ext_nbento(tmp_path: Path) -> None:
    nb, error = run_notebook(tmp_path, [
        "import nbento, sys\n"
        "from nbento import runner, api, save_model, load\n"
        "print(nbento.__version__, 'fastapi' in sys.modules)",
        "%load_ext nbento",
        "%nbento help",
        "%%nbento api shout\ndef shout(text: str) -> str:\n    return text.upper()\n\nshout('hi')",
        "%nbento show",
    ])
    assert error is None, error
    import runtime

    assert output_text(nb.cells[0]).split() == [runtime.__version__, "False"]
    assert "%%nbento api NAME" in output_text(nb.cells[2])
    assert "'HI'" in output_text(nb.cells[3])
    module = (tmp_path / ".nbento").glob("*/service.py")
    text = next(module).read_text()
    assert "from nbento import api as _nbento_api" in text and "from runtime" not in text
    assert "_nbento_api(shout, name='shout')" in output_text(nb.cells[4])


@pytest.mark.parametrize(
    ("failing", "said"),
    [
        ("%%nbento api\ndef f(x: int) -> int:\n    return x", "the following arguments are required: NAME"),
        ("%nbento frobnicate", "unknown command 'frobnicate'"),
        ("%%nbento api f\ndef f(x: int) -> int:\n    return x\n\nf(None) + 1", "failed in the kernel"),
    ],
    ids=["bad-arguments", "unknown-command", "body-raises"],
)
def test_a_failing_nbento_cell_stops_run_all(tmp_path: Path, failing: str, said: str) -> None:
    nb, error = run_notebook(tmp_path, ["%load_ext nbento", failing, "print('ran after the failure')"])
    assert error is not None, "the failing cell did not fail"
    assert error.ename == "UsageError" and said in error.evalue
    assert nb.cells[1].execution_count is not None
    assert said in output_text(nb.cells[1])
    assert nb.cells[2].execution_count is None and not nb.cells[2].outputs  # never ran
