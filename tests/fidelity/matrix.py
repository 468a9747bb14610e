"""The fidelity matrix's moving parts, shared by tests/fidelity/test_fidelity.py and the container
end-to-end test: one notebook of cases, the kernel's answers to their requests, and the check
that a served layout gives the same answers, batched."""

from __future__ import annotations

import importlib.util
import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from tests.fidelity.cases import Case
from tests.jupyter_ext.kernel_session import KernelSession
from tests.runtime.serving_support import metric_value

ANSWERS_CELL = """\
import json
import traceback
from pathlib import Path
_answers = {}
for _case, _spec in json.loads(Path("inputs.json").read_text()).items():
    def _call(payload, _expr=_spec["call"]):
        return eval(_expr, globals(), {"payload": payload})
    try:
        _answers[_case] = {"many": _call(_spec["many"]), "single": [_call(p) for p in _spec["single"]]}
    except Exception:
        _answers[_case] = {"error": traceback.format_exc()}
Path("kernel_answers.json").write_text(json.dumps(_answers))
print("kernel answers written")
"""


def available(case: Case) -> bool:
    return all(importlib.util.find_spec(module) is not None for module in case.needs)


def inputs(case: Case) -> dict[str, Any]:
    return {"many": case.payload(case.rows), "single": [case.payload([r]) for r in case.rows]}


def write_notebook(folder: Path, cases: list[Case]) -> Path:
    """One notebook: every case's training, model, preprocess and API cells, then the answers."""
    folder.mkdir(parents=True, exist_ok=True)
    specs = {c.name: {**inputs(c), "call": c.kernel_call.format(api=c.api)} for c in cases}
    (folder / "inputs.json").write_text(json.dumps(specs))
    cells = ["%load_ext nbento"]  # as a user writes it
    for case in cases:
        cells += [case.train, case.model, case.preprocess, case.api_cell]
    cells.append(ANSWERS_CELL)
    notebook = folder / "fidelity.ipynb"
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


@dataclass
class Layout:
    name: str
    api_url: str
    metrics: dict[str, str]  # runner -> the /metrics URL that shows its batches


def batch_histogram(metrics_url: str, runner: str) -> tuple[float, float]:
    """(batches, batches of exactly one row) the runner dispatched so far, all methods."""
    text = httpx.get(metrics_url, timeout=10, trust_env=False).text
    labels = {"runner": runner}
    total = metric_value(text, "nbento_runner_batch_size_count", labels)
    ones = metric_value(text, "nbento_runner_batch_size_bucket", {**labels, "le": "1.0"})
    return total, ones


def check_layout(case: Case, expected: dict[str, Any], layout: Layout) -> None:
    sent = inputs(case)
    url, metrics_url = f"{layout.api_url}/{case.api}", layout.metrics[case.runner]
    with httpx.Client(timeout=120, trust_env=False) as client:
        response = client.post(url, json=sent["many"])
        assert response.status_code == 200, response.text
        problems = differences(expected["many"], response.json(), case.tolerance, "many")
        assert not problems, problems[:5]
        before = batch_histogram(metrics_url, case.runner)
        with ThreadPoolExecutor(max_workers=len(sent["single"])) as pool:  # all at once
            responses = list(pool.map(lambda p: client.post(url, json=p), sent["single"]))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses][:3]
    problems = differences(expected["single"], [r.json() for r in responses], case.tolerance)
    assert not problems, problems[:5]
    after = batch_histogram(metrics_url, case.runner)
    batches, single_row = after[0] - before[0], after[1] - before[1]
    calls = len(sent["single"]) * case.batchable_calls
    assert batches < calls and batches - single_row > 0, (
        f"{calls} single-row calls ran as {batches} batches, {single_row} of one row"
    )
