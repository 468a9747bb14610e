"""Hot reload from a notebook cell: time from executing an edited `%%nbento api` cell to the
new code answering HTTP requests, with the MiniLM example served (models stay loaded).

Runs examples/support_tickets_minilm.ipynb (a copy in bench/.work/reload) in a real kernel up to
`%nbento serve`, then edits the API cell N times. Each edit adds a `"rev": i` field to the answer;
the clock starts when the cell is sent to the kernel and stops at the first HTTP answer that
carries the new field, sent when the cell finished (re-sent every 5 ms until it does; the magic
waits for the server to confirm the new code, so the first request normally has it). Also measured: the time the magic itself
reports ("live in N ms"), the runners' model load times, and a cold `%nbento serve` (what a
restart-everything reload costs).

    .venv/bin/python bench/reload_bench.py [--edits 10] [--notebook PATH]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import nbformat
from jupyter_core.utils import run_sync
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def text_of(cell: Any) -> str:
    out = []
    for o in cell.get("outputs", []):
        out.append(o.get("text") or o.get("data", {}).get("text/plain", "") or o.get("evalue", ""))
    return "".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edits", type=int, default=10)
    parser.add_argument("--notebook", default=str(ROOT / "examples" / "support_tickets_minilm.ipynb"))
    args = parser.parse_args()

    work = ROOT / "bench" / ".work" / "reload"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(Path(args.notebook).parent, work, ignore=shutil.ignore_patterns(".nbento", "*.ipynb"))
    notebook = work / Path(args.notebook).name
    shutil.copy(args.notebook, notebook)
    home = tempfile.mkdtemp(prefix="nbento-reload-bench-")
    env = dict(os.environ, NBENTO_HOME=home, JPY_SESSION_NAME=str(notebook))

    nb = nbformat.read(str(notebook), as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=600, allow_errors=True,
                            resources={"metadata": {"path": str(work)}})
    client.km = client.create_kernel_manager()
    client.start_new_kernel(env=env)
    client.start_new_kernel_client()
    http = httpx.Client(timeout=30, trust_env=False)
    try:
        serve_at = next(i for i, c in enumerate(nb.cells) if c.source.startswith("%nbento serve"))
        api_at = next(i for i, c in enumerate(nb.cells) if c.source.startswith("%%nbento api"))
        for index in range(serve_at):
            if nb.cells[index].cell_type == "code":
                client.execute_cell(nb.cells[index], index)
        started = time.perf_counter()
        client.execute_cell(nb.cells[serve_at], serve_at)
        cold_serve_s = time.perf_counter() - started
        serve_out = text_of(nb.cells[serve_at])
        match = re.search(r"at (http://127\.0\.0\.1:\d+)", serve_out)
        assert match, serve_out
        url = match.group(1)
        status = http.get(f"{url}/_nbento/status").json()
        loads = {name: r.get("load_seconds") for name, r in status["runners"].items()}
        payload = {"texts": ["I was charged twice for my subscription"]}
        http.post(f"{url}/classify", json=payload)  # warm up

        original = nb.cells[api_at].source
        definition_only = original.split("\n\n\nclassify(")[0]
        results: dict[str, tuple[list[float], list[float], list[float]]] = {}
        rev = 0
        for variant, base in (("API cell, definition only", definition_only),
                              ("API cell with its sample call (runs MiniLM in the kernel)", original)):
            live_ms: list[float] = []
            reported_ms: list[float] = []
            sent_ms: list[float] = []
            for _ in range(args.edits):
                rev += 1
                nb.cells[api_at].source = base.replace(
                    'return {"labels": labels,', f'return {{"rev": {rev}, "labels": labels,'
                )
                assert "rev" in nb.cells[api_at].source
                nbformat.write(nb, str(notebook))  # saved, as a front end does before running
                t0 = time.perf_counter()
                client.execute_cell(nb.cells[api_at], api_at)
                t_seen: list[float] = []
                deadline = time.perf_counter() + 30
                while time.perf_counter() < deadline:  # usually the first request has it
                    t_sent = time.perf_counter()
                    if http.post(f"{url}/classify", json=payload).json().get("rev") == rev:
                        t_seen.append(time.perf_counter())
                        sent_ms.append((t_sent - t0) * 1000)
                        break
                    time.sleep(0.005)
                out = text_of(nb.cells[api_at])
                if not t_seen:
                    raise SystemExit(f"edit {rev}: new code never answered; cell said: {out}")
                live_ms.append((t_seen[0] - t0) * 1000)
                if os.environ.get("NBENTO_TIMING") == "1":
                    print(f"edit {rev}: {out.strip()}")
                found = re.search(r"live in (\d+) ms", out)
                if found:
                    reported_ms.append(float(found.group(1)))
            results[variant] = (sent_ms, live_ms, reported_ms)
        request_ms = []
        for _ in range(args.edits):  # what one request costs by itself, for comparison
            t = time.perf_counter()
            http.post(f"{url}/classify", json=payload)
            request_ms.append((time.perf_counter() - t) * 1000)

        print(f"service: {notebook.name} ({', '.join(loads)})")
        print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        print(f"{'measure (ms unless noted)':<60} {'median':>8} {'min':>8} {'max':>8}")

        def row(label: str, values: list[float]) -> None:
            if values:
                print(f"{label:<60} {statistics.median(values):>8.0f} {min(values):>8.0f} "
                      f"{max(values):>8.0f}")

        for variant, (sent, live, reported) in results.items():
            print(variant)
            row("  cell run -> request sent that gets the new answer", sent)
            row("  cell run -> new answer received", live)
            row("  the magic's own 'live in N ms'", reported)
        row("one POST /classify by itself (no reload)", request_ms)
        for name, seconds in loads.items():
            print(f"{'model load at server start: ' + name + ', s':<60} "
                  f"{seconds if seconds is not None else float('nan'):>8.2f}")
        print(f"{'cold %nbento serve (start + load all models), s':<60} {cold_serve_s:>8.2f}")
        nb.cells[api_at].source = original
        client.execute_cell(nb.cells[serve_at + 3], serve_at + 3) if serve_at + 3 < len(nb.cells) else None
    finally:
        http.close()
        with_kc = client.kc
        if with_kc is not None:
            with_kc.stop_channels()
        shutdown: Any = client.km.shutdown_kernel  # async on nbclient's manager
        run_sync(shutdown)(now=True)
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
