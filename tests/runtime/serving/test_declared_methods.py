"""Workers call only the methods a model declares as signatures, whatever name reaches them
(a request path, a pipe frame): the last check before `getattr` on the model object."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runtime import store
from runtime.errors import SignatureError
from runtime.serving.workers import ProcessWorkers, RemoteCallError, ThreadWorkers

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_thread_workers_refuse_undeclared_methods(tmp_path: Path) -> None:
    model = store.save_model("vectors", np.arange(4.0), signatures=["dot"])
    workers = ThreadWorkers(model)
    await workers.start()
    try:
        assert await workers.run("dot", (np.ones(4),), {}) == 6.0
        for method in ("tofile", "__class__", "_private"):
            with pytest.raises(SignatureError, match=f"no signature '{method}'; declared: dot"):
                await workers.run(method, (str(tmp_path / "out.bin"),), {})
    finally:
        await workers.aclose(5)
    assert not (tmp_path / "out.bin").exists()


async def test_process_workers_refuse_undeclared_methods(tmp_path: Path) -> None:
    model = store.save_model("vectors", np.arange(4.0), signatures=["dot"])
    workers = ProcessWorkers(str(model.tag), workers=1, threads=1)
    await workers.start()
    try:
        assert await workers.run("dot", (np.ones(4),), {}) == 6.0
        with pytest.raises(RemoteCallError, match=r"SignatureError: .*no signature 'tofile'"):
            await workers.run("tofile", (str(tmp_path / "out.bin"),), {})
        assert await workers.run("dot", (np.ones(4),), {}) == 6.0  # the child is still serving
    finally:
        await workers.aclose(5)
    assert not (tmp_path / "out.bin").exists()
