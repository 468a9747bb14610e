"""The HTTP app over real HTTP: a real `nbento serve` subprocess on a free 127.0.0.1 port.

One server (module scope) answers the typed-input, error-body, batching and metrics tests;
the flood and --dev tests start their own, with their own settings."""

from __future__ import annotations

import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.runtime.serving_models import save_scaler
from tests.runtime.serving_support import (
    ServerProcess,
    metric_value,
    running_server,
    wait_until,
    write_service,
)

SERVICE = """
from __future__ import annotations

import numpy as np
from PIL import Image
from pydantic import BaseModel

from runtime import api, runner
from runtime.service.schema import NDArray, UploadedFile

scaler = runner("scaler:latest")


class Order(BaseModel):
    item: str
    qty: int


@api
def double(xs: list[float]) -> list[float]:
    \"\"\"Each number times two, through the batched runner.\"\"\"
    return scaler.predict(xs)


@api
async def adouble(xs: list[float]) -> list[float]:
    return await scaler.predict.async_run(xs)


@api
def total(order: Order) -> dict:
    return {"item": order.item, "total": order.qty * 3}


@api
def arr(x: NDArray[np.float32, (-1, 2)]) -> dict:
    return {"sum": float(x.sum()), "shape": list(x.shape), "dtype": str(x.dtype)}


@api
def shout(text: str) -> str:
    return text.upper()


@api
def size(image: Image.Image) -> dict:
    return {"size": list(image.size), "mode": image.mode}


@api
def upload(doc: UploadedFile, note: str = "") -> dict:
    return {"name": doc.filename, "type": doc.content_type, "size": len(doc.data), "note": note}


@api
def pair(a: int, words: list[str], scale: float = 0.5) -> dict:
    return {"a": a * scale, "words": words}


@api
def boom(x: int) -> int:
    raise ValueError("secret detail " + str(x))


@api(batchable=True, max_batch_size=8, max_latency_ms=5)
def square(rows: list[int]) -> list[int]:
    return [r * r for r in rows]
"""

