"""Every error either server sends is the one `ErrorBody`, over real HTTP: the API server
(400/404/405/413/415/422/500/503, its own answers and FastAPI's), a split layout's runner server,
and the API server in front of remote runners, which must fail exactly like a single process.
The OpenAPI document's error responses describe that very body: real answers validate against it.

Three `nbento serve` subprocesses on 127.0.0.1 (single, runner, API with a runner map) share
one slow model (0.2 s per batch of at most 2 rows, a queue of 4 rows) so a small flood fills the
queue; plus a bare FastAPI app on uvicorn for the framework fallbacks no nbento route reaches."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import uvicorn
from fastapi import FastAPI

from runtime.serving import wire
from runtime.serving.error_body import ErrorBody, ErrorDetail, install_error_handlers
from tests.runtime.serving_models import save_scaler
from tests.runtime.serving_support import ServerProcess, free_port, running_server, write_service

SERVICE = """
from __future__ import annotations

from pydantic import BaseModel
from starlette.exceptions import HTTPException

from runtime import api, runner

scaler = runner("scaler:latest")


class Order(BaseModel):
    item: str
    qty: int


@api
def double(xs: list[float]) -> list[float]:
    return scaler.predict(xs)


@api
def raw(xs: list) -> list:
    return scaler.predict(xs)  # untyped rows: the model itself fails on a string


@api
def total(order: Order) -> dict:
    return {"total": order.qty}


@api
def misspelt(xs: list[float]) -> list:
    return scaler.transform(xs)  # the model saved no signature 'transform'


@api
def conflict(order_id: int) -> int:
    raise HTTPException(409, f"order {order_id} exists", headers={"X-Order": str(order_id)})


@api
def ticket(ticket_id: int) -> dict:
    raise HTTPException(404, {"ticket": ticket_id, "problem": "no such ticket"})


@api
def ghost(xs: list[float]) -> list:
    return runner("ghost").predict(xs)  # a handle the server never started
"""

CONFIG = """
max_body_bytes: 4096
runners:
  scaler:
    batching: {max_batch_size: 2, max_latency_ms: 1, max_queue_rows: 4}
"""

# What the API server answers, and which (status, type) each must have; the split layout must
# give the same for every case that reaches the model.
CASES: dict[str, tuple[str, dict[str, Any], int, str]] = {
    "invalid_json": ("total", {"content": b'{"item": '}, 400, "invalid_json"),
    "too_large_body": ("double", {"content": b"[" + b"1," * 3000 + b"1]"}, 413, "body_too_large"),
    "too_many_rows": ("double", {"json": [1, 2, 3, 4, 5]}, 413, "too_many_rows"),
    "media_type": ("double", {"content": b"1,2", "headers": {"content-type": "text/csv"}}, 415,
                   "unsupported_media_type"),
    "invalid_fields": ("total", {"json": {"qty": "lots"}}, 422, "validation_error"),
    "model_raised": ("raw", {"json": ["a"]}, 500, "internal_error"),
    "no_signature": ("misspelt", {"json": [1]}, 500, "signature_error"),
    "http_exception": ("conflict", {"json": 7}, 409, "http_error"),
    "user_404": ("ticket", {"json": 3}, 404, "http_error"),
    "runner_not_started": ("ghost", {"json": [1]}, 503, "not_ready"),
}
REACHES_THE_RUNNER = ["too_many_rows", "model_raised", "no_signature"]


def error_of(response: httpx.Response, status: int, kind: str) -> ErrorDetail:
    """The response's error, after checking it is exactly an `ErrorBody` of this status and type."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    detail = ErrorBody.model_validate_json(response.content).error  # extra keys are refused too
    assert detail.type == kind, response.text
    assert detail.message
    if status == 500:
        assert detail.id and len(detail.id) == 12 and detail.traceback is None
    else:
        assert detail.id is None
    if status == 503:
        assert int(response.headers["retry-after"]) >= 1
    return detail


def call(url: str, api: str, request: dict[str, Any]) -> httpx.Response:
    options = dict(request)
    if "content" in options:
        options.setdefault("headers", {"content-type": "application/json"})
    return httpx.post(f"{url}/{api}", timeout=30, **options)


