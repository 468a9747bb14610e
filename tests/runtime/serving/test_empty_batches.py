"""Zero rows: a batchable API or runner method given an empty batch answers zero outputs and
never hands the model an empty batch (scikit-learn and most models raise on one)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from runtime.serving.batching import AdaptiveBatcher
from runtime.settings import BatchingConfig
from tests.runtime.serving_support import running_server, write_service


class RefusesEmpty:
    """A model that raises on an empty batch, like `LogisticRegression.predict_proba([])`."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, rows: Any) -> Any:
        self.calls += 1
        if len(rows) == 0:
            raise ValueError("Found array with 0 sample(s)")
        return [r * 2 for r in rows]


def test_submit_with_zero_rows_answers_zero_outputs_without_calling_the_model() -> None:
    async def scenario() -> tuple[Any, Any, Any, int]:
        model = RefusesEmpty()
        batcher = AdaptiveBatcher("m", "predict", model, BatchingConfig(max_batch_size=4))
        empty_list = await batcher.submit([])
        empty_array = await batcher.submit(np.empty((0, 3), dtype=np.float32))
        one = await batcher.submit([5])
        await batcher.aclose(5)
        return empty_list, empty_array, one, model.calls

    empty_list, empty_array, one, calls = asyncio.run(scenario())
    assert empty_list == []
    assert isinstance(empty_array, np.ndarray) and empty_array.shape == (0, 3)
    assert one == [10]
    assert calls == 1  # only the non-empty request reached the model


def test_batchable_api_given_no_rows_answers_an_empty_list(tmp_path: Path) -> None:
    write_service(tmp_path, """
        from runtime import api

        @api(batchable=True, max_batch_size=8)
        def lengths(texts: list[str]) -> list[int]:
            if not texts:
                raise ValueError("empty batch reached the function")
            return [len(t) for t in texts]
    """)
    with running_server(tmp_path / "service.py") as server:
        empty = httpx.post(f"{server.url}/lengths", json={"texts": []}, timeout=30)
        assert empty.status_code == 200, empty.text
        assert empty.json() == []
        assert httpx.post(f"{server.url}/lengths", json=["ab", "c"], timeout=30).json() == [2, 1]
