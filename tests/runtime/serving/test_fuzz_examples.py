"""Schema fuzzing: schemathesis generates bodies from the served /openapi.json (valid ones and
deliberately invalid ones) and sends them to a real `nbento serve` of every bundled example
notebook (examples/*.ipynb); no answer may be a 5xx, no invalid body may be accepted, and the
server is still ready afterwards. The examples' signatures declare what their models need (1 to
256 non-empty texts), so `{"texts": []}` gets a 422 instead of reaching the model. A service that
does hand zero rows to a batchable model gets a defined answer: an empty result."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import require_module
from tests.runtime.bento_fixtures import (
    EXAMPLES,
    copy_example,
    save_minilm_models,
    save_support_classifier,
)
from tests.runtime.serving_support import ServerProcess, running_server, write_service

schemathesis = require_module("schemathesis")
hypothesis = require_module("hypothesis")
require_module("jupyter_ext.capture.notebook")  # `nbento serve NOTEBOOK.ipynb`

MAX_EXAMPLES = 150  # per generation mode and API: bounded, about 10 s on a busy 2-core machine


SAVE_MODELS = {
    "support_tickets.ipynb": save_support_classifier,
    "support_tickets_minilm.ipynb": save_minilm_models,
}
NOTEBOOKS = [
    pytest.param("support_tickets.ipynb", id="tickets"),
    pytest.param("support_tickets_minilm.ipynb", id="minilm",
                 marks=[pytest.mark.minilm, pytest.mark.slow]),
]


def test_every_bundled_example_is_fuzzed() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.ipynb")) == sorted(SAVE_MODELS)


@pytest.fixture(scope="module", params=NOTEBOOKS)
def example(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NBENTO_HOME", str(home))
        SAVE_MODELS[request.param]()
        notebook = copy_example(request.param, tmp_path_factory.mktemp("nb"))
        with running_server(notebook) as server:
            yield server


def classify(server: ServerProcess, body: object) -> httpx.Response:
    return httpx.post(f"{server.url}/classify", json=body, timeout=60, trust_env=False)


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


def api_operations(url: str) -> list[tuple[str, str]]:
    """(path, METHOD) of every API the service declares (nbento's own routes start `/_`)."""
    doc = httpx.get(f"{url}/openapi.json", timeout=30, trust_env=False).json()
    return [(path, method.upper()) for path, item in doc["paths"].items()
            if not path.startswith("/_") and path not in ("/livez", "/readyz", "/metrics")
            for method in item if method in ("get", "post", "put", "patch", "delete")]


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_fuzzing_the_example_finds_no_server_error(example: ServerProcess, mode: str) -> None:
    import requests

    schema = schemathesis.openapi.from_url(f"{example.url}/openapi.json")
    session = requests.Session()
    session.trust_env = False  # 127.0.0.1, never through a proxy
    operations = api_operations(example.url)
    assert ("/classify", "POST") in operations
    for path, method in operations:
        seen = fuzz_operation(example.url, session, schema[path][method], mode)
        assert len(seen) >= 20, (path, seen)  # it really sent requests
        if mode == "positive":
            assert any(status == 200 for status in seen), (path, sorted(set(seen)))
    ready = httpx.get(f"{example.url}/readyz", timeout=30, trust_env=False)
    assert ready.status_code == 200, ready.text


def fuzz_operation(url: str, session: object, operation: object, mode: str) -> list[int]:
    """Send up to MAX_EXAMPLES generated bodies to one API; the status codes seen."""
    seen: list[int] = []
    path = operation.path  # type: ignore[attr-defined]

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    @hypothesis.given(case=operation.as_strategy(  # type: ignore[attr-defined]
        schemathesis.GenerationMode(mode)))
    def fuzz(case: schemathesis.Case) -> None:
        response = case.call(base_url=url, session=session, timeout=60)
        seen.append(response.status_code)
        assert response.status_code < 500, (path, case.body, response.text)
        if mode == "negative":  # an invalid body is never accepted
            assert 400 <= response.status_code < 500, (path, case.body, response.text)

    fuzz()
    return seen


ZERO_ROWS_SERVICE = '''\
from runtime import api, runner

classifier = runner("support_classifier:latest")


@api
def classify(texts: list[str]) -> dict:
    """No length constraint on purpose: an empty list reaches the batchable model."""
    return {"labels": [str(v) for v in classifier.predict(texts)]}
'''


def test_zero_rows_to_a_batchable_model_get_an_empty_result(tmp_path: Path) -> None:
    save_support_classifier()
    with running_server(write_service(tmp_path / "svc", ZERO_ROWS_SERVICE)) as server:
        r = classify(server, {"texts": []})
        assert r.status_code == 200, r.text
        assert r.json() == {"labels": []}
        assert classify(server, {"texts": ["where is my parcel"]}).status_code == 200