def flood(url: str, api: str, n: int = 24) -> list[httpx.Response]:
    """`n` one-row requests at once (more rows than the queue holds)."""

    async def send_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*(client.post(f"{url}/{api}", json=[i]) for i in range(n)))

    return asyncio.run(send_all())


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServerProcess]]:
    root = tmp_path_factory.mktemp("errors")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NBENTO_HOME", str(root / "home"))
        save_scaler("scaler", factor=2.0, batch_delay_s=0.2)
        write_service(root / "svc", SERVICE)
        config = root / "config.yaml"
        config.write_text(CONFIG)
        common = ("--config", str(config))
        with running_server(root / "svc", *common) as single, \
                running_server(root / "svc", "--runner", "scaler", *common) as runner_proc:
            runner_map = json.dumps({"scaler": runner_proc.url})
            with running_server(root / "svc", "--runner-map", runner_map, *common) as split:
                yield {"single": single, "runner": runner_proc, "split": split}


def test_every_api_server_error_is_the_one_body(servers: dict[str, ServerProcess]) -> None:
    url = servers["single"].url
    details = {
        name: error_of(call(url, api, request), status, kind)
        for name, (api, request, status, kind) in CASES.items()
    }
    assert details["invalid_fields"].field == "order.item"
    assert [(f.field, f.message) for f in details["invalid_fields"].fields] == [
        ("order.item", "Field required"),
        ("order.qty", "Input should be a valid integer, unable to parse string as an integer"),
    ]
    assert details["media_type"].field == "xs" and "text/csv" in details["media_type"].message
    assert "max_body_bytes" in details["too_large_body"].message
    assert "max_queue_rows=4" in details["too_many_rows"].message
    assert "API 'raw' raised TypeError" in details["model_raised"].message  # not the model's words
    assert details["http_exception"].message == "order 7 exists"
    assert json.loads(details["user_404"].message) == {"ticket": 3, "problem": "no such ticket"}
    assert call(url, "conflict", {"json": 7}).headers["x-order"] == "7"
    assert "runner 'ghost' is not running" in details["runner_not_started"].message

    unknown = error_of(httpx.post(f"{url}/nope", json=[1]), 404, "not_found")
    assert "no route POST /nope" in unknown.message and "POST /double" in unknown.message
    error_of(httpx.get(f"{url}/nope/deeper"), 404, "not_found")
    wrong = httpx.get(f"{url}/double")
    assert error_of(wrong, 405, "method_not_allowed") and wrong.headers["allow"] == "POST"
    wrong = httpx.post(f"{url}/livez")  # FastAPI's own route answers 405 through the same body
    assert error_of(wrong, 405, "method_not_allowed") and wrong.headers["allow"] == "GET"

    answers = flood(url, "double")
    assert {r.status_code for r in answers} == {200, 503}, [r.text for r in answers]
    for r in answers:
        if r.status_code == 503:
            assert "queue is full" in error_of(r, 503, "overloaded").message


def test_openapi_error_responses_reference_the_body_the_server_sends(
    servers: dict[str, ServerProcess],
) -> None:
    url = servers["single"].url
    doc = httpx.get(f"{url}/openapi.json").json()
    components = doc["components"]["schemas"]
    assert {"ErrorBody", "ErrorDetail", "FieldMessage"} <= set(components)
    for path, item in doc["paths"].items():
        for responses in (op["responses"] for op in item.values()):
            for status, response in responses.items():
                if status.startswith(("4", "5")):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)
    statuses = set(doc["paths"]["/double"]["post"]["responses"])
    assert statuses == {"200", "400", "405", "413", "415", "422", "500", "503"}
    assert "Retry-After" in doc["paths"]["/double"]["post"]["responses"]["503"]["headers"]
    # real answers validate against the document's own schema (not just our pydantic model)
    validator = jsonschema.Draft202012Validator(
        {"$ref": "#/components/schemas/ErrorBody", "components": doc["components"]}
    )
    for api, request, status, _ in CASES.values():
        r = call(url, api, request)
        assert r.status_code == status
        validator.validate(r.json())
    validator.validate(httpx.get(f"{url}/double").json())
    with pytest.raises(jsonschema.ValidationError):  # the old shape would not pass
        validator.validate({"error": "not_found", "detail": "no route"})


