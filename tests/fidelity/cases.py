"""The frameworks of the fidelity matrix, as data: how a notebook trains and saves a model, the
service cells that call it, and the requests to send. Add a framework by adding a `Case`.

All cases share one notebook, so one service module: their variables, runner names and API
names must differ. The notebook gets a last, uncaptured cell that calls each API in the kernel
(`kernel_call`) with the same payloads the test then sends over HTTP, and writes the answers
to `kernel_answers.json`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Case:
    name: str
    runner: str  # the runner (= model) name, for --runner / --runner-map / isolation
    api: str
    train: str  # a plain cell: trains the model, not captured
    model: str  # the %%nbento model cell
    preprocess: str  # the %%nbento preprocess cell (imports, handles, helpers)
    api_cell: str  # the %%nbento api cell
    payload: Callable[[list[Any]], dict[str, Any]]  # rows -> request body
    rows: list[Any]  # 60 rows: sent as one request, and as 60 single-row requests
    tolerance: float  # 0 = exact; see test_fidelity.py for why floats get 1e-6
    needs: tuple[str, ...] = ()  # modules the case imports (skipped without them)
    batchable_calls: int = 1  # runner calls one API call makes (predict + predict_proba: 2)
    # How the kernel calls the API with a request body `payload` and turns the answer into
    # what the server sends (a DataFrame API takes a frame and answers JSON records).
    kernel_call: str = "{api}(**payload)"


def _floats(n: int, width: int, seed: int) -> list[list[float]]:
    rng = random.Random(seed)
    return [[round(rng.uniform(-2, 2), 3) for _ in range(width)] for _ in range(n)]


def _houses(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    cities = ["Oslo", "Lima", "Pune", "Nowhere"]  # "Nowhere" was never seen in training
    return [
        {"city": rng.choice(cities), "rooms": rng.randint(1, 6), "area": round(rng.uniform(20, 200), 1)}
        for _ in range(n)
    ]


def _texts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    words = ["refund", "crash", "parcel", "password", "late", "card", "screen", "hi"]
    return [" ".join(rng.choice(words) for _ in range(rng.randint(1, 4))) for _ in range(n)]


# The tiny torch models compute a row in microseconds, so with a worker free the adaptive
# batcher rightly sends each request alone. A fixed 10 ms per call (what a real model's launch
# and Python overhead costs) makes batching pay, so the concurrent requests really share batches
# and the test checks answers computed in mixed batches.
PAUSE = "import time\ndef pause(module, inputs):\n    time.sleep(0.01)\n"

TORCH_MLP = Case(
    name="torch_mlp",
    runner="fid_mlp",
    api="predict",
    train=(
        "import torch\n"
        "from torch import nn\n"
        "torch.manual_seed(0)\n"
        "net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3)).eval()\n"
        + PAUSE + "net.register_forward_pre_hook(pause)\n"
    ),
    model="%%nbento model fid_mlp --batchable forward\nnet",
    preprocess=(
        "%%nbento preprocess\n"
        "import torch\n"
        "from nbento import runner\n"
        "mlp = runner('fid_mlp:latest')\n"
    ),
    api_cell=(
        "%%nbento api predict\n"
        "def predict(rows: list[list[float]]) -> list[list[float]]:\n"
        "    return mlp.forward(torch.tensor(rows)).tolist()\n"
    ),
    payload=lambda rows: {"rows": rows},
    rows=_floats(60, 4, seed=1),
    tolerance=1e-6,
    needs=("torch",),
)

DATAFRAME_PIPELINE = Case(
    name="dataframe_pipeline",
    runner="fid_houses",
    api="band",
    train=(
        "import random\n"
        "import pandas as pd\n"
        "from sklearn.compose import ColumnTransformer\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "from sklearn.pipeline import Pipeline\n"
        "from sklearn.preprocessing import OneHotEncoder, StandardScaler\n"
        "rng = random.Random(0)\n"
        "train = pd.DataFrame([{'city': rng.choice(['Oslo', 'Lima', 'Pune']), "
        "'rooms': rng.randint(1, 6), 'area': rng.uniform(20, 200)} for _ in range(200)])\n"
        "y = ['big' if r.area + 20 * r.rooms + (30 if r.city == 'Oslo' else 0) > 160 else 'small'"
        " for r in train.itertuples()]\n"
        "pipe = Pipeline([\n"
        "    ('prep', ColumnTransformer([\n"
        "        ('city', OneHotEncoder(handle_unknown='ignore'), ['city']),\n"
        "        ('num', StandardScaler(), ['rooms', 'area']),\n"
        "    ])),\n"
        "    ('clf', LogisticRegression(max_iter=500)),\n"
        "]).fit(train, y)\n"
    ),
    model="%%nbento model fid_houses --batchable predict,predict_proba\npipe",
    preprocess=(
        "%%nbento preprocess\n"
        "import pandas as pd\n"
        "from nbento import runner\n"
        "houses = runner('fid_houses:latest')\n"
    ),
    api_cell=(
        "%%nbento api band\n"
        "def band(records: list[dict]) -> dict:\n"
        "    frame = pd.DataFrame(records)\n"
        "    proba = houses.predict_proba(frame)\n"
        "    return {'labels': [str(x) for x in houses.predict(frame)], 'proba': proba.tolist()}\n"
    ),
    payload=lambda rows: {"records": rows},
    rows=_houses(60, seed=2),
    tolerance=1e-6,
    needs=("pandas", "sklearn"),
    batchable_calls=2,
)

DICT_OF_TENSORS = Case(
    name="dict_of_tensors",
    runner="fid_encoder",
    api="classify",
    train=(
        "import time\n"
        "import torch\n"
        "from torch import nn\n"
        "from transformers.modeling_outputs import SequenceClassifierOutput\n"
        "class TinyEncoder(nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.embed = nn.Embedding(64, 8)\n"
        "        self.head = nn.Linear(8, 2)\n"
        "    def forward(self, input_ids, attention_mask):\n"
        "        time.sleep(0.01)  # a per-call cost, as PAUSE explains\n"
        "        mask = attention_mask.unsqueeze(-1).float()\n"
        "        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1)\n"
        "        return SequenceClassifierOutput(logits=self.head(pooled))\n"
        "torch.manual_seed(0)\n"
        "encoder_model = TinyEncoder().eval()\n"
    ),
    model="%%nbento model fid_encoder --batchable forward\nencoder_model",
    preprocess=(
        "%%nbento preprocess\n"
        "import torch\n"
        "from nbento import runner\n"
        "encoder = runner('fid_encoder:latest')\n"
        "def tokenize(texts, length=12):\n"
        "    ids = [[ord(c) % 63 + 1 for c in t[:length]] for t in texts]\n"
        "    return {'input_ids': torch.tensor([i + [0] * (length - len(i)) for i in ids]),\n"
        "            'attention_mask': torch.tensor([[1] * len(i) + [0] * (length - len(i)) for i in ids])}\n"
    ),
    api_cell=(
        "%%nbento api classify\n"
        "def classify(texts: list[str]) -> list[list[float]]:\n"
        "    return encoder.forward(**tokenize(texts)).logits.tolist()\n"
    ),
    payload=lambda rows: {"texts": rows},
    rows=_texts(60, seed=3),
    tolerance=1e-6,
    needs=("torch", "transformers"),
)

def _customers(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {"tenure": rng.randint(0, 60), "monthly": round(rng.uniform(10, 120), 2),
         "calls": rng.randint(0, 9)}
        for _ in range(n)
    ]


XGBOOST = Case(
    name="xgboost",
    runner="fid_xgb",
    api="risk",
    train=(
        "import numpy as np\n"
        "from xgboost import XGBClassifier\n"
        "xgb_rng = np.random.default_rng(4)\n"
        "xgb_X = xgb_rng.uniform(-2, 2, size=(300, 4))\n"
        "xgb_y = (xgb_X[:, 0] + xgb_X[:, 1] * xgb_X[:, 2] > 0).astype(int) + (xgb_X[:, 3] > 1)\n"
        "xgb_model = XGBClassifier(n_estimators=40, max_depth=3, n_jobs=1).fit(xgb_X, xgb_y)\n"
    ),
    model="%%nbento model fid_xgb --batchable predict,predict_proba\nxgb_model",
    preprocess=(
        "%%nbento preprocess\n"
        "import numpy as np\n"
        "from nbento import runner\n"
        "xgb = runner('fid_xgb:latest')\n"
    ),
    api_cell=(
        "%%nbento api risk\n"
        "def risk(rows: list[list[float]]) -> dict:\n"
        "    features = np.asarray(rows, dtype=np.float32)\n"
        "    return {'labels': xgb.predict(features).tolist(),\n"
        "            'proba': xgb.predict_proba(features).tolist()}\n"
    ),
    payload=lambda rows: {"rows": rows},
    rows=_floats(60, 4, seed=4),
    tolerance=1e-6,
    needs=("xgboost",),
    batchable_calls=2,
)

# A DataFrame API (declared columns, `DataFrameOf[Row]`) in front of a LightGBM model trained
# on a DataFrame: the runner batches frames, the answer is a frame sent as JSON records.
LIGHTGBM = Case(
    name="lightgbm",
    runner="fid_lgbm",
    api="churn",
    train=(
        "import random\n"
        "import pandas as pd\n"
        "from lightgbm import LGBMClassifier\n"
        "lgbm_rng = random.Random(5)\n"
        "lgbm_train = pd.DataFrame([{'tenure': lgbm_rng.randint(0, 60), "
        "'monthly': lgbm_rng.uniform(10, 120), 'calls': lgbm_rng.randint(0, 9)} for _ in range(400)])\n"
        "lgbm_y = ((lgbm_train.calls > 4) | (lgbm_train.monthly > 90 + lgbm_train.tenure)).astype(int)\n"
        "lgbm_model = LGBMClassifier(n_estimators=30, num_leaves=7, n_jobs=1, verbose=-1)"
        ".fit(lgbm_train, lgbm_y)\n"
    ),
    model="%%nbento model fid_lgbm --batchable predict,predict_proba\nlgbm_model",
    preprocess=(
        "%%nbento preprocess\n"
        "import pandas as pd\n"
        "from pydantic import BaseModel\n"
        "from nbento import DataFrameOf, runner\n"
        "lgbm = runner('fid_lgbm:latest')\n"
        "class Customer(BaseModel):\n"
        "    tenure: int\n"
        "    monthly: float\n"
        "    calls: int\n"
    ),
    api_cell=(
        "%%nbento api churn\n"
        "def churn(customers: DataFrameOf[Customer]) -> pd.DataFrame:\n"
        "    proba = lgbm.predict_proba(customers)[:, 1]\n"
        "    return pd.DataFrame({'churn': lgbm.predict(customers), 'p': proba})\n"
    ),
    payload=lambda rows: {"customers": rows},
    rows=_customers(60, seed=5),
    tolerance=1e-6,
    needs=("lightgbm", "pandas"),
    batchable_calls=2,
    kernel_call="churn(pd.DataFrame(payload['customers'])).to_dict(orient='records')",
)

# A BERT text classifier with random weights and a tokenizer built from a word list in the
# service itself (the Bento carries the runner's model, not files the notebook wrote); padded
# to a fixed length so requests' tensors join into one batch.
BERT_WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "refund", "crash", "parcel",
              "password", "late", "card", "screen"]
TRANSFORMERS_BERT = Case(
    name="transformers_bert",
    runner="fid_bert",
    api="sentiment",
    train=(
        "import torch\n"
        "from transformers import BertConfig, BertForSequenceClassification\n"
        "torch.manual_seed(2)\n"
        "bert_model = BertForSequenceClassification(BertConfig(\n"
        f"    vocab_size={len(BERT_WORDS)}, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,\n"
        "    intermediate_size=37, max_position_embeddings=32, num_labels=3)).eval()\n"
    ),
    model="%%nbento model fid_bert --batchable forward\nbert_model",
    preprocess=(
        "%%nbento preprocess\n"
        "from transformers import BertTokenizerFast\n"
        "from nbento import runner\n"
        f"BERT_WORDS = {BERT_WORDS!r}\n"
        "bert_tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(BERT_WORDS)})\n"
        "bert = runner('fid_bert:latest')\n"
    ),
    api_cell=(
        "%%nbento api sentiment\n"
        "def sentiment(texts: list[str]) -> list[list[float]]:\n"
        "    batch = bert_tokenizer(texts, padding='max_length', max_length=12, truncation=True,\n"
        "                           return_tensors='pt')\n"
        "    out = bert.forward(input_ids=batch['input_ids'], attention_mask=batch['attention_mask'])\n"
        "    return out.logits.tolist()\n"
    ),
    payload=lambda rows: {"texts": rows},
    rows=_texts(60, seed=6),  # "hi" is not in the vocabulary: [UNK]
    tolerance=1e-6,
    needs=("torch", "transformers"),
)

ONNX_MLP = Case(
    name="onnx_mlp",
    runner="fid_onnx",
    api="scores",
    train=(
        "import onnx\n"
        "import torch\n"
        "from torch import nn\n"
        "torch.manual_seed(3)\n"
        "onnx_net = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 2)).eval()\n"
        "torch.onnx.export(onnx_net, (torch.randn(2, 5),), 'mlp.onnx', input_names=['x'],\n"
        "                  output_names=['y'], dynamic_axes={'x': {0: 'batch'}, 'y': {0: 'batch'}},\n"
        "                  dynamo=False)\n"
        "onnx_proto = onnx.load('mlp.onnx')\n"
    ),
    model="%%nbento model fid_onnx --batchable predict\nonnx_proto",
    preprocess=(
        "%%nbento preprocess\n"
        "import numpy as np\n"
        "from nbento import runner\n"
        "onnx_mlp = runner('fid_onnx:latest')\n"
    ),
    api_cell=(
        "%%nbento api scores\n"
        "def scores(rows: list[list[float]]) -> list[list[float]]:\n"
        "    return onnx_mlp.predict(np.asarray(rows, dtype=np.float32)).tolist()\n"
    ),
    payload=lambda rows: {"rows": rows},
    rows=_floats(60, 5, seed=7),
    tolerance=1e-6,
    needs=("torch", "onnx", "onnxruntime"),
)

CASES = [TORCH_MLP, DATAFRAME_PIPELINE, DICT_OF_TENSORS, XGBOOST, LIGHTGBM, TRANSFORMERS_BERT,
         ONNX_MLP]
