"""The scenario served by LitServe 0.2.19 (run with the LitServe venv's python from this folder:
`python litserve_app.py --port N`), in the best layout found here: two workers with one torch
thread each, fast_queue, batches of up to 32 rows waiting at most 10 ms. `BENCH_SCENARIO=light`
serves the light scenario (TF-IDF + LogisticRegression) with the same layout.

Each request is `{"texts": [one text]}`: the batch is the list of those texts, so LitServe's
batching and nbento's see the same rows.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import litserve as ls
from scenario_models import (
    classify,
    classify_light,
    fit_classifier,
    fit_light,
    load_embedder,
    set_torch_threads,
)

LIGHT = os.environ.get("BENCH_SCENARIO") == "light"
WORKERS, BATCH, WINDOW_S = 2, 32, 0.010


class ClassifyAPI(ls.LitAPI):
    def setup(self, device: str) -> None:
        if LIGHT:
            self.light = fit_light()
            return
        set_torch_threads(1)
        self.embedder = load_embedder()
        self.clf = fit_classifier(self.embedder)

    # No annotation on `request`: LitServe builds its route from it, and a dict annotation
    # would turn the body into a query parameter.
    def decode_request(self, request):  # type: ignore[no-untyped-def]
        return str(request["texts"][0])

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        out = classify_light(self.light, texts) if LIGHT else classify(self.embedder, self.clf, texts)
        return [{"labels": [label], "scores": [score]}
                for label, score in zip(out["labels"], out["scores"], strict=True)]

    def encode_response(self, output: dict[str, Any]) -> dict[str, Any]:
        return output


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    api = ClassifyAPI(max_batch_size=BATCH, batch_timeout=WINDOW_S, api_path="/classify")
    server = ls.LitServer(api, accelerator="cpu", devices=1, workers_per_device=WORKERS,
                          fast_queue=True, timeout=30)
    server.run(host="127.0.0.1", port=args.port, generate_client_file=False)


if __name__ == "__main__":
    main()
