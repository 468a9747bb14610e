"""Hot reload does not accumulate: after many good and failed reloads under calls, every old
generation (its module, its service, its API batchers) is gone, and the server holds the same
number of threads, event-loop tasks, sys.modules entries and metric label sets as after the
first reloads. The soak (bench/soak.py) reloads every 5 s for 10 minutes; anything kept per
reload there would grow without bound."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import weakref
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from runtime.serving.workers import available_cores
from tests.runtime.serving_models import save_scaler
from tests.runtime.serving_support import write_service

SERVICE = """
from typing import Annotated

from pydantic import Field

from runtime import api, runner

scaler = runner("scaler:latest")
Count = Annotated[float, Field(ge=-1e6, le=1e6)]


@api
def double(xs: Annotated[list[Count], Field(min_length=1)]) -> dict:
    return {"out": scaler.predict(xs), "rev": REV}


@api
async def triple(xs: list[float]) -> list[float]:
    return [3 * x for x in await scaler.predict.async_run(xs)]


@api(batchable=True)
def halve(xs: list[float]) -> list[float]:
    return [x / 2 for x in xs]


REV = 0
"""

RELOADS = 30
POOLS = ("asyncio_", "nbento-api_", "nbento-runner-")


def _label_sets() -> int:
    return sum(len(metric.samples) for metric in REGISTRY.collect())


def _reload_cpu() -> float:
    return REGISTRY.get_sample_value("nbento_reload_cpu_seconds_total") or 0.0


def test_reloads_keep_nothing_of_old_generations(tmp_path: Path) -> None:
    from runtime.service.handles import set_backend_resolver
    from runtime.service.sources import ServiceSource
    from runtime.serving.host import ServiceHost
    from runtime.serving.runners import RunnerPool
    from runtime.settings import load_config

    save_scaler("scaler")
    path = write_service(tmp_path / "svc", SERVICE)
    config = load_config()
    pool = RunnerPool(config)
    previous = set_backend_resolver(pool.resolver)

    async def calls(host: ServiceHost, rev: int) -> None:
        answers = await asyncio.gather(
            host.endpoints["/double"].call({"xs": [1.0, 2.0]}),
            host.endpoints["/triple"].call({"xs": [1.0]}),
            *(host.endpoints["/halve"].call({"xs": [float(i)]}) for i in range(4)),
        )
        assert answers[0] == {"out": [2.0, 4.0], "rev": rev}
        assert answers[1] == [6.0]
        assert answers[2:] == [[0.0], [0.5], [1.0], [1.5]]

    async def settle(host: ServiceHost) -> None:
        """Old batchers close in the background; wait for that, then collect."""
        while host._closing:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        gc.collect()

    def counts() -> dict[str, Any]:
        return {
            # The default executor (asyncio.to_thread), the API thread pool and the runner's
            # worker threads (kept across reloads) start threads lazily up to their bounds:
            # the runner's second one the first time two batches overlap. Every other thread
            # must stay the same.
            "threads": sum(1 for t in threading.enumerate() if not t.name.startswith(POOLS)),
            "thread names": sorted(t.name for t in threading.enumerate()),
            "runner threads": sum(1 for t in threading.enumerate()
                                  if t.name.startswith("nbento-runner-")),
            "tasks": len(asyncio.all_tasks()),
            "modules": len(sys.modules),
            "label sets": _label_sets(),
        }

    async def reload_to(host: ServiceHost, rev: int, *, broken: bool = False) -> None:
        code = SERVICE.replace("REV = 0", f"REV = {rev}")
        path.write_text(code + ("\ndef broken(:\n    pass\n" if broken else ""))
        assert await host.reload() is not broken, host.last_error

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], list[str], float]:
        host = ServiceHost(ServiceSource(path=path), config, pool)
        host.load_initial()
        await host.start()
        while not host.ready:
            await asyncio.sleep(0.01)
        await calls(host, 0)
        # Warm up: the first reloads fill bounded caches (typing's, pydantic's) and the first
        # failed one adds the metric's `error` label.
        for rev in range(1, 6):
            await reload_to(host, rev, broken=rev == 3)
            await reload_to(host, rev)
            await calls(host, rev)
        await settle(host)
        before = counts()
        cpu_before = _reload_cpu()
        gone: list[tuple[str, weakref.ref[Any]]] = []
        for rev in range(6, 6 + RELOADS):
            service = host.service
            assert service is not None
            gone += [(f"service of generation {host.generation}", weakref.ref(service)),
                     (f"module of generation {host.generation}", weakref.ref(service.module))]
            gone += [(f"batcher of {route} in generation {host.generation}", weakref.ref(e.batcher))
                     for route, e in host.endpoints.items() if e.batcher is not None]
            del service  # this frame must not be what keeps it alive
            if rev % 5 == 0:  # a failed reload in between, as the soak does
                await reload_to(host, rev, broken=True)
                await calls(host, rev - 1)
            await reload_to(host, rev)
            await calls(host, rev)
        await settle(host)
        after = counts()
        alive = [what for what, ref in gone if ref() is not None]
        spent = _reload_cpu() - cpu_before
        await host.aclose(5)
        return before, after, alive, spent

    try:
        before, after, alive, spent = asyncio.run(scenario())
    finally:
        set_backend_resolver(previous)
    assert alive == [], f"{len(alive)} objects of old generations still alive: {alive[:5]}"
    lazy = ("thread names", "runner threads")
    assert {k: v for k, v in after.items() if k not in lazy} == {
        k: v for k, v in before.items() if k not in lazy}, (before, after)
    assert after["runner threads"] <= available_cores()  # one worker thread per core at most
    assert spent > 0  # nbento_reload_cpu_seconds_total counts the reloads' CPU
