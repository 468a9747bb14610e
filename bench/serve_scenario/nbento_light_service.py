"""The light scenario as an nbento service: one runner over the TF-IDF + LogisticRegression
pipeline (`predict_proba`, batchable; saved by nbento_setup.py). Served at nbento's defaults."""

from __future__ import annotations

from runtime import api, runner

SERVICE_NAME = "serve_bench_light"

# Sorted class names, as scikit-learn orders `classes_`.
LABELS = ("account", "billing", "shipping", "technical")

pipeline = runner("bench_light:latest", name="light")


@api
async def classify(texts: list[str]) -> dict[str, list]:
    proba = await pipeline.predict_proba.async_run(texts)
    return {
        "labels": [LABELS[i] for i in proba.argmax(axis=1)],
        "scores": [round(float(p), 4) for p in proba.max(axis=1)],
    }
