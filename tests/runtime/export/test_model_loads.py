"""Models the service code loads from the store itself (`load("NAME:latest")`, not a
`runner(...)`): `nbento build` pins them into the Bento, and refuses a tag it cannot know."""

from __future__ import annotations

from pathlib import Path

import nbformat
import numpy as np
import pytest
import yaml

from runtime.errors import BuildError, ModelNotFound
from runtime.export.bento import build_bento
from runtime.export.model_loads import find_model_loads
from runtime.store.model_store import ModelStore


def test_every_spelling_of_a_store_read_is_found() -> None:
    text = (
        "import nbento as nb\n"
        "import runtime.store\n"
        "from nbento import load as load_model, get\n"
        "TAG = 'a:latest'\n"
        "x = nb.load('b:latest')\n"
        "y = load_model(TAG)\n"
        "z = get('c:v1').load()\n"
        "w = runtime.store.load(tag='d')\n"
        "def f(t):\n"
        "    return nb.load(t)\n"
        "other.load('not nbento')\n"
        "v = load_model(f'e:{TAG}')\n"
    )
    found = [(load.tag, load.line) for load in find_model_loads(text)]
    assert found == [
        ("b:latest", 5), ("a:latest", 6), ("c:v1", 7), ("d", 8), (None, 10), (None, 12),
    ]


def test_a_name_bound_twice_is_not_a_literal_tag() -> None:
    text = "from nbento import load\nTAG = 'a:latest'\nTAG = TAG.upper()\nm = load(TAG)\n"
    assert [load.tag for load in find_model_loads(text)] == [None]


def _service(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "service.py").write_text(
        "import numpy as np\nimport nbento\nfrom nbento import api\n\n" + body
        + "\n\n@api\ndef scaled(x: list[float]) -> list[float]:\n"
        "    return (np.asarray(x) * scale).tolist()\n"
    )
    return folder


def test_a_literal_tag_is_pinned_and_shipped(tmp_path: Path, nbento_home: Path) -> None:
    store = ModelStore(nbento_home / "models")
    first = store.save_model("scale", np.array([2.0, 3.0]))
    src = _service(tmp_path / "svc", "scale = nbento.load('scale:latest')")
    lines: list[str] = []
    bento = build_bento(src, progress=lines.append)
    store.save_model("scale", np.array([10.0, 10.0]))  # newer than the build: must not matter

    assert [m.tag for m in bento.info.models] == [str(first.tag)]
    shipped = ModelStore(bento.path / "models").list_models("scale")
    assert [str(m.tag) for m in shipped] == [str(first.tag)]  # `latest` there is the pinned one
    assert any(f"pinned scale:latest -> {first.tag}, loaded by service.py line 5" in line
               for line in lines), lines
    listed = yaml.safe_load((bento.path / "bento.yaml").read_text())["models"]
    assert [m["tag"] for m in listed] == [str(first.tag)]


def test_a_tag_known_only_at_run_time_is_refused(
    tmp_path: Path, nbento_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ModelStore(nbento_home / "models").save_model("scale", np.array([2.0, 3.0]))
    monkeypatch.setenv("TAG", "scale:latest")  # the build imports the service: it loads here
    src = _service(tmp_path / "svc", "import os\nscale = nbento.load(os.environ['TAG'])")
    with pytest.raises(BuildError) as err:
        build_bento(src)
    message = str(err.value)
    assert "service.py line 6: nbento.load(os.environ['TAG'])" in message
    assert 'runner("NAME:latest")' in message
    assert not list((nbento_home / "bentos").glob("*/*"))  # nothing half-built left


def test_a_missing_model_names_the_line_that_loads_it(tmp_path: Path, nbento_home: Path) -> None:
    src = _service(
        tmp_path / "svc",
        "scale = 2.0\ndef lazy():\n    return nbento.load('absent:latest')",
    )
    with pytest.raises(ModelNotFound) as err:
        build_bento(src)
    assert "service.py line 7 loads it: nbento.load('absent:latest')" in str(err.value)


def test_the_refusal_names_the_notebook_cell(tmp_path: Path, nbento_home: Path) -> None:
    ModelStore(nbento_home / "models").save_model("scale", np.array([2.0, 3.0]))
    cells = [
        "%load_ext nbento",
        "%%nbento preprocess\nimport numpy as np\nimport nbento\n"
        "def scale_of(version):\n    return nbento.load(f'scale:{version}')\nscale = 2.0",
        "%%nbento api scaled\ndef scaled(x: list[float]) -> list[float]:\n"
        "    return (np.asarray(x) * scale).tolist()",
    ]
    notebook = tmp_path / "nb" / "scaled.ipynb"
    notebook.parent.mkdir()
    nbformat.write(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells]),
        str(notebook),
    )
    with pytest.raises(BuildError) as err:
        build_bento(notebook)
    assert "notebook cell 2 (preprocess) line 5: nbento.load(f'scale:{version}')" in str(err.value)
