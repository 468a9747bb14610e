"""Schema fuzzing: schemathesis generates bodies from the served /openapi.json (valid ones and
deliberately invalid ones) and sends them to a real `nbento serve` of the light example
notebook; no answer may be a 5xx. The example's signature declares what its model needs (1 to
256 non-empty texts), so `{"texts": []}` gets a 422 instead of reaching scikit-learn."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import require_module
from tests.runtime.bento_fixtures import copy_example, save_support_classifier
from tests.runtime.serving_support import ServerProcess, running_server

schemathesis = require_module("schemathesis")
hypothesis = require_module("hypothesis")
require_module("jupyter_ext.capture.notebook")  # `nbento serve NOTEBOOK.ipynb`

MAX_EXAMPLES = 150  # per generation mode: bounded, about 10 s on a busy 2-core machine


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NBENTO_HOME", str(home))
        save_support_classifier()
        notebook = copy_example("support_tickets.ipynb", tmp_path_factory.mktemp("nb"))
        with running_server(notebook) as server:
            yield server


def classify(server: ServerProcess, body: object) -> httpx.Response:
    return httpx.post(f"{server.url}/classify", json=body, timeout=30, trust_env=False)


def test_the_bodies_that_used_to_reach_the_model_get_a_422(example: ServerProcess) -> None:
    for body in ({"texts": []}, [], {"texts": [""]}, {"texts": ["x" * 10_001]},
                 {"texts": ["a ticket"] * 257}):
        r = classify(example, body)
        assert r.status_code == 422, (body if len(str(body)) < 80 else "long body", r.text)
        assert r.json()["error"]["fields"][0]["field"].startswith("texts")
    ok = classify(example, {"texts": ["I was charged twice", "x" * 10_000]})
    assert ok.status_code == 200 and len(ok.json()["labels"]) == 2


def test_openapi_carries_the_constraints(example: ServerProcess) -> None:
    doc = httpx.get(f"{example.url}/openapi.json", timeout=30, trust_env=False).json()
    body = doc["paths"]["/classify"]["post"]["requestBody"]["content"]["application/json"]
    texts = body["schema"]["properties"]["texts"]
    assert (texts["minItems"], texts["maxItems"]) == (1, 256)
    assert (texts["items"]["minLength"], texts["items"]["maxLength"]) == (1, 10_000)


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_fuzzing_the_example_finds_no_server_error(example: ServerProcess, mode: str) -> None:
    import requests

    schema = schemathesis.openapi.from_url(f"{example.url}/openapi.json")
    operation = schema["/classify"]["POST"]
    session = requests.Session()
    session.trust_env = False  # 127.0.0.1, never through a proxy
    seen: list[int] = []

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(case=operation.as_strategy(schemathesis.GenerationMode(mode)))
    def fuzz(case: schemathesis.Case) -> None:
        response = case.call(base_url=example.url, session=session, timeout=30)
        seen.append(response.status_code)
        assert response.status_code < 500, (case.body, response.text)

    fuzz()
    assert len(seen) >= 20  # it really sent requests
    assert any(status == 200 for status in seen) if mode == "positive" else all(
        400 <= status < 500 for status in seen
    )
