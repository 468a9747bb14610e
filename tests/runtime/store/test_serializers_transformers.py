"""Hugging Face models, tokenizers and pipelines as save_pretrained folders (safetensors +
JSON), built here from tiny configs with random weights; nothing comes from a hub."""

from __future__ import annotations

import os
from typing import Any

import pytest

from runtime import store
from runtime.errors import ChecksumMismatch
from tests.conftest import require_module

# Read by huggingface_hub when it is imported: any attempt to reach a hub fails loudly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = require_module("transformers")
torch = require_module("torch")

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "my", "invoice", "is", "wrong", "the"]
VOCAB += ["app", "crashes", "charged", "twice"]
TEXTS = ["my invoice is wrong", "the app crashes", "charged twice"]
PICKLES = (".bin", ".pt", ".pth", ".pkl", ".joblib")


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return transformers.BertTokenizer(vocab={w: i for i, w in enumerate(VOCAB)})


def _classifier() -> Any:
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        num_labels=3,
        id2label={0: "billing", 1: "bug", 2: "other"},
        label2id={"billing": 0, "bug": 1, "other": 2},
    )
    return transformers.BertForSequenceClassification(config).eval()


def _safe(model: Any) -> None:
    assert not [f for f in model.info.files if f.endswith(PICKLES)]
    assert model.info.code_on_load is False
    assert model.info.framework.version == transformers.__version__
    versions = model.info.options["versions"]
    assert versions["transformers"] == transformers.__version__
    assert versions["torch"] == torch.__version__
    assert "safetensors" in versions  # what a Bento must install to load it


def test_model_round_trips_with_identical_logits(tokenizer: Any) -> None:
    model = _classifier()
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")

    saved = store.save_model("bert", model, signatures=["forward"])
    loaded = store.load("bert")

    assert saved.info.serializer == "transformers"
    assert saved.info.options["kind"] == "model"
    assert saved.info.options["model_class"] == "BertForSequenceClassification"
    assert {"model/config.json", "model/model.safetensors"} <= set(saved.info.files)
    _safe(saved)
    assert type(loaded) is transformers.BertForSequenceClassification and not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(**batch).logits, model(**batch).logits)


def test_dtype_and_training_mode_come_back() -> None:
    model = _classifier().double().train()

    saved = store.save_model("bert", model, signatures=[])
    loaded = store.load("bert")

    assert saved.info.options["dtype"] == "float64" and saved.info.options["training"] is True
    assert loaded.dtype == torch.float64 and loaded.training


def test_pipeline_round_trips_with_its_tokenizer_and_task(tokenizer: Any) -> None:
    pipe = transformers.pipeline(
        "text-classification", model=_classifier(), tokenizer=tokenizer, device="cpu"
    )

    saved = store.save_model("tickets", pipe, signatures=[])
    loaded = store.load("tickets")

    assert saved.info.options["kind"] == "pipeline"
    assert saved.info.options["task"] == "text-classification"
    assert {"pipeline/model.safetensors", "pipeline/tokenizer.json"} <= set(saved.info.files)
    _safe(saved)
    assert type(loaded) is type(pipe) and not loaded.model.training
    assert loaded(TEXTS, top_k=None) == pipe(TEXTS, top_k=None)
    assert loaded.tokenizer(TEXTS[0])["input_ids"] == tokenizer(TEXTS[0])["input_ids"]


def test_tokenizer_alone_round_trips(tokenizer: Any) -> None:
    saved = store.save_model("vocab", tokenizer, signatures=[])
    loaded = store.load("vocab")

    assert saved.info.options["kind"] == "tokenizer" and saved.info.code_on_load is False
    assert type(loaded) is type(tokenizer)
    assert loaded(TEXTS)["input_ids"] == tokenizer(TEXTS)["input_ids"]


@pytest.mark.parametrize("relpath", ["model/model.safetensors", "model/config.json"])
def test_tampered_files_are_refused_before_transformers_reads_them(relpath: str) -> None:
    saved = store.save_model("bert", _classifier(), signatures=[])
    target = saved.path / relpath
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))

    with pytest.raises(ChecksumMismatch, match=relpath.replace(".", r"\.")):
        store.load("bert")
