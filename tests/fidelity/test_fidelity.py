"""Fidelity: what an API answers in the notebook kernel, it answers from the server, in every
layout. One notebook holds every framework of cases.py (each trains and saves its model and
captures its preprocess and API cells); a real kernel (nbclient) runs it and a last, uncaptured
cell calls each API in the kernel. Then `nbento serve` serves that notebook with the runners in
worker threads, in worker processes (the wire), and split into one runner process each
(`--runner` + `--runner-map`, the wire over HTTP), and `nbento serve BENTO` serves the Bento
`nbento build` makes of it. For each layout and case, one request of 60 rows and 60 concurrent
single-row requests must get the kernel's answers, and the single rows must really have been
batched together.

The servers are shared: one kernel run, one server per layout (the split layout: one process
per runner and the API server), one build. A case is still its own test: it has its own
runner, API and metrics, and its checks run alone against the shared server.

Tolerance: the torch models compute in float32 and the pipeline's logistic regression in
float64 with BLAS; a matrix product's blocking, and so its summation order, depends on how
many rows are in the batch, so a row computed in a batch of 17 may differ from the same row
computed alone in the last bits (about 1e-7 for float32 values of order 1). Answers are
compared exactly except floats, which must agree to 1e-6; labels and shapes exactly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require
from tests.fidelity.cases import CASES, Case
from tests.fidelity.matrix import Layout, available, check_layout, kernel_answers, write_notebook
from tests.runtime.serving_support import REPO, ServerProcess, start_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

START_TIMEOUT = 300  # a server imports every framework of the matrix; the machine is shared


@dataclass
class Matrix:
    notebook: Path
    home: Path  # the NBENTO_HOME the kernel saved the models into
    cases: list[Case]
    expected: dict[str, Any]  # case name -> the kernel's answers (or the error it raised)


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Matrix]:
    cases = [c for c in CASES if available(c)]
    require(cases, "no framework of the fidelity matrix is installed")
    folder = tmp_path_factory.mktemp("fidelity")
    home = folder / "nbento-home"
    home.mkdir()
    with pytest.MonkeyPatch.context() as patch:  # the kernel saves into this store
        patch.setenv("NBENTO_HOME", str(home))
        notebook = write_notebook(folder / "nb", cases)
        expected = kernel_answers(notebook)
    yield Matrix(notebook, home, cases, expected)


def _stop(*servers: ServerProcess) -> None:
    for server in servers:
        server.stop()


def _start_all(matrix: Matrix, argvs: list[tuple[str, ...]]) -> list[ServerProcess]:
    """Start several servers at once (each waits for its /readyz); stop them all on a failure."""
    env = {"NBENTO_HOME": str(matrix.home)}
    with ThreadPoolExecutor(max_workers=len(argvs)) as pool:
        futures = [
            pool.submit(start_server, matrix.notebook, *argv, env=env, timeout=START_TIMEOUT)
            for argv in argvs
        ]
    started = [f.result() for f in futures if f.exception() is None]
    failed = [f.exception() for f in futures if f.exception() is not None]
    if failed:
        _stop(*started)
        raise failed[0]  # type: ignore[misc]
    return started


def _one_worker(matrix: Matrix, *extra: str) -> list[str]:
    """One worker per runner, so rows queue while it computes and batches form."""
    argv = []
    for case in matrix.cases:
        argv += ["--set", f"runners.{case.runner}.workers=1"]
        for setting in extra:
            argv += ["--set", f"runners.{case.runner}.{setting}"]
    return argv


@pytest.fixture(scope="module", params=["thread", "process", "split", "bento"])
def layout(request: pytest.FixtureRequest, matrix: Matrix) -> Iterator[Layout]:
    name = str(request.param)
    runners = [c.runner for c in matrix.cases]
    if name in ("thread", "process"):
        (server,) = _start_all(matrix, [tuple(_one_worker(matrix, f"isolation={name}"))])
        try:
            yield Layout(name, server.url, dict.fromkeys(runners, f"{server.url}/metrics"))
        finally:
            _stop(server)
    elif name == "split":
        one_worker = _one_worker(matrix)
        remote = _start_all(matrix, [("--runner", r, *one_worker) for r in runners])
        try:
            runner_map = json.dumps({r: s.url for r, s in zip(runners, remote, strict=True)})
            (api,) = _start_all(matrix, [("--runner-map", runner_map)])
            try:
                yield Layout(
                    name, api.url,
                    {r: f"{s.url}/metrics" for r, s in zip(runners, remote, strict=True)},
                )
            finally:
                _stop(api)
        finally:
            _stop(*remote)
    else:
        yield from _bento_layout(matrix)


def _bento_layout(matrix: Matrix) -> Iterator[Layout]:
    bento = matrix.notebook.parent.parent / "bento"
    env = {**os.environ, "NBENTO_HOME": str(matrix.home)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    build = subprocess.run(
        [sys.executable, "-m", "runtime", "build", str(matrix.notebook), "--output", str(bento)],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    # As the image runs it: the Bento's own models/ is the store, trusted as the image trusts it
    # (its Dockerfile sets NBENTO_TRUSTED_STORE; docs/export.md, docs/security.md).
    server = start_server(
        bento / "src", *_one_worker(matrix),
        env={"NBENTO_HOME": str(bento), "NBENTO_TRUSTED_STORE": str(bento / "models")},
        timeout=START_TIMEOUT,
    )
    try:
        yield Layout("bento", server.url, {c.runner: f"{server.url}/metrics" for c in matrix.cases})
    finally:
        _stop(server)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_server_answers_like_the_kernel(case: Case, layout: Layout, matrix: Matrix) -> None:
    require(case in matrix.cases, f"{case.name} needs {', '.join(case.needs)}")
    expected = matrix.expected[case.name]
    assert "error" not in expected, f"the kernel could not answer:\n{expected.get('error')}"
    assert len(expected["single"]) == len(case.rows)
    try:
        check_layout(case, expected, layout)
    except AssertionError as exc:
        raise AssertionError(f"layout {layout.name}: {exc}") from exc
