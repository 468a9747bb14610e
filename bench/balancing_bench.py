"""Per-call overhead of client-side runner balancing (issue 15; notes in bench/scaling.md).

1. The balancing decision alone: `ReplicaSet.choose` + `lease` per call, in-process, with 1, 3
   and 16 replicas (no network).
2. End to end over loopback HTTP against tiny wire-echo runner stand-ins (uvicorn subprocesses on
   127.0.0.2-4, same port): a plain pooled httpx client (what the split layout's client was
   before balancing) against `RemoteBackend` over 1 URL and over 3 replicas, sequential and with
   16 calls in flight. Medians of `--repeats` runs.

    python bench/balancing_bench.py                # ~1 minute
    python bench/balancing_bench.py --calls 500    # quicker, noisier
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _echo_app() -> object:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from runtime.serving import wire

    async def call(request: Request) -> Response:
        payload = wire.decode(await request.body())
        return Response(wire.encode(payload["args"][0]), media_type=wire.CONTENT_TYPE)

    async def livez(request: Request) -> Response:
        return Response(b"ok")

    return Starlette(routes=[Route("/_runner/{method}", call, methods=["POST"]),
                             Route("/livez", livez)])


def _serve(host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(_echo_app(), host=host, port=port, log_level="warning", access_log=False)  # type: ignore[arg-type]


def _decision_us(replicas: int, n: int) -> float:
    from runtime.serving.balancer import ReplicaSet

    async def run() -> float:
        rs = ReplicaSet("r", [f"http://10.0.0.{i}:1" for i in range(1, replicas + 1)])
        start = time.perf_counter()
        for _ in range(n):
            replica = await rs.choose(set())
            assert replica is not None
            async with rs.lease(replica, 1):
                pass
            rs.answered(replica)
        elapsed = time.perf_counter() - start
        await rs.aclose()
        return elapsed / n * 1e6

    return asyncio.run(run())


async def _e2e_us(
    kind: str, urls: list[str], calls: int, concurrency: int
) -> tuple[float, float]:
    """(wall us per call, client CPU us per call)."""
    from runtime.serving import wire
    from runtime.serving.remote import RemoteBackend

    args = ([1.0, 2.0, 3.0],)
    if kind == "plain httpx":
        client = httpx.AsyncClient(base_url=urls[0], limits=httpx.Limits(max_connections=256))
        body = wire.encode({"args": list(args), "kwargs": {}})

        async def one() -> None:
            r = await client.post("/_runner/predict", content=body,
                                  headers={"content-type": wire.CONTENT_TYPE})
            wire.decode(r.content)

        close = client.aclose
    else:
        backend = RemoteBackend("r", urls if len(urls) > 1 else urls[0])

        async def one() -> None:
            await backend.acall("predict", args, {})

        close = backend.aclose

    async def worker(k: int) -> None:
        for _ in range(k):
            await one()

    for _ in range(20):  # warm connections
        await one()
    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    await close()
    done = calls // concurrency * concurrency
    return elapsed / done * 1e6, cpu / done * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--port", type=int, default=39417)
    parser.add_argument("--serve", nargs=2, metavar=("HOST", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve[0], int(args.serve[1]))
        return
    print(f"load average before: {os.getloadavg()}")
    print("\nbalancing decision (choose + lease), in-process:")
    for replicas in (1, 3, 16):
        runs = [_decision_us(replicas, 20000) for _ in range(args.repeats)]
        print(f"  {replicas:2d} replicas: {statistics.median(runs):6.1f} us/call")

    hosts = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    procs = [
        subprocess.Popen([sys.executable, __file__, "--serve", h, str(args.port)],
                         env={**os.environ, "PYTHONPATH": str(REPO)})
        for h in hosts
    ]
    urls = [f"http://{h}:{args.port}" for h in hosts]
    try:
        deadline = time.monotonic() + 30
        for url in urls:
            while True:
                try:
                    httpx.get(f"{url}/livez", timeout=1)
                    break
                except httpx.HTTPError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.1)
        print("\nend to end over loopback (us per call, median of repeats, interleaved):")
        print("  | client | in flight | wall us/call | client CPU us/call | wall runs |")
        kinds = (
            ("plain httpx", urls[:1]),
            ("RemoteBackend, 1 URL", urls[:1]),
            ("RemoteBackend, 3 replicas", urls),
        )
        for concurrency in (1, 16):
            runs: dict[str, list[tuple[float, float]]] = {kind: [] for kind, _ in kinds}
            for _ in range(args.repeats):  # ABCABC: machine drift hits every client alike
                for kind, targets in kinds:
                    runs[kind].append(
                        asyncio.run(_e2e_us(kind, targets, args.calls, concurrency))
                    )
            for kind, values in runs.items():
                wall = statistics.median(v[0] for v in values)
                cpu = statistics.median(v[1] for v in values)
                shown = ", ".join(f"{v[0]:.0f}" for v in values)
                print(f"  | {kind} | {concurrency} | {wall:.0f} | {cpu:.0f} | {shown} |")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
