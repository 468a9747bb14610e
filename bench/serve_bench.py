"""Serving benchmark (issue 12): the two-stage text service (MiniLM embeddings ->
LogisticRegression), one short text per request, 80 connections of wrk; and the light scenario
(one TF-IDF + LogisticRegression pipeline, about 0.1 ms per call).

Rows: the limit (two processes x one torch thread calling embed+classify directly, batch 32),
the one-process ceiling (information), plain FastAPI + uvicorn, nbento at its defaults (no config
file) and under fixed batching settings, and with `--peers` LitServe 0.2.19 (2 workers x 1 torch
thread, fast_queue, 32 / 10 ms) and BentoML 1.4.39 (one service, 2 workers x 1 torch thread,
adaptive batching up to 16 / 32 / 100 rows; `--bentoml-settings` picks rows), each from its
own venv under bench/.work (created on first use). Light rows: nbento at its defaults, plain
FastAPI, LitServe (--peers).
Every server is a subprocess on a free 127.0.0.1 port, waited for, measured, and stopped by its
process group. `--burner` keeps a busy-loop process on about one core for the whole run.

    python bench/serve_bench.py --duration 5                 # quick check, no peers
    python bench/serve_bench.py --peers --record             # into bench/RESULTS.md
    python bench/serve_bench.py --peers --burner --record    # the second recorded run

See bench/README.md for what each column means.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SCENARIO = BENCH / "serve_scenario"
WORK_ROOT = BENCH / ".work" / "serve"
# One folder per run (logs, config files, scratch store), so two runs never share files.
WORK = WORK_ROOT / f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
sys.path.insert(0, str(SCENARIO))

from harness import (  # noqa: E402
    BenchError,
    Burner,
    PeakMemory,
    Server,
    cpu_delta,
    free_port,
    histogram_mean,
    http,
    machine_busy_seconds,
    run_wrk,
    scrape,
)
from peers import BENTOML, LITSERVE, ensure_venv  # noqa: E402
from record import machine, record  # noqa: E402
from report import Row, table, target_verdict  # noqa: E402

PROBE = {"texts": ["my package has not arrived yet"]}
CEILING = "in-process ceiling (1 process x 2 torch threads)"
LIMIT = "the limit: 2 processes x 1 torch thread, in-process"
IN_PROCESS = (CEILING, LIMIT)
LITSERVE_LAYOUT = "2 workers x 1 thread, fast_queue, 32 / 10 ms"


@dataclass(frozen=True)
class Setting:
    key: str            # "off", "5:16", ... as passed to the servers
    label: str          # as printed
    enabled: bool
    latency_ms: float = 10.0
    batch: int = 32


SETTINGS = (
    Setting("off", "off", False),
    Setting("5:16", "5 ms/16", True, 5, 16),
    Setting("10:32", "10 ms/32", True, 10, 32),
    Setting("25:32", "25 ms/32", True, 25, 32),
    # The layout decision in the same run: 10 ms/32 with the embedder in two worker threads of
    # the server process (one torch thread each) instead of the default worker processes.
    Setting("threads", "10 ms/32, embedder in threads", True, 10, 32),
)


@dataclass(frozen=True)
class BentomlRow:
    """One BentoML row: `batching` is `BENCH_BATCHING` for serve_scenario/bentoml_service.py
    (`off`, `SIZE` with BentoML's 60 s latency budget, or `default`: 100 rows / 60 s)."""

    key: str            # as chosen with --bentoml-settings
    label: str          # as printed
    batching: str
    workers: int = 2
    torch_threads: int = 1


# BentoML's max_latency_ms is a deadline (older requests are shed with 503), not nbento's wait
# window, so its rows keep the 60 s budget and vary the batch size (see bentoml_service.py).
BENTOML_ROWS = (
    BentomlRow("off", "off, 2 workers x 1 thread", "off"),
    BentomlRow("16", "adaptive, up to 16 rows, 2 workers x 1 thread", "16"),
    BentomlRow("32", "adaptive, up to 32 rows, 2 workers x 1 thread", "32"),
    BentomlRow("32-1x2", "adaptive, up to 32 rows, 1 worker x 2 threads", "32", 1, 2),
    BentomlRow("default", "defaults (100 rows / 60 s), 2 workers x 1 thread", "default"),
)
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
        if setting.key == "threads" and name == "embedder":
            lines.append("    isolation: thread")
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
        url = f"{server.base}{server.route}"
        peak: PeakMemory | None = None
        try:
            try:
                server.start()
                peak = PeakMemory(server)
                took = server.wait_ready(PROBE)
            except BenchError as exc:
                # One more start: a start-up failure is reported in the row's notes, not hidden.
                self.log(f"  {server.name} failed to start, retrying once: {str(exc)[:300]}")
                server.stop()
                row.notes.append(f"first start failed: {str(exc)[:200]}")
                server.start()
                took = server.wait_ready(PROBE)
            row.start_s = took
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
            elif metric_filter is not None:
                row.notes.extend(rows_per_worker(metrics_before, metrics_after, metric))
            if ok and server_cpu > 0 and single_process:
                row.notes.append(
                    f"main (event-loop) thread {1000 * main_cpu / ok:.2f} CPU ms per OK request, "
                    f"{100 * main_cpu / server_cpu:.0f}% of the server's CPU"
                )
            row.other_cores = max(0.0, (busy_after - busy_before - server_cpu - result.cpu_s) / wall)
        except BenchError as exc:
            row.error = str(exc)
        finally:
            if peak is not None:
                rss, pss = peak.stop()
                row.peak_rss_mib, row.peak_pss_mib = rss / 2**20, pss / 2**20
            server.stop()
        self.log(f"  -> {row}")
        return row

    def in_process(self, parallel: int, threads: int,
                   processes: bool) -> tuple[dict[str, float], dict[str, float]]:
        seconds = max(5.0, min(self.duration / 2, 15.0))
        argv = [sys.executable, str(SCENARIO / "ceiling.py"), "--seconds", str(seconds),
                "--threads", str(threads), "--parallel", str(parallel), "--batch", "32"]
        done = subprocess.run(argv + (["--processes"] if processes else []), env=base_env(),
                              cwd=SCENARIO, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            raise BenchError(f"in-process run failed: {done.stderr[-1500:]}")
        data = json.loads(done.stdout.strip().splitlines()[-1])
        return data["batches"], data["cpu_ms_per_item"]

    def fastapi(self, light: bool = False) -> Row:
        port = free_port()
        env = {**base_env(), **({"BENCH_SCENARIO": "light"} if light else {})}
        server = Server(
            "fastapi", [sys.executable, "-m", "uvicorn", "fastapi_app:app", "--host", "127.0.0.1",
                        "--port", str(port)],
            port, SCENARIO, env, WORK / "logs" / f"fastapi{'-light' if light else ''}.log",
        )
        row = Row("FastAPI + uvicorn", "off (per request)", "light" if light else "minilm")
        return self.measure_server(server, row, None)

    def nbento(self, setting: Setting, home: Path, light: bool = False) -> Row:
        port = free_port()
        nbento_bin = Path(sys.executable).with_name("nbento")
        service = "nbento_light_service.py" if light else "nbento_service.py"
        argv = [str(nbento_bin) if nbento_bin.exists() else "nbento", "serve",
                str(SCENARIO / service), "--port", str(port)]
        if setting.key != "default":  # nbento's defaults: no config file at all
            config = nbento_config(setting, WORK / f"nbento-{setting.key.replace(':', '-')}.yaml")
            argv += ["--config", str(config)]
        name = f"nbento{'-light' if light else ''}-{setting.key.replace(':', '-')}"
        server = Server(name, argv, port, SCENARIO, {**base_env(), "NBENTO_HOME": str(home)},
                        WORK / "logs" / f"{name}.log")
        row = Row("nbento", setting.label, "light" if light else "minilm")
        return self.measure_server(server, row, 'runner="light"' if light else 'runner="embedder"')

    def bentoml(self, setting: BentomlRow, python: Path) -> Row:
        port = free_port()
        env = {**base_env(), "BENCH_BATCHING": setting.batching, "BENTOML_DO_NOT_TRACK": "True",
               "BENCH_WORKERS": str(setting.workers), "BENCH_TORCH_THREADS": str(setting.torch_threads),
               "BENTOML_HOME": str(BENCH / ".work" / "bentoml-home")}
        env.pop("VIRTUAL_ENV", None)
        env["PATH"] = f"{python.parent}:{env.get('PATH', '')}"
        argv = [str(python.parent / "bentoml"), "serve", "bentoml_service:Classify",
                "--host", "127.0.0.1", "--port", str(port)]
        server = Server(f"bentoml {setting.key}", argv, port, SCENARIO, env,
                        WORK / "logs" / f"bentoml-{setting.key}.log")
        row = Row(f"BentoML {BENTOML.version}", setting.label)
        return self.measure_server(server, row, "", metric="adaptive_batch_size",
                                   single_process=False)

    def litserve(self, python: Path, light: bool = False) -> Row:
        port = free_port()
        env = {**base_env(), "BENCH_SCENARIO": "light" if light else "minilm"}
        env.pop("VIRTUAL_ENV", None)
        server = Server(f"litserve{' light' if light else ''}",
                        [str(python), "litserve_app.py", "--port", str(port)], port, SCENARIO, env,
                        WORK / "logs" / f"litserve{'-light' if light else ''}.log",
                        ready_path="/health")
        row = Row(f"LitServe {LITSERVE.version}", LITSERVE_LAYOUT, "light" if light else "minilm")
        return self.measure_server(server, row, None, single_process=False)


def runner_workers(base: str) -> dict[str, int]:
    """Worker count per runner, from nbento's `/_nbento/status` (`runners.NAME.workers`; a
    server without --dev trims /readyz to `loaded` only)."""
    status, text = http("GET", f"{base}/_nbento/status")
    try:
        runners = json.loads(text).get("runners", {}) if status == 200 else {}
        return {name: int(info.get("workers") or 1) for name, info in runners.items()}
    except (ValueError, AttributeError, TypeError):
        return {}


def rows_per_worker(before: dict[str, float], after: dict[str, float], metric: str) -> list[str]:
    """How the batched rows of the window spread over a peer's worker processes (BentoML labels
    its histograms with `worker_index`); a worker that never batched is missing from the list."""
    per_worker: dict[str, float] = {}
    for key, value in after.items():
        if key.split("{")[0].endswith(metric + "_sum") and 'worker_index="' in key:
            worker = key.split('worker_index="', 1)[1].split('"', 1)[0]
            per_worker[worker] = per_worker.get(worker, 0.0) + value - before.get(key, 0.0)
    total = sum(per_worker.values())
    if total <= 0:
        return []
    shares = ", ".join(f"worker {w} {100 * n / total:.0f}%" for w, n in sorted(per_worker.items()))
    return [f"batched rows per worker process: {shares}"]


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


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per row (default 20)")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up seconds per server (default: duration/4, 3-8)")
    parser.add_argument("--connections", type=int, default=80)
    parser.add_argument("--peers", action="store_true",
                        help=f"add LitServe {LITSERVE.version} and BentoML {BENTOML.version} (venvs set up on first use)")
    parser.add_argument("--burner", action="store_true", help="keep a CPU burner on about one core during the run")
    parser.add_argument("--rows", default="limit,ceiling,fastapi,nbento,litserve,bentoml,light",
                        help="comma list of rows to run (litserve and bentoml also need --peers)")
    parser.add_argument("--settings", default="default,off,5:16,10:32,25:32,threads",
                        help="nbento batching settings to run (default: all of them)")
    parser.add_argument("--bentoml-settings", default=",".join(r.key for r in BENTOML_ROWS),
                        help="BentoML rows to run (default: all of them)")
    parser.add_argument("--record", action="store_true", help="write the tables into bench/RESULTS.md")
    parser.add_argument("--results", type=Path, default=BENCH / "RESULTS.md")
    parser.add_argument("--note", default="", help="a sentence recorded above the table (e.g. why a run is a smoke run)")
    args = parser.parse_args(argv)
    if args.warmup is None:
        args.warmup = min(8.0, max(3.0, args.duration / 4))
    wanted = set(args.rows.split(","))
    settings_wanted = set(args.settings.split(","))
    bentoml_wanted = set(args.bentoml_settings.split(","))
    unknown = bentoml_wanted - {r.key for r in BENTOML_ROWS}
    if unknown:
        parser.error(f"--bentoml-settings: no row {', '.join(sorted(unknown))} "
                     f"(rows: {', '.join(r.key for r in BENTOML_ROWS)})")

    started = dt.datetime.now(dt.timezone.utc)
    load_before = os.getloadavg()
    WORK.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(f"[{dt.datetime.now(dt.timezone.utc):%H:%M:%S}] {msg}", file=sys.stderr, flush=True)

    log(f"load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f}; {machine()}")
    log(f"logs and scratch files in {WORK}")
    bench = Bench(args.duration, args.warmup, args.connections, log)
    rows: list[Row] = []

    peer_pythons: dict[str, Path] = {}
    for peer in (LITSERVE, BENTOML):
        if args.peers and (peer.name in wanted or (peer is LITSERVE and "light" in wanted)):
            try:
                peer_pythons[peer.name] = ensure_venv(peer, log)
            except (BenchError, subprocess.SubprocessError) as exc:
                log(f"{peer.name} rows skipped: {exc}")
                rows.append(Row(f"{peer.package} {peer.version}", "all", error=str(exc)[:300]))
    burner = Burner() if args.burner else None
    if burner is not None:
        log(f"CPU burner started (pid {burner.proc.pid})")
    try:
        rows += run_rows(bench, wanted, settings_wanted, peer_pythons, log, bentoml_wanted)
    finally:
        if burner is not None:
            burner.stop()
            log("CPU burner stopped")

    sections = sections_of(rows)
    for title, section_rows, refs in sections:
        print(f"### {title}\n\n{table(section_rows, refs)}\n")
    verdicts = target_verdict(rows, sections[0][2], sections[1][2])
    print(verdicts)
    if args.record:
        record(args.results, sections, verdicts, args, peer_pythons, load_before, started)
        log(f"recorded in {args.results}")
    return 0


def run_rows(bench: Bench, wanted: set[str], settings_wanted: set[str],
             peer_pythons: dict[str, Path], log: Callable[[str], None],
             bentoml_wanted: set[str]) -> list[Row]:
    rows: list[Row] = []

    # The in-process rows run before and after the servers; ratios use the mean of the two, so
    # a change in the machine's load during the run moves the reference too.
    def measure_in_process(when: str) -> None:
        for name, parallel, threads, processes in ((LIMIT, 2, 1, True), (CEILING, 1, 2, False)):
            if ("limit" if name == LIMIT else "ceiling") not in wanted:
                continue
            log(f"{name} ({when})")
            try:
                rates, cpu_per_item = bench.in_process(parallel, threads, processes)
            except BenchError as exc:
                rows.append(Row(name, f"batch 32 ({when})", error=str(exc)[:300]))
                continue
            rows.append(Row(name, f"batch 32 ({when})", ok_rps=rates["32"],
                            cpu_ms_per_ok=cpu_per_item.get("32")))
            log(f"  -> {rates}")

    measure_in_process("start")
    if "fastapi" in wanted:
        log("FastAPI + uvicorn, per-request model calls")
        rows.append(bench.fastapi())
    home = WORK / "nbento-home"
    if "nbento" in wanted or "light" in wanted:
        try:
            save_nbento_models(home, log)
        except BenchError as exc:
            rows.append(Row("nbento", "all", error=str(exc)[:300]))
    if "nbento" in wanted and home.exists():
        for setting in (NBENTO_DEFAULT, *SETTINGS):
            if setting.key in settings_wanted:
                log(f"nbento {setting.label}")
                rows.append(bench.nbento(setting, home))
    if "litserve" in peer_pythons and "litserve" in wanted:
        log(f"LitServe {LITSERVE.version} {LITSERVE_LAYOUT}")
        rows.append(bench.litserve(peer_pythons["litserve"]))
    if "bentoml" in peer_pythons and "bentoml" in wanted:
        for bentoml_row in BENTOML_ROWS:
            if bentoml_row.key in bentoml_wanted:
                log(f"BentoML {bentoml_row.label}")
                rows.append(bench.bentoml(bentoml_row, peer_pythons["bentoml"]))
    if any(r.server not in IN_PROCESS for r in rows):
        measure_in_process("end")
    if "light" in wanted:
        log("light scenario: nbento defaults, FastAPI, LitServe")
        if home.exists():
            rows.append(bench.nbento(NBENTO_DEFAULT, home, light=True))
        rows.append(bench.fastapi(light=True))
        if "litserve" in peer_pythons:
            rows.append(bench.litserve(peer_pythons["litserve"], light=True))
    shutil.rmtree(home, ignore_errors=True)  # ~90 MB of model copies; logs stay
    return rows


def sections_of(rows: list[Row]) -> list[tuple[str, list[Row], dict[str, float | None]]]:
    """The two tables with their references: MiniLM (vs LitServe's best, vs the limit) and light
    (vs LitServe, vs plain FastAPI)."""
    def best(found: list[Row]) -> float | None:
        rates = [r.ok_rps for r in found if r.ok_rps is not None and not r.error]
        return max(rates) if rates else None

    main_rows = [r for r in rows if r.scenario == "minilm"]
    light_rows = [r for r in rows if r.scenario == "light"]
    limits = [r.ok_rps for r in main_rows if r.server == LIMIT and r.ok_rps is not None]
    refs: dict[str, float | None] = {
        "LitServe": best([r for r in main_rows if r.server.startswith("LitServe")]),
        "limit": sum(limits) / len(limits) if limits else None,
    }
    light_refs: dict[str, float | None] = {
        "LitServe": best([r for r in light_rows if r.server.startswith("LitServe")]),
        "FastAPI": best([r for r in light_rows if r.server.startswith("FastAPI")]),
    }
    return [("MiniLM embeddings + LogisticRegression", main_rows, refs),
            ("Light: TF-IDF + LogisticRegression", light_rows, light_refs)]


if __name__ == "__main__":
    sys.exit(main())
