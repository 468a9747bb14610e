"""The scenario as a BentoML 1.4 service (peer row; runs only in bench/.work/bentoml-venv).

The usual BentoML layout for a batched model behind an API: an `Embedder` service with a
batchable `encode` endpoint, and the entry service `Classify` that holds the LogisticRegression
and calls the embedder through `bentoml.depends`. Batching comes from env `BENCH_BATCHING`:
`off`, `MS:SIZE` (e.g. `10:32`: max_latency_ms 10, max_batch_size 32) or `default` (BentoML's
own defaults, 100 rows / 60 s). Served unpatched, as shipped:
`bentoml serve bentoml_service:Classify --host 127.0.0.1 --port N` from this folder.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml
import numpy as np
from scenario_models import fit_classifier, load_embedder, response, set_torch_threads


def _batching_kwargs(setting: str) -> dict[str, Any]:
    if setting == "off":
        return {"batchable": False}
    if setting == "default":
        return {"batchable": True}
    ms, _, size = setting.partition(":")
    return {"batchable": True, "max_latency_ms": int(float(ms)), "max_batch_size": int(size)}


_BATCHING = _batching_kwargs(os.environ.get("BENCH_BATCHING", "default"))


@bentoml.service(workers=1)
class Embedder:
    def __init__(self) -> None:
        set_torch_threads(int(os.environ.get("BENCH_TORCH_THREADS", "0")) or None)
        self.model = load_embedder()

    @bentoml.api(**_BATCHING)
    def encode(self, texts: list[str]) -> np.ndarray:
        return self.model.encode(texts, batch_size=max(len(texts), 1))


@bentoml.service(workers=1)
class Classify:
    embedder = bentoml.depends(Embedder)

    def __init__(self) -> None:
        # Fit on the same texts as every other server; the embedder here is a local copy used
        # only for fitting, then dropped.
        local = load_embedder()
        self.clf = fit_classifier(local)
        del local

    @bentoml.api
    async def classify(self, texts: list[str]) -> dict[str, list[Any]]:
        vectors = await self.embedder.to_async.encode(texts)
        return response(self.clf.predict_proba(np.asarray(vectors)))