CONFIG = """
max_body_bytes: 65536
runners:
  scaler:
    batching: {max_batch_size: 8, max_latency_ms: 5}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("app")
    home = root / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NBENTO_HOME", str(home))
        save_scaler("scaler", factor=2.0, batch_delay_s=0.01)
        write_service(root / "svc", SERVICE)
        (root / "config.yaml").write_text(CONFIG)
        with running_server(root / "svc", "--config", str(root / "config.yaml")) as proc:
            yield proc


def post(server: ServerProcess, api: str, **kwargs: object) -> httpx.Response:
    return httpx.post(f"{server.url}/{api}", timeout=30, **kwargs)  # type: ignore[arg-type]


def test_typed_json_inputs(server: ServerProcess) -> None:
    r = post(server, "double", json=[1, 2.5])
    assert (r.status_code, r.json()) == (200, [2.0, 5.0])
    assert post(server, "adouble", json={"xs": [3]}).json() == [6.0]
    assert post(server, "total", json={"item": "tea", "qty": 2}).json() == {"item": "tea", "total": 6}
    r = post(server, "pair", json={"a": 4, "words": ["x", "y"]})
    assert r.json() == {"a": 2.0, "words": ["x", "y"]}


def test_ndarray_as_json_and_npy(server: ServerProcess) -> None:
    r = post(server, "arr", json=[[1, 2], [3, 4]])
    assert r.json() == {"sum": 10.0, "shape": [2, 2], "dtype": "float32"}
    buf = io.BytesIO()
    np.save(buf, np.arange(6, dtype=np.float32).reshape(3, 2))
    r = post(server, "arr", content=buf.getvalue(), headers={"content-type": "application/octet-stream"})
    assert r.json() == {"sum": 15.0, "shape": [3, 2], "dtype": "float32"}
    r = post(server, "arr", json=[[1, 2, 3]])
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "x"
    assert "(1, 3)" in r.json()["error"]["fields"][0]["message"]
    buf = io.BytesIO()
    np.save(buf, np.array([["a", "b"]]))
    r = post(server, "arr", content=buf.getvalue(), headers={"content-type": "application/octet-stream"})
    assert r.status_code == 422 and "cannot be converted to float32" in r.text


def test_text_and_image_inputs(server: ServerProcess) -> None:
    r = post(server, "shout", content="quiet please", headers={"content-type": "text/plain"})
    assert (r.status_code, r.text) == (200, "QUIET PLEASE")
    assert r.headers["content-type"].startswith("text/plain")
    png = io.BytesIO()
    Image.new("RGB", (7, 5), "blue").save(png, format="PNG")
    r = post(server, "size", files={"photo": ("p.png", png.getvalue(), "image/png")})
    assert r.json() == {"size": [7, 5], "mode": "RGB"}
    r = post(server, "size", content=png.getvalue(), headers={"content-type": "image/png"})
    assert r.json() == {"size": [7, 5], "mode": "RGB"}
    r = post(server, "size", files={"photo": ("p.png", b"not an image", "image/png")})
    assert r.status_code == 422 and r.json()["error"]["field"] == "image"


def test_file_upload_with_form_fields(server: ServerProcess) -> None:
    data = bytes(range(256)) * 10
    r = post(server, "upload", files={"doc": ("blob.bin", data, "application/x-thing")},
             data={"note": "hello"})
    assert r.json() == {"name": "blob.bin", "type": "application/x-thing", "size": 2560, "note": "hello"}
    r = post(server, "upload", files={"note": (None, "no file")})  # multipart, no file part
    assert r.status_code == 422 and r.json()["error"]["field"] == "doc"
    r = post(server, "upload", json={"note": "x"})
    assert r.status_code == 415 and "multipart/form-data" in r.text


def test_bad_input_bodies_name_the_field(server: ServerProcess) -> None:
    r = post(server, "total", json={"item": "tea", "qty": "lots"})
    assert r.status_code == 422
    problem = "Input should be a valid integer, unable to parse string as an integer"
    assert r.json() == {"error": {
        "type": "validation_error",
        "message": f"order.qty: {problem}",
        "field": "order.qty",
        "fields": [{"field": "order.qty", "message": problem}],
        "id": None,
        "traceback": None,
    }}
    r = post(server, "total", json={"qty": "lots"})
    assert r.status_code == 422 and r.json()["error"]["fields"] == [
        {"field": "order.item", "message": "Field required"},
        {"field": "order.qty", "message": problem},
    ]
    r = post(server, "total", content=b'{"item": ', headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_json"
    r = post(server, "pair", json={"a": 1})
    assert r.status_code == 422 and r.json()["error"]["field"] == "words"
    r = post(server, "double", content=b"1,2", headers={"content-type": "text/csv"})
    assert r.status_code == 415 and r.json()["error"]["field"] == "xs"


def test_body_limit_by_header_and_by_stream(server: ServerProcess) -> None:
    big = b"[" + b"1," * 40000 + b"1]"  # ~80 KB > 64 KiB
    r = post(server, "double", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["type"] == "body_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: chunked transfer encoding
        yield b"["
        for _ in range(100):
            yield b"1," * 400
        yield b"1]"

    r = post(server, "double", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "65536" in r.json()["error"]["message"]
    assert post(server, "double", json=[1]).status_code == 200  # still serving


def test_unknown_route_and_wrong_method(server: ServerProcess) -> None:
    r = httpx.post(f"{server.url}/nope", json=[1])
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "not_found" and "POST /double" in r.json()["error"]["message"]
    r = httpx.get(f"{server.url}/double")
    assert r.status_code == 405 and r.headers["allow"] == "POST"


def test_user_exception_is_500_with_error_id_and_logged_traceback(server: ServerProcess) -> None:
    r = post(server, "boom", json=7)
    assert r.status_code == 500
    error = r.json()["error"]
    assert error["type"] == "internal_error" and len(error["id"]) == 12
    assert error["id"] in error["message"] and "API 'boom' raised ValueError" in error["message"]
    assert error["traceback"] is None and "secret detail" not in r.text  # only with --dev
    log = server.log()
    assert f"error {error['id']} in API 'boom'" in log
    assert "ValueError: secret detail 7" in log and "Traceback" in log


def test_rows_split_and_reassembled_in_order(server: ServerProcess) -> None:
    for n in (1, 5, 100):
        rows = list(range(n))
        assert post(server, "square", json=rows).json() == [r * r for r in rows]
        assert post(server, "double", json=rows).json() == [2.0 * r for r in rows]
    metrics = httpx.get(f"{server.url}/metrics").text
    labels = {"runner": "scaler", "method": "predict"}
    batches = metric_value(metrics, "nbento_runner_batch_size_count", labels)
    within_8 = metric_value(metrics, "nbento_runner_batch_size_bucket", {**labels, "le": "8.0"})
    assert batches >= 1 + 1 + 13  # 100 rows need at least 13 batches of 8
    assert within_8 == batches  # no batch was larger than max_batch_size


def test_metrics_count_requests_and_batch_sizes_move(server: ServerProcess) -> None:
    labels = {"runner": "scaler", "method": "predict"}
    before = httpx.get(f"{server.url}/metrics").text
    with ThreadPoolExecutor(24) as pool:
        results = list(pool.map(lambda i: post(server, "double", json=[i]), range(48)))
    assert [r.json() for r in results] == [[2.0 * i] for i in range(48)]
    after = httpx.get(f"{server.url}/metrics").text
    rows = metric_value(after, "nbento_runner_batch_size_sum", labels) - metric_value(
        before, "nbento_runner_batch_size_sum", labels
    )
    batches = metric_value(after, "nbento_runner_batch_size_count", labels) - metric_value(
        before, "nbento_runner_batch_size_count", labels
    )
    assert rows == 48
    assert batches < 48  # concurrent single-row requests were batched together
    ok = {"endpoint": "double", "status": "200"}
    assert metric_value(after, "nbento_requests_total", ok) - metric_value(
        before, "nbento_requests_total", ok
    ) == 48
    assert metric_value(after, "nbento_request_duration_seconds_count", {"endpoint": "double"}) >= 48
    assert "nbento_requests_in_progress" in after
    assert "nbento_runner_batch_wait_seconds_bucket" in after
    assert "nbento_runner_batch_compute_seconds_bucket" in after


def test_probes_status_and_openapi(server: ServerProcess) -> None:
    assert httpx.get(f"{server.url}/livez").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    status = httpx.get(f"{server.url}/_nbento/status").json()
    assert set(status) == {  # no pid without --dev (docs/security.md)
        "service", "generation", "source_sha256", "loaded_at", "last_reload_ms", "last_error",
        "runners", "settings", "settings_sources",
    }
    assert status["service"] == "svc" and status["generation"] == 1
    assert status["last_error"] is None
    runner = status["runners"]["scaler"]
    assert runner["loaded"] is True and runner["tag"].startswith("scaler:2")
    doc = httpx.get(f"{server.url}/openapi.json").json()
    assert set(doc["paths"]) == {
        "/double", "/adouble", "/total", "/arr", "/shout", "/size", "/pair", "/boom", "/square",
        "/upload", "/livez", "/readyz", "/metrics",
    }
    total = doc["paths"]["/total"]["post"]
    schema = total["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/Order"}
    assert doc["components"]["schemas"]["Order"]["required"] == ["item", "qty"]
    assert doc["paths"]["/double"]["post"]["summary"].startswith("Each number times two")
    assert "application/octet-stream" in doc["paths"]["/arr"]["post"]["requestBody"]["content"]
    assert "text/plain" in doc["paths"]["/shout"]["post"]["requestBody"]["content"]
    assert httpx.get(f"{server.url}/docs").status_code == 200
    # one access line per request, with method, path, status and latency
    post(server, "total", json={"item": "log-me", "qty": 1})
    # (the line is written just after the answer is sent: give it a moment)
    assert wait_until(lambda: '"POST /total HTTP/1.1" 200' in server.log(), timeout=5)
    assert '"GET /openapi.json HTTP/1.1" 200' in server.log()


FLOOD_CONFIG = """
runners:
  scaler:
    batching: {max_batch_size: 2, max_latency_ms: 1, max_queue_rows: 4}
