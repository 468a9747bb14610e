"""The magics in an in-process IPython shell: capture, replace, drop, order, errors in plain words.
(Real kernels and a real server: test_examples.py and test_kernel_server.py.)"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from jupyter_ext.capture.notebook import capture_notebook, render_module
from runtime import store

PRE = "%%nbento preprocess\ndef clean(texts):\n    return [t.lower() for t in texts]"
API = "%%nbento api classify\ndef classify(texts: list[str]) -> dict:\n    return {'labels': clean(texts)}\n\nclassify(['Hi'])"



def module_text(tmp_path: Path, service: str = "notebook") -> str:
    return (tmp_path / ".nbento" / service / "service.py").read_text()


def test_api_cell_runs_in_kernel_and_is_captured(ip: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shell, _ = ip
    shell.run_cell(PRE, cell_id="p")
    result = shell.run_cell(API, cell_id="a")
    assert result.success
    assert shell.user_ns["classify"](["X"]) == {"labels": ["x"]}
    assert "{'labels': ['hi']}" in capsys.readouterr().out  # the sample call showed its value
    text = module_text(tmp_path)
    assert "def clean" in text and "_nbento_api(classify, name='classify')" in text
    assert "\nclassify(['Hi'])" not in text


def test_rerun_replaces_and_removing_the_magic_drops(ip: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shell, magics = ip
    shell.run_cell(PRE, cell_id="p")
    shell.run_cell(API, cell_id="a")
    shell.run_cell(API.replace("'labels'", "'tags'"), cell_id="a")
    text = module_text(tmp_path)
    assert "'tags'" in text and "'labels'" not in text
    assert text.count("def classify") == 1
    shell.run_cell("def clean(texts):\n    return texts", cell_id="p")  # magic line deleted
    assert "no longer captured" in capsys.readouterr().out
    assert "def clean" not in module_text(tmp_path)
    assert set(magics.state.cells) == {"a"}


def test_order_follows_the_saved_notebook(ip: Any, tmp_path: Path) -> None:
    shell, magics = ip
    nb = new_notebook(cells=[new_code_cell(PRE), new_code_cell("x = 1"), new_code_cell(API)])
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{index}"
    nbformat.write(nb, str(tmp_path / "tickets.ipynb"))
    # Run the API cell first, with no front-end cell id: the cell is found in the file.
    shell.run_cell(API)
    shell.run_cell(PRE)
    assert magics.state.service_name == "tickets"
    live = module_text(tmp_path, "tickets")
    assert live.index("def clean") < live.index("def classify")
    offline = capture_notebook(tmp_path / "tickets.ipynb")
    assert render_module(offline.cells, offline.service_name) == live


def test_errors_are_plain_words_and_keep_the_previous_capture(ip: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shell, _ = ip
    shell.run_cell(PRE, cell_id="p")
    shell.run_cell(API, cell_id="a")
    before = module_text(tmp_path)
    capsys.readouterr()
    result = shell.run_cell("%%nbento api classify\ndef classify(texts:\n    return 1", cell_id="a")
    assert not result.success  # the cell fails: Run All stops here
    err = capsys.readouterr().err
    assert err.startswith("UsageError: cell a (api classify) line 2") and "capture was not updated" in err
    assert "Traceback" not in err and "jupyter_ext" not in err
    result = shell.run_cell("%%nbento api classify\ndef classify(texts):\n    return 1\nclassify(None) + 'x'", cell_id="a")
    assert not result.success
    out = capsys.readouterr()
    assert "UsageError: cell a (api classify) failed in the kernel" in out.err
    assert "TypeError" in out.err + out.out  # the user's own error, shown above it
    assert "jupyter_ext" not in out.out + out.err  # the user's traceback only
    assert module_text(tmp_path) == before


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("%%nbento api", "the following arguments are required: NAME"),
        ("%%nbento api classify --max-latency-ms -3", "expected more than 0 ms"),
        ("%%nbento model clf --label oops", "labels are written key=value"),
        ("%%nbento model Bad/Name", "invalid model name"),
        ("%%nbento transform x", "unknown capture kind 'transform'"),
    ],
)
def test_bad_cell_arguments(ip: Any, line: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    shell, _ = ip
    result = shell.run_cell(f"{line}\nbody_ran_ = 1")
    assert not result.success and "body_ran_" not in shell.user_ns  # failed before the body ran
    err = capsys.readouterr().err
    assert message in err and err.startswith("UsageError: ")
    assert "Traceback" not in err and err.count("\n") == 1  # one line


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("%nbento frobnicate", "unknown command 'frobnicate'; the commands are serve, stop"),
        ("%nbento serv", "did you mean '%nbento serve'?"),
        ("%nbento serve --port abc", "a port is a number"),
        ("%nbento serve", "nothing to serve yet"),
        ("%nbento call classify '{}'", "no server is running"),
        ("%nbento stop now", "unrecognized arguments: now"),
    ],
)
def test_bad_line_commands(ip: Any, line: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    shell, _ = ip
    result = shell.run_cell(line)
    assert not result.success
    err = capsys.readouterr().err
    assert message in err and err.startswith("UsageError: ") and "Traceback" not in err
    assert err.count("\n") == 1


def test_the_magic_docstring_is_its_help(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    shell, _ = ip
    shown = shell.object_inspect_text("%nbento")  # what `%nbento?` shows
    assert "Notebook cells as a typed, batched model service" in shown
    for expected in ("%%nbento preprocess", "%%nbento model NAME", "%%nbento api NAME",
                     "%nbento serve", "%nbento call", "%nbento build", "%nbento export"):
        assert expected in shown
    result = shell.run_cell("%nbento help")
    assert result.success and "%nbento serve" in capsys.readouterr().out


def test_model_cell_saves_last_expression_with_signatures(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    shell, magics = ip
    shell.run_cell("from sklearn.linear_model import LogisticRegression\nimport numpy as np\nm = LogisticRegression().fit(np.eye(4), [0, 1, 0, 1])")
    shell.run_cell("%%nbento model tiny --batchable predict,predict_proba --label team=ml\nm", cell_id="m")
    out = capsys.readouterr().out
    assert "saved model tiny:" in out and "predict_proba (batchable, dim 0)" in out
    saved = store.get("tiny:latest")
    assert saved.info.labels == {"team": "ml"}
    assert saved.info.signatures["predict"].batchable
    assert saved.info.provenance.cell_id == "m"
    assert magics.state.models_saved["tiny"]["tag"] == str(saved.tag)
    shell.run_cell("other = m\n%nbento status")
    shell.run_cell("%%nbento model tiny2 --var other\nprint('training')", cell_id="m2")
    assert store.get("tiny2:latest").tag.name == "tiny2"
    result = shell.run_cell("%%nbento model tiny3\nx = 1", cell_id="m3")
    assert not result.success and "UsageError: cell m3 (model tiny3): nothing to save" in capsys.readouterr().err
    assert "tiny3" not in magics.state.models_saved


def test_free_names_warn_when_the_kernel_has_them(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    shell, _ = ip
    shell.run_cell("def helper(t):\n    return t")
    shell.run_cell("%%nbento api classify\ndef classify(texts: list[str]) -> list[str]:\n    return helper(texts)", cell_id="a")
    assert "uses 'helper', which no captured cell defines" in capsys.readouterr().err


def test_show_prints_the_module(ip: Any, capsys: pytest.CaptureFixture[str]) -> None:
    shell, _ = ip
    shell.run_cell(API.replace("clean(texts)", "texts"), cell_id="a")
    capsys.readouterr()
    shell.run_cell("%nbento show")
    assert "_nbento_api(classify, name='classify')" in capsys.readouterr().out


def test_build_and_export_k8s_from_the_notebook(ip: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shell, _ = ip
    shell.run_cell("%nbento export k8s")
    assert "build the service first with %nbento build" in capsys.readouterr().err
    shell.run_cell("from sklearn.linear_model import LogisticRegression\nm = LogisticRegression().fit([[0.0], [1.0]], [0, 1])")
    shell.run_cell("%%nbento model tiny --batchable predict\nm", cell_id="m")
    shell.run_cell("%%nbento preprocess\nfrom runtime import runner\nclf = runner('tiny:latest')", cell_id="p")
    shell.run_cell("%%nbento api answer\ndef answer(values: list[float]) -> list[int]:\n    return [int(x) for x in clf.predict([[v] for v in values])]", cell_id="a")
    shell.run_cell("%nbento build")
    assert "built Bento notebook:" in capsys.readouterr().out
    shell.run_cell(f"%nbento export k8s --out {tmp_path / 'k8s'}")
    assert "kustomization.yaml" in capsys.readouterr().out
    assert (tmp_path / "k8s" / "kustomization.yaml").is_file()


def test_name_sets_the_service_and_notebook(ip: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shell, magics = ip
    nb_dir = tmp_path / "nbs"
    nb_dir.mkdir()
    nbformat.write(new_notebook(cells=[]), str(nb_dir / "Other Name.ipynb"))
    shell.run_cell(f"%nbento name tickets_v2 --notebook '{nb_dir / 'Other Name.ipynb'}'")
    assert f"files go to {nb_dir / '.nbento' / 'tickets_v2'}" in capsys.readouterr().out
    shell.run_cell(API.replace("clean(texts)", "texts"), cell_id="a")
    assert (nb_dir / ".nbento" / "tickets_v2" / "service.py").is_file()
    shell.run_cell("%nbento name Bad/Name")
    assert "invalid service name" in capsys.readouterr().err
    shell.run_cell("%nbento name ok --notebook /no/such.ipynb")
    assert "no such notebook" in capsys.readouterr().err
    assert magics.state.service_name == "tickets_v2"  # unchanged by the failed command


def test_call_takes_the_json_as_the_rest_of_the_line() -> None:
    from jupyter_ext.kernel.command_args import CommandArgsError
    from jupyter_ext.kernel.command_args import split_command as _split_command

    body = '{"texts": ["it\'s broken"]}'
    assert _split_command(f"call classify '{body}'") == ["call", "classify", body]
    assert _split_command(f"call classify {body}") == ["call", "classify", body]
    assert _split_command("serve --port 3001") == ["serve", "--port", "3001"]
    with pytest.raises(CommandArgsError, match="No closing quotation"):
        _split_command("stop 'x")
