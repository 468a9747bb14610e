"""The scenario as a BentoML 1.4 service (peer row; runs only in the BentoML venv).

Its best layout here, as for LitServe: one `@bentoml.service` holding both models, two worker
processes with one torch thread each, and one batchable `classify` endpoint, so BentoML's
adaptive batcher (one per worker) forms the batches. Served unpatched:
`bentoml serve bentoml_service:Classify --host 127.0.0.1 --port N` from this folder.

Why not the textbook two-service layout (an `Embedder` behind `bentoml.depends`): in 1.4.39 the
dependency client (`_bentoml_impl/client/proxy2.py` `SessionManager`) closes its aiohttp
session every 100 calls while other calls are still in flight on it, so under 80 connections
every refresh fails the in-flight calls ("Server disconnected", "Connector is closed") and
their requests answer 500. One service has no such hop.

Batching comes from env `BENCH_BATCHING`: `off`, `SIZE` (max_batch_size SIZE with BentoML's
default 60 s latency budget), `MS:SIZE`, or `default` (BentoML's defaults, 100 rows / 60 s).
BentoML's `max_latency_ms` is a deadline, not a wait window: a request still queued after it
is cancelled with 503 ("process is overloaded"). Under 80 connections on two cores a request
waits far longer than 10 ms, so budgets like nbento's windows (5-25 ms) shed most requests by
design; the rows keep the 60 s default and vary the batch size.

Each request is `{"texts": [one text]}`; the batch is the concatenation of those lists and each
request gets its slice back: a list with one `{"labels": [label], "scores": [score]}` per text
(the same items as LitServe's answers).
"""

from __future__ import annotations

import os
from typing import Any

import bentoml
from scenario_models import classify as classify_texts
from scenario_models import fit_classifier, load_embedder, set_torch_threads

WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
TORCH_THREADS = int(os.environ.get("BENCH_TORCH_THREADS", "1"))


def _batching_kwargs(setting: str) -> dict[str, Any]:
    if setting == "off":
        return {"batchable": False}
    if setting == "default":
        return {"batchable": True}
    ms, _, size = setting.rpartition(":")
    kwargs: dict[str, Any] = {"batchable": True, "max_batch_size": int(size)}
    if ms:
        kwargs["max_latency_ms"] = int(float(ms))
    return kwargs


_BATCHING = _batching_kwargs(os.environ.get("BENCH_BATCHING", "default"))


# threads=1: one batch at a time per worker (the batcher queues the rest), as in LitServe's
# layout; more threads would only make the two torch threads of a core compete.
@bentoml.service(workers=WORKERS, threads=1)
class Classify:
    def __init__(self) -> None:
        set_torch_threads(TORCH_THREADS)
        self.embedder = load_embedder()
        self.clf = fit_classifier(self.embedder)

    @bentoml.api(**_BATCHING)
    def classify(self, texts: list[str]) -> list[dict[str, list[Any]]]:
        out = classify_texts(self.embedder, self.clf, texts)
        return [{"labels": [label], "scores": [score]}
                for label, score in zip(out["labels"], out["scores"], strict=True)]