def test_the_runner_server_sends_the_same_body(servers: dict[str, ServerProcess]) -> None:
    url = servers["runner"].url
    body = wire.encode({"args": [[1.0]], "kwargs": {}})
    headers = {"content-type": wire.CONTENT_TYPE}
    assert wire.decode(httpx.post(f"{url}/_runner/predict", content=body, headers=headers).content) == [2.0]

    garbage = httpx.post(f"{url}/_runner/predict", content=b"\xc1not msgpack", headers=headers)
    assert "malformed runner payload" in error_of(garbage, 400, "invalid_body").message
    not_a_call = httpx.post(f"{url}/_runner/predict", content=wire.encode([1]), headers=headers)
    assert '{"args"' in error_of(not_a_call, 400, "invalid_body").message
    rows = wire.encode({"args": [[1, 2, 3, 4, 5]], "kwargs": {}})
    error_of(httpx.post(f"{url}/_runner/predict", content=rows, headers=headers), 413, "too_many_rows")
    missing = httpx.post(f"{url}/_runner/transform", content=body, headers=headers)
    # a method the model does not declare is the caller's mistake: 404, nothing looked up
    detail = error_of(missing, 404, "undeclared_method")
    assert "has no signature 'transform'; it declares: describe, predict" in detail.message
    bad_row = wire.encode({"args": [["a"]], "kwargs": {}})
    crashed = error_of(httpx.post(f"{url}/_runner/predict", content=bad_row, headers=headers), 500, "internal_error")
    # what the model raised stays in the runner's log without --dev (issue 13)
    assert "raised TypeError" in crashed.message and crashed.id in crashed.message
    assert f"error {crashed.id} in runner 'scaler'" in servers["runner"].log()
    error_of(httpx.get(f"{url}/_runner/predict"), 405, "method_not_allowed")
    assert "/_runner/{method}" in error_of(httpx.get(f"{url}/nope"), 404, "not_found").message


def test_a_split_deployment_fails_exactly_like_a_single_one(servers: dict[str, ServerProcess]) -> None:
    single, split = servers["single"].url, servers["split"].url
    for name, (api, request, status, kind) in CASES.items():
        here, there = call(single, api, request), call(split, api, request)
        mine, theirs = error_of(here, status, kind), error_of(there, status, kind)
        assert (mine.field, [f.field for f in mine.fields]) == (theirs.field, [f.field for f in theirs.fields]), name
        if name in REACHES_THE_RUNNER and status != 500:
            assert theirs.message.endswith(mine.message) or mine.message in theirs.message, name
    assert "in API 'raw': RemoteCallError: remote runner 'scaler' failed" in servers["split"].log()
    assert "TypeError" in servers["split"].log()  # the runner's own words reach the API log

    answers = flood(split, "double")
    assert {r.status_code for r in answers} == {200, 503}, [r.text for r in answers]
    for r in answers:
        if r.status_code == 503:
            assert "queue is full" in error_of(r, 503, "overloaded").message

    servers["runner"].stop()
    gone = error_of(call(split, "double", {"json": [1]}), 503, "runner_unreachable")
    assert "is unreachable" in gone.message and "--runner scaler" in gone.message


def test_framework_fallbacks_use_the_one_body(caplog: pytest.LogCaptureFixture) -> None:
    """What no nbento route reaches: FastAPI's own request validation (422) and an exception
    in a route (500), on a bare app with the same handlers, over a real uvicorn."""
    import logging

    app = FastAPI()
    install_error_handlers(app, log=logging.getLogger("tests.fallbacks"))

    @app.get("/items/{n}")
    async def item(n: int) -> dict[str, int]:
        return {"n": n}

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("secret")

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        invalid = error_of(httpx.get(f"{url}/items/seven"), 422, "validation_error")
        assert invalid.field == "path.n" and "integer" in invalid.fields[0].message
        crashed = httpx.get(f"{url}/crash")
        detail = error_of(crashed, 500, "internal_error")
        assert "GET /crash raised RuntimeError" in detail.message and "secret" not in crashed.text
        assert f"error {detail.id} in GET /crash" in caplog.text
    finally:
        server.should_exit = True
        thread.join(10)


def test_the_error_body_is_documented() -> None:
    """docs/apis.md shows the body's keys and every `type` a server can send."""
    from runtime.errors import ERROR_CLASSES

    text = (Path(__file__).resolve().parents[3] / "docs" / "apis.md").read_text()
    for key in ErrorBody.model_json_schema()["$defs"]["ErrorDetail"]["properties"]:
        assert f'"{key}"' in text, key
    assert [code for code in ERROR_CLASSES if f"`{code}`" not in text] == []