"""


def test_flood_past_queue_bound_gets_503_then_recovers(tmp_path: Path) -> None:
    save_scaler("scaler", factor=2.0, batch_delay_s=0.2)
    write_service(tmp_path / "svc", SERVICE)
    (tmp_path / "c.yaml").write_text(FLOOD_CONFIG)
    with running_server(tmp_path / "svc", "--config", str(tmp_path / "c.yaml")) as server:
        with ThreadPoolExecutor(40) as pool:
            results = list(pool.map(lambda i: post(server, "adouble", json=[i]), range(40)))
        codes = [r.status_code for r in results]
        assert set(codes) <= {200, 503}, codes
        refused = [r for r in results if r.status_code == 503]
        assert refused and codes.count(200) >= 4
        assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
        assert refused[0].json()["error"]["type"] == "overloaded"
        for i, r in enumerate(results):
            if r.status_code == 200:
                assert r.json() == [2.0 * i]
        assert post(server, "adouble", json=[21]).json() == [42.0]  # answers afterwards
        metrics = httpx.get(f"{server.url}/metrics").text
        assert metric_value(metrics, "nbento_runner_rejected_total", {"runner": "scaler"}) == len(refused)


def test_dev_mode_puts_traceback_in_500_body(tmp_path: Path) -> None:
    save_scaler("scaler")
    write_service(tmp_path / "svc", SERVICE)
    with running_server(tmp_path / "svc", "--dev") as server:
        error = post(server, "boom", json=3).json()["error"]
        status = httpx.get(f"{server.url}/_nbento/status").json()
    assert status["pid"] == server.pid  # the full status is for developers
    assert error["message"] == "ValueError: secret detail 3" and len(error["id"]) == 12
    assert "Traceback" in error["traceback"] and 'raise ValueError("secret detail "' in error["traceback"]
