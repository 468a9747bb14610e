"""Fidelity for models a captured cell loads from the store itself (`load("scale:latest")`,
`get("offset:latest").load()`) next to a runner: a real kernel runs the notebook and builds it
with `%nbento build`; then a newer `scale` is saved, and the Bento served alone and split into
its runner and API server (each with a store that has never seen these models) must answer as
the kernel did. `nbento build` of the notebook after the newer save must refuse: the kernel's
recorded answers no longer match what `latest` now means."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import nbformat
import numpy as np
import pytest
import yaml

from runtime.store.model_store import ModelStore
from tests.conftest import require_module
from tests.jupyter_ext.kernel_session import KernelSession
from tests.runtime.serving_support import REPO, start_server, stop_all

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

CELLS = [
    "%load_ext nbento",
    "import numpy as np\nfrom sklearn.linear_model import LinearRegression\n"
    "from nbento import save_model\n"
    "save_model('scale', np.array([2.0]))\nsave_model('offset', np.array([0.5]))\n"
    "reg = LinearRegression().fit([[0.0], [1.0], [2.0]], [1.0, 3.0, 5.0])",
    "%%nbento model reg --batchable predict\nreg",
    "%%nbento preprocess\nimport numpy as np\nimport nbento\nfrom nbento import load as load_model, runner\n"
    "scale = load_model('scale:latest')\noffset = nbento.get('offset:latest').load()\n"
    "reg = runner('reg:latest')",
    "%%nbento api predict\ndef predict(x: list[float]) -> list[float]:\n"
    "    rows = np.asarray(x, dtype=float).reshape(-1, 1)\n"
    "    return (reg.predict(rows) * scale + offset).round(6).tolist()\n"
    "predict([1.0, 2.5])",
    "%nbento build",
]
REQUEST = {"x": [1.0, 2.5]}


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "NBENTO_HOME": str(home)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


def test_a_bento_answers_with_the_versions_the_kernel_loaded(
    tmp_path: Path, nbento_home: Path
) -> None:
    require_module("sklearn")
    notebook = tmp_path / "nb" / "direct_loads.ipynb"
    notebook.parent.mkdir()
    nbformat.write(
        nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS]),
        str(notebook),
    )
    session = KernelSession(notebook)
    try:
        outputs = session.run_all()
    finally:
        session.close()
    assert "built Bento direct_loads:" in outputs[-1], "\n---\n".join(outputs)
    kernel_answer = ast.literal_eval(outputs[-2].strip())
    assert kernel_answer == [6.5, 12.5]
    (bento,) = (nbento_home / "bentos" / "direct_loads").iterdir()

    store = ModelStore(nbento_home / "models")
    pinned = {str(store.resolve(f"{name}:latest")) for name in ("scale", "offset", "reg")}
    assert {m["tag"] for m in yaml.safe_load((bento / "bento.yaml").read_text())["models"]} == pinned
    store.save_model("scale", np.array([100.0]))  # the notebook/service drift, after the build

    fresh = tmp_path / "fresh-home"  # a store that has none of these models
    fresh.mkdir()
    env = {"NBENTO_HOME": str(fresh), "NBENTO_TRUSTED_STORE": str(bento / "models")}
    servers = [start_server(bento, env=env, timeout=120)]
    try:
        answer = httpx.post(f"{servers[0].url}/predict", json=REQUEST, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json() == kernel_answer, "the Bento alone"
        # The split layout: the runner's process and the API server both import the service
        # (and so load `scale` and `offset`) from the Bento's own store.
        servers.append(start_server(bento, "--runner", "reg", env=env, timeout=120))
        runner_map = json.dumps({"reg": servers[-1].url})
        servers.append(start_server(bento, "--runner-map", runner_map, env=env, timeout=120))
        answer = httpx.post(f"{servers[-1].url}/predict", json=REQUEST, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.json() == kernel_answer, "the split layout"
    finally:
        stop_all(servers)

    # What the image copies (Dockerfile: COPY models/) holds the pinned versions only.
    shipped = {f"{p.parent.name}:{p.name}" for p in (bento / "models").glob("*/*")}
    assert shipped == pinned

    build = subprocess.run(
        [sys.executable, "-m", "runtime", "build", str(notebook)],
        capture_output=True, text=True, timeout=300, env=_env(nbento_home),
    )
    assert build.returncode == 1, build.stdout + build.stderr
    assert "answers differently from the notebook" in build.stderr, build.stderr
