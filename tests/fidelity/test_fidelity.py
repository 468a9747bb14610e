"""Fidelity: what an API answers in the notebook kernel, it answers from the server, in every
layout. For each framework in cases.py a real kernel (nbclient) runs the notebook (train, save
the model, capture the service, call the API in the kernel); then `nbento serve` serves the
same notebook with the runner in worker threads, in worker processes (the wire), and split
into its own runner process (`--runner` + `--runner-map`, the wire over HTTP), and from the
Bento `nbento build` makes of the notebook (`nbento serve BENTO`). One request of
60 rows and 60 concurrent single-row requests must get the kernel's answers, and the single
rows must really have been batched together.

Tolerance: the torch models compute in float32 and the pipeline's logistic regression in
float64 with BLAS; a matrix product's blocking, and so its summation order, depends on how
many rows are in the batch, so a row computed in a batch of 17 may differ from the same row
computed alone in the last bits (about 1e-7 for float32 values of order 1). Answers are
compared exactly except floats, which must agree to 1e-6; labels and shapes exactly.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from tests.fidelity.cases import CASES, Case
from tests.jupyter_ext.kernel_session import KernelSession
from tests.runtime.serving_support import REPO, ServerProcess, metric_value, start_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ANSWERS_CELL = """\
import json
from pathlib import Path
_inputs = json.loads(Path("inputs.json").read_text())
_answers = {{"many": {api}(**_inputs["many"]), "single": [{api}(**p) for p in _inputs["single"]]}}
Path("kernel_answers.json").write_text(json.dumps(_answers))
print("kernel answers written")
"""


def write_notebook(folder: Path, case: Case) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    inputs = {"many": case.payload(case.rows), "single": [case.payload([r]) for r in case.rows]}
    (folder / "inputs.json").write_text(json.dumps(inputs))
    cells = ["%load_ext jupyter_ext", case.train, case.model, case.preprocess, case.api_cell,
             ANSWERS_CELL.format(api=case.api)]
    notebook = folder / f"fidelity_{case.name}.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell(c) for c in cells]), str(notebook))
    return notebook


def kernel_answers(notebook: Path) -> dict[str, Any]:
    session = KernelSession(notebook, session_env=True)
    try:
        outputs = session.run_all()
    finally:
        session.close()
    assert "kernel answers written" in outputs[-1], "\n---\n".join(outputs)
    return dict(json.loads((notebook.parent / "kernel_answers.json").read_text()))


def differences(expected: Any, got: Any, tolerance: float, where: str = "") -> list[str]:
    """Where `got` differs from `expected` (floats within `tolerance`, the rest exactly)."""
    if isinstance(expected, float) and isinstance(got, (int, float)):
        ok = math.isclose(expected, got, rel_tol=0, abs_tol=tolerance)
        return [] if ok else [f"{where}: {got!r} != {expected!r}"]
    if isinstance(expected, list) and isinstance(got, list) and len(expected) == len(got):
        found = []
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            found += differences(e, g, tolerance, f"{where}[{i}]")
        return found
    if isinstance(expected, dict) and isinstance(got, dict) and expected.keys() == got.keys():
        found = []
        for key in expected:
            found += differences(expected[key], got[key], tolerance, f"{where}.{key}")
        return found
    return [] if expected == got else [f"{where}: {got!r} != {expected!r}"]


def batch_histogram(metrics_url: str, runner: str) -> tuple[float, float]:
    """(batches, batches of exactly one row) the runner dispatched so far, all methods."""
    text = httpx.get(metrics_url, timeout=10, trust_env=False).text
    labels = {"runner": runner}
    total = metric_value(text, "nbento_runner_batch_size_count", labels)
    ones = metric_value(text, "nbento_runner_batch_size_bucket", {**labels, "le": "1.0"})
    return total, ones


def check_layout(case: Case, expected: dict[str, Any], api_url: str, metrics_url: str) -> None:
    inputs = {"many": case.payload(case.rows), "single": [case.payload([r]) for r in case.rows]}
    with httpx.Client(timeout=120, trust_env=False) as client:
        response = client.post(f"{api_url}/{case.api}", json=inputs["many"])
        assert response.status_code == 200, response.text
        problems = differences(expected["many"], response.json(), case.tolerance, "many")
        assert not problems, problems[:5]
        before = batch_histogram(metrics_url, case.runner)

        def one(payload: dict[str, Any]) -> httpx.Response:
            return client.post(f"{api_url}/{case.api}", json=payload)

        with ThreadPoolExecutor(max_workers=30) as pool:
            responses = list(pool.map(one, inputs["single"]))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses][:3]
    problems = differences(expected["single"], [r.json() for r in responses], case.tolerance)
    assert not problems, problems[:5]
    after = batch_histogram(metrics_url, case.runner)
    batches, single_row = after[0] - before[0], after[1] - before[1]
    calls = len(inputs["single"]) * (2 if case.name == "dataframe_pipeline" else 1)
    assert batches < calls and batches - single_row > 0, (
        f"{calls} single-row calls ran as {batches} batches, {single_row} of one row"
    )


def _serve(*servers: ServerProcess) -> None:
    for server in servers:
        server.stop()


def layouts(notebook: Path, case: Case) -> Iterator[tuple[str, str, str]]:
    """(layout, API URL, URL of the /metrics that shows the runner's batches), one at a time."""
    one_worker = ("--set", f"runners.{case.runner}.workers=1")  # rows queue while it computes
    for isolation in ("thread", "process"):
        server = start_server(
            notebook, *one_worker, "--set", f"runners.{case.runner}.isolation={isolation}",
            timeout=180,
        )
        try:
            yield isolation, server.url, f"{server.url}/metrics"
        finally:
            _serve(server)
    runner = start_server(notebook, "--runner", case.runner, *one_worker, timeout=180)
    try:
        api = start_server(
            notebook, "--runner-map", json.dumps({case.runner: runner.url}), timeout=180
        )
        try:
            yield "split", api.url, f"{runner.url}/metrics"
        finally:
            _serve(api)
    finally:
        _serve(runner)
    bento = notebook.parent / "bento"
    build = subprocess.run(
        [sys.executable, "-m", "runtime", "build", str(notebook), "--output", str(bento)],
        capture_output=True, text=True, timeout=600, env=_child_env(),
    )
    assert build.returncode == 0, build.stdout + build.stderr
    # As the image runs it: the Bento's own models/ is the store (docs/export.md).
    server = start_server(bento / "src", *one_worker, env={"NBENTO_HOME": str(bento)}, timeout=180)
    try:
        yield "bento", server.url, f"{server.url}/metrics"
    finally:
        _serve(server)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_server_answers_like_the_kernel(case: Case, tmp_path: Path) -> None:
    for module in case.needs:
        pytest.importorskip(module)
    notebook = write_notebook(tmp_path / case.name, case)
    expected = kernel_answers(notebook)
    assert len(expected["single"]) == len(case.rows)
    served = []
    for layout, api_url, metrics_url in layouts(notebook, case):
        try:
            check_layout(case, expected, api_url, metrics_url)
        except AssertionError as exc:
            raise AssertionError(f"layout {layout}: {exc}") from exc
        served.append(layout)
    assert served == ["thread", "process", "split", "bento"]
