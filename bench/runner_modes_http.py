"""Runner isolation over real HTTP: `nbento serve` on the serving benchmark's scenario (MiniLM
embedder + LogisticRegression, bench/serve_scenario), wrk with 80 connections, one text per
request, batching 10 ms / 32, for a few runner layouts of the embedder. Interleaved repeats,
because the machine is shared; compare the columns of one run.

    python bench/runner_modes_http.py [--seconds 10] [--repeats 2]
        [--layouts thread:1x2,thread:2x1,process:2x1]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
SCENARIO = BENCH / "serve_scenario"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(path: Path, isolation: str, workers: int, threads: int) -> Path:
    batching = json.dumps({"max_batch_size": 32, "max_latency_ms": 10})
    path.write_text(
        "runners:\n"
        f"  embedder: {{isolation: {isolation}, workers: {workers}, threads: {threads}, "
        f"batching: {batching}}}\n"
        f"  classifier: {{batching: {batching}}}\n"
    )
    return path


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit("server not ready in time")


def wrk(url: str, seconds: float) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t1",
            "-c80",
            f"-d{round(seconds)}s",
            "--latency",
            "-s",
            str(SCENARIO / "post.lua"),
            f"{url}/classify",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRKJSON"))
    return json.loads(line.split(" ", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--layouts", default="thread:1x2,thread:2x1,process:2x1")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nbento-modes-"))
    env = {**os.environ, "NBENTO_HOME": str(work / "home"), "TOKENIZERS_PARALLELISM": "false"}
    subprocess.run(
        [sys.executable, "nbento_setup.py"],
        cwd=SCENARIO,
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    layouts = []
    for item in args.layouts.split(","):
        isolation, shape = item.split(":")
        workers, threads = (int(x) for x in shape.split("x"))
        layouts.append((item, isolation, workers, threads))
    results: dict[str, list[dict[str, float]]] = {item: [] for item, *_ in layouts}
    for _ in range(args.repeats):
        for item, isolation, workers, threads in layouts:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            config = write_config(
                work / f"{item.replace(':', '-')}.yaml", isolation, workers, threads
            )
            log = open(work / f"{item.replace(':', '-')}.log", "ab")  # noqa: SIM115
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "runtime",
                    "serve",
                    "nbento_service.py",
                    "--port",
                    str(port),
                    "--config",
                    str(config),
                ],
                cwd=SCENARIO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                wait_ready(url, proc)
                wrk(url, 3)  # warm-up
                results[item].append(wrk(url, args.seconds))
                print(item, results[item][-1], flush=True)
            except (SystemExit, subprocess.SubprocessError, StopIteration) as exc:
                print(f"{item}: failed: {exc} (log: {log.name})", flush=True)
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                log.close()
    print(f"\nwrk -c80, {args.seconds:.0f} s x {args.repeats} interleaved, batching 10 ms / 32")
    print("| embedder layout | OK req/s (median; runs) | p95 ms | non-2xx | wrk timeouts (>2 s) |")
    print("|---|---|---|---|---|")
    for item, runs in results.items():
        if not runs:
            print(f"| {item} | failed | | | |")
            continue
        ok = [r["statuses"].get("200", 0) / (r["duration_us"] / 1e6) for r in runs]
        p95 = [r["p95"] / 1000 for r in runs]
        bad = sum(r["requests"] - r["statuses"].get("200", 0) + r["connect"] for r in runs)
        slow = sum(r["timeout"] for r in runs)
        print(
            f"| {item} | {statistics.median(ok):.1f} ({' / '.join(f'{v:.0f}' for v in ok)}) | "
            f"{statistics.median(p95):.0f} | {bad} | {slow} |"
        )


if __name__ == "__main__":
    main()
