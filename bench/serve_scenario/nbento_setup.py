"""Save the scenario's two models into the nbento store named by $NBENTO_HOME.

Run by serve_bench.py as a subprocess (with NBENTO_HOME set to a scratch folder under
bench/.work), so the benchmark never touches the user's own store. The store picks the
serializer by the object's type (a sentence-transformers adapter when nbento has one,
cloudpickle otherwise); the chosen serializers are printed as one JSON line.
"""

from __future__ import annotations

import json

from scenario_models import fit_classifier, fit_light, load_embedder

from runtime import save_model


def main() -> None:
    embedder = load_embedder()
    clf = fit_classifier(embedder)
    saved = {
        "embedder": save_model(
            "bench_minilm", embedder, signatures={"encode": {"batchable": True, "batch_dim": 0}}
        ),
        "classifier": save_model(
            "bench_ticket_clf", clf, signatures={"predict_proba": {"batchable": True, "batch_dim": 0}}
        ),
        "light": save_model(
            "bench_light", fit_light(), signatures={"predict_proba": {"batchable": True}}
        ),
    }
    print(
        json.dumps(
            {name: {"tag": str(m.tag), "serializer": m.info.serializer} for name, m in saved.items()}
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
