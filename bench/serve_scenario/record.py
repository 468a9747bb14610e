"""What serve_bench.py --record writes into bench/RESULTS.md "## Serving": the machine, the
versions, the load, both tables, the verdicts, and how to read them."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from report import BURNER_SECTION, SECTION, Row, table, target_verdict, write_section

ROOT = Path(__file__).resolve().parents[2]


def git_sha() -> str:
    def run(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True,
                              timeout=30, check=False).stdout.strip()

    sha = run("rev-parse", "--short", "HEAD") or "unknown"
    return sha + ("+dirty" if run("status", "--porcelain", "--untracked-files=no") else "")


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import psutil

    ram = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} cores ({model}), {ram:.0f} GiB RAM, {platform.system()} {platform.release()}"


def versions(peer_pythons: dict[str, Path]) -> str:
    def v(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    parts = [f"python {platform.python_version()}", f"torch {v('torch')}", f"numpy {v('numpy')}",
             f"sentence-transformers {v('sentence-transformers')}", f"scikit-learn {v('scikit-learn')}",
             f"fastapi {v('fastapi')}", f"uvicorn {v('uvicorn')}", f"nbento {git_sha()}"]
    for name, python in peer_pythons.items():
        done = subprocess.run([str(python), "-c", f"import {name}; print({name}.__version__)"],
                              capture_output=True, text=True, timeout=120, check=False)
        parts.append(f"{name} {done.stdout.strip() or 'unavailable'}")
    wrk = subprocess.run(["/usr/bin/wrk", "--version"], capture_output=True, text=True, timeout=10,
                         check=False)
    parts.append((wrk.stdout or wrk.stderr).split(" [")[0].strip() or "wrk")
    return ", ".join(parts)


METHOD = """\
How to read it: one short text per request, wrk `-t1 -c{conn}` with a Lua script that varies the
text, {dur:.0f} s measured after {warm:.0f} s of warm-up per row, wrk request timeout 10 s.
OK req/s = (responses - non-2xx) / duration. Latency percentiles are wrk's and cover every
response, non-2xx included. "vs LitServe" divides by LitServe's best row of the same scenario
in this run; "vs limit" by the limit: two processes with one torch thread each calling
embed+classify directly at batch 32, started together (mean of its runs before and after the
servers). The one-process, two-torch-thread ceiling is information. Light scenario: "vs
FastAPI" divides by plain FastAPI (per-request calls) of this run. Mean batch = rows per
dispatched batch of the embedder over the measured window. Server CPU cores = CPU seconds of
the server's process tree / wall time; CPU ms per OK = those seconds per OK request (in-process
rows: per item); other CPU cores = everything else on the machine meanwhile (other people's
work and the burner, minus wrk): the noise indicator. Peak RSS / PSS = the server tree's summed
RSS / PSS, sampled every 0.5 s from start to stop (RSS counts pages shared between processes,
such as torch's libraries, once per process; PSS splits them). Start s = process start to the first 200 answer.
load1 = 1-minute load average at the start of each measured run. Peers run as shipped,
unpatched."""


def record(path: Path, sections: list[tuple[str, list[Row], dict[str, float | None]]],
           verdicts: str, args: argparse.Namespace, peer_pythons: dict[str, Path],
           load_before: tuple[float, float, float], started: dt.datetime) -> None:
    load_after = os.getloadavg()
    rows = [r for _, section_rows, _ in sections for r in section_rows]
    # The load average counts this benchmark's own processes, so "quiet" is judged by the CPU
    # everything else used during the server rows (the burner included, on purpose).
    others = [r.other_cores for r in rows if r.other_cores is not None]
    worst = max(others, default=0.0)
    quiet = load_before[0] < 1.0 and worst < 0.15
    load_note = (
        f"load average {load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f} before and "
        f"{load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f} after the run; other work "
        f"used at most {worst:.2f} cores during a server row"
        + (" — quiet enough to compare" if quiet else
           " — **the machine was shared or burned: compare rows of this run only**")
    )
    command = ("python bench/serve_bench.py" + (" --peers" if args.peers else "")
               + (" --burner" if args.burner else "") + " --record")
    if args.duration != 20:
        command += f" --duration {args.duration:g}"
    parts = [
        f"Recorded {started:%Y-%m-%d %H:%M} UTC by `bench/serve_bench.py`; rerun with `{command}` "
        "(on a quiet machine; `.venv` active, `/usr/bin/wrk` installed).",
        f"- machine: {machine()}\n- load: {load_note}\n- versions: {versions(peer_pythons)}"
        + ("\n- burner: a busy-loop process took about one core during the whole run"
           if args.burner else "")
        + (f"\n- note: {args.note}" if args.note else ""),
    ]
    for title, section_rows, refs in sections:
        parts += [f"### {title}", table(section_rows, refs)]
    parts += [verdicts, METHOD.format(conn=args.connections, dur=args.duration, warm=args.warmup)]
    write_section(path, "\n\n".join(parts), BURNER_SECTION if args.burner else SECTION)


__all__ = ["record", "target_verdict"]
