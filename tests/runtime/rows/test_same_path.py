"""A model handle in the kernel takes the server's row path: a call that works in one works in
the other with the same answer, and a call that fails in the server fails in the kernel first,
with the same error and message."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from runtime import store
from runtime.service.handles import runner, set_backend_resolver
from runtime.serving.runners import RunnerPool
from runtime.settings import BatchingConfig, RunnerConfig, ServerConfig
from tests.runtime.serving_support import REPO

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Scorer:
    """Batchable `score` (rows, and keyword rows), `count_only` (one number for any batch: no
    rows in its output) and `frame` (a DataFrame back)."""

    def score(self, rows: Any, mask: Any = None, offset: float = 0.0) -> Any:
        out = rows * 2 + offset
        return out if mask is None else out * mask

    def count_only(self, rows: Any) -> int:
        return len(rows)

    def frame(self, rows: pd.DataFrame) -> pd.DataFrame:
        return rows.assign(total=rows["a"] + rows["b"])


SIGNATURES = {name: {"batchable": True} for name in ("score", "count_only", "frame")}

BAD_CALLS = [
    ("score", ("one text",), {}),
    ("score", (np.float64(3.0),), {}),
    ("score", (torch.ones(3, 2),), {"mask": torch.ones(2, 2)}),
    ("score", (), {"offset": 1.0}),
    ("count_only", ([1, 2, 3],), {}),
]


def pool(isolation: str = "thread") -> RunnerPool:
    store.save_model("scorer", Scorer(), signatures=SIGNATURES)
    runner_config = RunnerConfig(batching=BatchingConfig(), isolation=isolation, workers=1)
    return RunnerPool(ServerConfig(runners={"scorer": runner_config}))


@pytest.fixture
def served(nbento_home: Any) -> Iterator[RunnerPool]:
    yield pool()
    set_backend_resolver(None)


async def _server_call(pool: RunnerPool, method: str, args: Any, kwargs: Any) -> Any:
    handle = runner("scorer:latest")
    await pool.sync(SimpleNamespace(name="svc", runners={"scorer": handle}))
    previous = set_backend_resolver(pool.resolver)
    try:
        return await getattr(handle, method).async_run(*args, **kwargs)
    finally:
        set_backend_resolver(previous)


@pytest.mark.parametrize(("method", "args", "kwargs"), BAD_CALLS)
async def test_a_call_that_fails_in_the_server_fails_the_same_in_the_kernel(
    served: RunnerPool, method: str, args: Any, kwargs: Any
) -> None:
    with pytest.raises(Exception) as in_kernel:
        getattr(runner("scorer:latest"), method)(*args, **kwargs)
    try:
        with pytest.raises(Exception) as in_server:
            await _server_call(served, method, args, kwargs)
    finally:
        await served.aclose(5)
    assert type(in_kernel.value) is type(in_server.value)
    assert str(in_kernel.value) == str(in_server.value)
    assert type(in_kernel.value).__name__ in ("BatchInputError", "BatchOutputError")


@pytest.mark.parametrize("isolation", ["thread", "process"])
async def test_a_call_that_works_in_the_kernel_answers_the_same_in_the_server(
    isolation: str, nbento_home: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # a worker process imports Scorer from here
    served = pool(isolation)
    rows = torch.arange(6.0).reshape(3, 2)
    frame = pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5]}, index=["x", "y"])
    handle = runner("scorer:latest")
    local = (handle.score(rows, mask=torch.ones(3, 2), offset=1.0), handle.frame(frame))
    try:
        remote_score = await _server_call(served, "score", (rows,), {"mask": torch.ones(3, 2), "offset": 1.0})
        remote_frame = await _server_call(served, "frame", (frame,), {})
    finally:
        await served.aclose(5)
        set_backend_resolver(None)
    assert torch.equal(local[0], remote_score) and torch.equal(local[0], rows * 2 + 1)
    pd.testing.assert_frame_equal(local[1], remote_frame)
    assert list(remote_frame.index) == ["x", "y"]
