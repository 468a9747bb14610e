"""Baseline: plain FastAPI + uvicorn calling both models once per request (no batching).

`async def` like the peers' measurement: model calls run on the event loop, one at a time,
which is what a straightforward FastAPI service does. Start with
`uvicorn fastapi_app:app --host 127.0.0.1 --port N` from this folder; `BENCH_SCENARIO=light`
serves the light scenario (one TF-IDF + LogisticRegression pipeline) instead.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field
from scenario_models import classify as run_models
from scenario_models import (
    classify_light,
    fit_classifier,
    fit_light,
    load_embedder,
    set_torch_threads,
)

LIGHT = os.environ.get("BENCH_SCENARIO") == "light"

_models: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    if LIGHT:
        _models["light"] = fit_light()
        yield
        _models.clear()
        return
    set_torch_threads(int(os.environ.get("BENCH_TORCH_THREADS", "0")) or None)
    _models["embedder"] = load_embedder()
    _models["clf"] = fit_classifier(_models["embedder"])
    yield
    _models.clear()


app = FastAPI(title="serve_bench FastAPI baseline", lifespan=lifespan)


class ClassifyIn(BaseModel):
    texts: list[str] = Field(min_length=1, max_length=256)


class ClassifyOut(BaseModel):
    labels: list[str]
    scores: list[float]


@app.get("/readyz")
async def readyz() -> dict[str, bool]:
    return {"ready": bool(_models)}


@app.post("/classify")
async def classify(body: ClassifyIn) -> ClassifyOut:
    if LIGHT:
        return ClassifyOut(**classify_light(_models["light"], body.texts))
    return ClassifyOut(**run_models(_models["embedder"], _models["clf"], body.texts))
