"""The benchmark scenario as an nbento service module, written as a user would write it.

Two runners from the store (saved by serve_bench.py into a temporary NBENTO_HOME): the MiniLM
embedder (`encode`, batchable) and the LogisticRegression (`predict_proba`, batchable). Batching
settings come from the config file serve_bench.py writes per setting (runner names below).
"""

from __future__ import annotations

from runtime import api, runner

SERVICE_NAME = "serve_bench"

# Sorted class names, as scikit-learn orders `classes_` (serve_bench.py checks this at setup).
LABELS = ("account", "billing", "shipping", "technical")

embedder = runner("bench_minilm:latest", name="embedder")
classifier = runner("bench_ticket_clf:latest", name="classifier")


@api
async def classify(texts: list[str]) -> dict[str, list]:
    vectors = await embedder.encode.async_run(texts)
    proba = await classifier.predict_proba.async_run(vectors)
    return {
        "labels": [LABELS[i] for i in proba.argmax(axis=1)],
        "scores": [round(float(p), 4) for p in proba.max(axis=1)],
    }
