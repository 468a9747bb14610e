"""The HTTP side of untrusted input, each attack reproduced against a real `nbento serve` on
127.0.0.1 (issue 13): the API token, localhost-only Host/Origin, form bodies, head and body
limits and timeouts, slow clients, image bombs, nested JSON and huge `.npy` shapes, the runner
route's body cap and hidden exception texts. Each attack now gets a clean 4xx (or a closed
connection) while the server keeps answering."""

from __future__ import annotations

import io
import json
import re
import socket
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from runtime.serving import wire
from tests.runtime.serving_models import save_scaler
from tests.runtime.serving_support import ServerProcess, running_server, write_service

TOKEN = "s3cret-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
READ_TIMEOUT_S = 2.0

SERVICE = """
from __future__ import annotations

import numpy as np
from PIL import Image

from runtime import api, runner
from runtime.service.schema import NDArray

scaler = runner("scaler:latest")


@api
def double(xs: list[float]) -> list[float]:
    return scaler.predict(xs)


@api
def arr(x: NDArray[np.float32]) -> dict:
    return {"shape": list(x.shape)}


@api
def size(image: Image.Image) -> dict:
    return {"size": list(image.size)}
"""

CONFIG = f"""
max_body_bytes: 65536
http:
  read_timeout_s: {READ_TIMEOUT_S}
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("security")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NBENTO_HOME", str(root / "home"))
        save_scaler("scaler", factor=2.0)
        write_service(root / "svc", SERVICE)
        (root / "config.yaml").write_text(CONFIG)
        yield root


@pytest.fixture(scope="module")
def server(root: Path) -> Iterator[ServerProcess]:
    env = {"NBENTO_HOME": str(root / "home"), "NBENTO_API_TOKEN": TOKEN}
    with running_server(root / "svc", "--config", str(root / "config.yaml"), env=env) as proc:
        yield proc


def post(server: ServerProcess, api: str, **kwargs: object) -> httpx.Response:
    headers = {**AUTH, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
    return httpx.post(f"{server.url}/{api}", timeout=30, headers=headers, **kwargs)  # type: ignore[arg-type]


def assert_alive(server: ServerProcess) -> None:
    assert server.proc.poll() is None, server.log()
    r = post(server, "double", json=[1, 2])
    assert (r.status_code, r.json()) == (200, [2.0, 4.0]), r.text


def error_type(r: httpx.Response) -> str:
    return str(r.json()["error"]["type"])


def host_port(server: ServerProcess) -> tuple[str, int]:
    host, _, port = server.url.removeprefix("http://").rpartition(":")
    return host, int(port)


# -- the API token -----------------------------------------------------------------------------


def test_every_route_but_the_probes_needs_the_token(server: ServerProcess) -> None:
    url = server.url
    missing = httpx.post(f"{url}/double", json=[1])
    assert missing.status_code == 401 and error_type(missing) == "unauthorized"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert "Authorization: Bearer" in missing.json()["error"]["message"]
    wrong = httpx.post(f"{url}/double", json=[1], headers={"Authorization": f"Bearer {TOKEN}x"})
    assert wrong.status_code == 401
    basic = httpx.post(f"{url}/double", json=[1], headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status_code == 401
    for path in ("/metrics", "/docs", "/openapi.json", "/_nbento/status", "/nope"):
        assert httpx.get(f"{url}{path}").status_code == 401, path  # unknown routes too
        assert httpx.get(f"{url}{path}", headers=AUTH).status_code in (200, 404), path
    assert httpx.get(f"{url}/livez").status_code == 200
    assert httpx.get(f"{url}/readyz").status_code == 200
    assert_alive(server)
    assert TOKEN not in server.log()  # never logged, not even the wrong one


def test_public_metrics_and_docs_by_setting(root: Path, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(f"  {TOKEN}\n")  # a mounted Secret, with a trailing newline
    env = {"NBENTO_HOME": str(root / "home"), "NBENTO_API_TOKEN_FILE": str(token_file)}
    sets = ("--set", "http.public_metrics=true", "--set", "http.public_docs=true")
    with running_server(root / "svc", *sets, env=env) as proc:
        assert httpx.get(f"{proc.url}/metrics").status_code == 200
        assert httpx.get(f"{proc.url}/openapi.json").status_code == 200
        assert httpx.get(f"{proc.url}/docs").status_code == 200
        assert httpx.get(f"{proc.url}/_nbento/status").status_code == 401
        assert httpx.post(f"{proc.url}/double", json=[1]).status_code == 401
        assert httpx.post(f"{proc.url}/double", json=[1], headers=AUTH).json() == [2.0]
        # public docs of a server that wants the token: /docs gets an Authorize button and
        # its Try it out sends the token (the APIs declare the bearer scheme; probes do not)
        doc = httpx.get(f"{proc.url}/openapi.json").json()
        scheme = doc["components"]["securitySchemes"]["apiToken"]
        assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
        assert doc["paths"]["/double"]["post"]["security"] == [{"apiToken": []}]
        assert "401" in doc["paths"]["/double"]["post"]["responses"]
        assert "security" not in doc["paths"]["/livez"]["get"]
    with running_server(root / "svc", "--set", "http.public_docs=true",
                        env={"NBENTO_HOME": str(root / "home")}) as open_server:
        doc = httpx.get(f"{open_server.url}/openapi.json").json()
        assert "securitySchemes" not in doc.get("components", {})
        assert "security" not in doc["paths"]["/double"]["post"]


def test_a_bad_token_file_stops_the_start(root: Path, tmp_path: Path) -> None:
    env = {"NBENTO_HOME": str(root / "home"), "NBENTO_API_TOKEN_FILE": str(tmp_path / "missing")}
    with (
        pytest.raises(RuntimeError, match=r"NBENTO_API_TOKEN_FILE=.*cannot read"),
        running_server(root / "svc", env=env, timeout=60),
    ):
        pass


def test_the_panel_call_sends_the_token(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    from jupyter_ext.actions.dev_servers import api_forms, call_api

    monkeypatch.delenv("NBENTO_API_TOKEN", raising=False)
    assert call_api(server.url, "double", [1])["status"] == 401
    monkeypatch.setenv("NBENTO_API_TOKEN", TOKEN)
    answer = call_api(server.url, "double", [1, 2])
    assert (answer["status"], answer["body"]) == (200, [2.0, 4.0])
    assert {form["name"] for form in api_forms(server.url)} == {"double", "arr", "size"}


# -- local sites only --------------------------------------------------------------------------


def test_foreign_host_and_origin_are_refused_on_a_loopback_bind(server: ServerProcess) -> None:
    _, port = host_port(server)
    for host in ("rebind.evil.example", f"rebind.evil.example:{port}", "10.0.0.8", ""):
        r = post(server, "double", json=[1], headers={"Host": host})
        assert r.status_code == 403 and error_type(r) == "forbidden", host
        assert "http.allowed_hosts" in r.json()["error"]["message"]
    for host in (f"localhost:{port}", "127.0.0.1", f"127.1.2.3:{port}", f"[::1]:{port}"):
        assert post(server, "double", json=[1], headers={"Host": host}).status_code == 200, host
    for origin in ("https://evil.example", "null", "http://localhost.evil.example", "file://"):
        r = post(server, "double", json=[1], headers={"Origin": origin})
        assert r.status_code == 403 and "http.allowed_origins" in r.text, origin
    for origin in (f"http://127.0.0.1:{port}", "http://localhost:5173", "https://[::1]:8888"):
        assert post(server, "double", json=[1], headers={"Origin": origin}).status_code == 200
    # the curl of the report: a form post under a rebinding name
    r = post(server, "double", files={"xs": (None, "[1]")}, headers={"Host": "rebind.evil.example"})
    assert r.status_code == 403
    assert_alive(server)


def test_allowed_hosts_and_origins_are_configurable(root: Path) -> None:
    sets = (
        "--set", "http.allowed_hosts=['api.example.com', '*.corp.example']",
        "--set", "http.allowed_origins=['https://app.example.com']",
    )
    with running_server(root / "svc", *sets, env={"NBENTO_HOME": str(root / "home")}) as proc:
        def status(**headers: str) -> int:
            return httpx.post(f"{proc.url}/double", json=[1], headers=headers).status_code

        assert status(Host="api.example.com") == 200
        assert status(Host="gpu.corp.example:3000") == 200
        assert status(Host="corp.example.evil") == 403
        assert status(Origin="https://app.example.com") == 200
        assert status(Origin="https://app.example.com.evil") == 403


# -- form bodies are not JSON ------------------------------------------------------------------


def test_form_bodies_are_not_read_as_json(server: ServerProcess) -> None:
    r = post(server, "double", content=b"[1, 2]",
             headers={"Content-Type": "application/x-www-form-urlencoded"})  # curl -d
    assert r.status_code == 415 and error_type(r) == "unsupported_media_type"
    assert "application/json" in r.json()["error"]["message"]
    r = post(server, "double", files={"xs": (None, "[1, 2]")})  # multipart, no file
    assert r.status_code == 415
    assert post(server, "double", content=b"[1, 2]").json() == [2.0, 4.0]  # no type: JSON


# -- the HTTP head ------------------------------------------------------------------------------


def raw_exchange(server: ServerProcess, chunks: Iterator[bytes], timeout: float = 30.0) -> bytes:
    """Send `chunks` until the server stops reading (it answered and closed), then return what it
    answered."""
    host, port = host_port(server)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except OSError:  # refused mid-way: the server closed the connection
            pass
        answer = b""
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
        except OSError:
            pass
    return answer


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1])


def test_a_million_headers_are_refused(server: ServerProcess) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"POST /double HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        line = b"X-A: b\r\n"
        for _ in range(1000):  # 1000 x 1000 headers, 7.6 MB
            yield line * 1000
        yield b"Content-Length: 3\r\n\r\n[1]"

    answer = raw_exchange(server, chunks())
    assert status_of(answer) == 431, answer[:300]
    assert b"header" in answer
    assert_alive(server)


def test_one_64_mib_header_is_refused(server: ServerProcess) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"GET /livez HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
        for _ in range(64):
            yield b"a" * (1 << 20)
        yield b"\r\n\r\n"

    answer = raw_exchange(server, chunks())
    assert status_of(answer) == 431 and b"http.max_header_bytes" in answer
    assert_alive(server)


def test_half_sent_headers_and_bodies_are_closed_within_the_timeout(server: ServerProcess) -> None:
    host, port = host_port(server)
    heads = {
        "headers": b"POST /double HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le",
        "body": (
            f"POST /double HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n[1, 2,"
        ).encode(),
        "nothing": b"",
    }
    for what, head in heads.items():
        started = time.monotonic()
        with socket.create_connection((host, port), timeout=READ_TIMEOUT_S + 10) as sock:
            sock.sendall(head)
            answer = b""
            while data := sock.recv(65536):
                answer += data
        elapsed = time.monotonic() - started
        assert READ_TIMEOUT_S - 0.5 < elapsed < READ_TIMEOUT_S + 5, (what, elapsed)
        if what == "nothing":
            assert answer == b""  # an idle connection is just closed
        else:
            assert status_of(answer) == 408, (what, answer)
            assert b"http.read_timeout_s" in answer
    assert_alive(server)


def test_300_slow_clients_do_not_stop_another_client(server: ServerProcess) -> None:
    host, port = host_port(server)
    head = b"POST /double HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 1000
    slow = [socket.create_connection((host, port), timeout=5) for _ in range(300)]
    try:
        served = []
        for step in range(6):  # about 1.2 s of trickling, one byte per client per round
            for sock in slow:
                try:
                    sock.sendall(head[step:step + 1])
                except OSError:  # already cut off by the head timeout
                    pass
            started = time.monotonic()
            r = post(server, "double", json=[step])
            served.append((r.status_code, time.monotonic() - started))
            time.sleep(0.2)
        assert all(status == 200 for status, _ in served), served
        assert max(seconds for _, seconds in served) < 2.0, served
        # and the trickling clients are cut off by the head timeout, not kept forever
        deadline = time.monotonic() + READ_TIMEOUT_S + 10
        closed = 0
        for sock in slow:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                continue  # still open: counted as not closed
            except OSError:  # reset: closed
                answer = b""
            closed += answer == b"" or answer.startswith(b"HTTP/1.1 408")
        assert closed == len(slow)
    finally:
        for sock in slow:
            sock.close()
    assert_alive(server)


# -- request-shaped findings -------------------------------------------------------------------


def png_declaring(width: int, height: int) -> bytes:
    """A small valid PNG whose header declares `width` x `height` (a decompression bomb's
    shape without its cost to build: the IDAT holds only a few rows)."""
    image = io.BytesIO()
    Image.new("L", (8, 8)).save(image, format="PNG")
    data = bytearray(image.getvalue())
    ihdr = 8 + 8  # signature, then the IHDR chunk's length and type
    data[ihdr:ihdr + 8] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[12:ihdr + 13]))
    data[ihdr + 13:ihdr + 17] = struct.pack(">I", crc)
    return bytes(data)


def test_image_decompression_bombs_get_413(server: ServerProcess) -> None:
    for width, height in ((13000, 13000), (20000, 20000)):  # 169 and 400 megapixels
        bomb = png_declaring(width, height)
        assert len(bomb) < 1000
        r = post(server, "size", content=bomb, headers={"Content-Type": "image/png"})
        assert r.status_code == 413 and error_type(r) == "body_too_large", r.text
        assert "pixels" in r.json()["error"]["message"]
        r = post(server, "size", files={"image": ("bomb.png", bomb, "image/png")})
        assert r.status_code == 413, r.text
    fine = io.BytesIO()
    Image.new("RGB", (64, 32)).save(fine, format="PNG")
    r = post(server, "size", content=fine.getvalue(), headers={"Content-Type": "image/png"})
    assert r.json() == {"size": [64, 32]}
    assert_alive(server)


def test_deeply_nested_json_to_an_ndarray_is_a_4xx(server: ServerProcess) -> None:
    for depth in (40, 100, 5000, 30000):
        body = b"[" * depth + b"1" + b"]" * depth
        for content in (body, b'{"x": ' + body + b"}"):
            r = post(server, "arr", content=content, headers={"Content-Type": "application/json"})
            assert r.status_code in (400, 422), (depth, r.status_code, r.text[:300])
    ok = post(server, "arr", json=[[[1.0]]])
    assert ok.json() == {"shape": [1, 1, 1]}
    assert_alive(server)


def test_an_npy_declaring_a_trillion_elements_is_a_400(server: ServerProcess) -> None:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**12,)}
    )
    r = post(server, "arr", content=header.getvalue() + b"\0" * 64,
             headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 400 and error_type(r) == "invalid_body", r.text
    assert "declares shape (1000000000000,)" in r.json()["error"]["message"]
    fine = io.BytesIO()
    np.save(fine, np.ones((2, 3), dtype=np.float32))
    r = post(server, "arr", content=fine.getvalue(), headers={"Content-Type": "application/x-npy"})
    assert r.json() == {"shape": [2, 3]}
    assert_alive(server)


def test_status_and_readiness_show_no_internals_without_dev(server: ServerProcess) -> None:
    status = httpx.get(f"{server.url}/_nbento/status", headers=AUTH).json()
    # the pid as a number of its own (its digits can occur inside a float such as a load time)
    pid_alone = re.compile(rf"(?<![\d.]){server.pid}(?![\d.])")
    assert "pid" not in status and not pid_alone.search(json.dumps(status)), status
    assert pid_alone.search(json.dumps({"pid": server.pid}))
    assert not pid_alone.search(json.dumps({"load_seconds": float(f"0.0015{server.pid}9")}))
    ready = httpx.get(f"{server.url}/readyz").json()
    assert ready == {"ready": True, "runners": {"scaler": {"loaded": True}}}


def test_runner_route_caps_the_body_hides_exception_texts_and_needs_the_token(root: Path) -> None:
    env = {"NBENTO_HOME": str(root / "home"), "NBENTO_API_TOKEN": TOKEN}
    config = ("--config", str(root / "config.yaml"))  # max_body_bytes 64 KiB: runner 256 KiB
    with running_server(root / "svc", "--runner", "scaler", *config, env=env) as runner_proc:
        url = f"{runner_proc.url}/_runner"
        headers = {**AUTH, "Content-Type": wire.CONTENT_TYPE}
        good = wire.encode({"args": [[1.0, 2.0]], "kwargs": {}})
        assert httpx.post(f"{url}/predict", content=good).status_code == 401
        r = httpx.post(f"{url}/predict", content=good, headers=headers)
        assert r.status_code == 200 and list(wire.decode(r.content)) == [2.0, 4.0]

        big = wire.encode({"args": [list(range(200_000))], "kwargs": {}})
        assert len(big) > 4 * 65536
        r = httpx.post(f"{url}/predict", content=big, headers=headers)
        assert r.status_code == 413 and error_type(r) == "body_too_large", r.text

        def chunked() -> Iterator[bytes]:  # no Content-Length: refused as it streams
            for _ in range(64):
                yield b"\0" * 65536

        r = httpx.post(f"{url}/predict", content=chunked(), headers=headers)
        assert r.status_code == 413

        r = httpx.post(f"{url}/describe", content=wire.encode({"args": [1, 2], "kwargs": {}}),
                       headers=headers)
        assert r.status_code == 500
        error = r.json()["error"]
        assert "TypeError" in error["message"] and "positional" not in error["message"]
        assert error["id"] and error["id"] in runner_proc.log()
        assert httpx.get(f"{runner_proc.url}/readyz").json() == {
            "ready": True, "runners": {"scaler": {"loaded": True}},
        }
        assert httpx.post(f"{url}/predict", content=good, headers=headers).status_code == 200
