"""In-process hot reload over a real `nbento serve --reload` process: code edits go live without
reloading models, broken edits keep the last good version, a new `latest` model version swaps
that runner only."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.runtime.serving_models import save_scaler
from tests.runtime.serving_support import ServerProcess, running_server, wait_until, write_service

SERVICE = """
from runtime import api, runner

scaler = runner("scaler:latest")
other = runner("other:latest")


@api
def double(xs: list[float]) -> dict:
    return {"out": scaler.predict(xs), "version": 1}
"""


def status(server: ServerProcess) -> dict:
    return httpx.get(f"{server.url}/_nbento/status").json()  # type: ignore[no-any-return]


def loads(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.fixture
def reloading(tmp_path: Path) -> Iterator[tuple[ServerProcess, Path, Path]]:
    load_log = tmp_path / "loads.txt"
    save_scaler("scaler", factor=2.0, load_log=str(load_log))
    save_scaler("other", factor=5.0, load_log=str(tmp_path / "other-loads.txt"))
    path = write_service(tmp_path / "svc", SERVICE)
    with running_server(tmp_path / "svc", "--reload") as server:
        yield server, path, load_log


def edit_and_wait(server: ServerProcess, path: Path, code: str) -> dict:
    before = status(server)["generation"]
    path.write_text(code)
    sha = hashlib.sha256(code.encode()).hexdigest()
    assert wait_until(lambda: status(server)["source_sha256"] == sha, timeout=15), server.log()
    after = status(server)
    assert after["generation"] == before + 1
    return after


def test_edit_goes_live_without_reloading_the_model(
    reloading: tuple[ServerProcess, Path, Path],
) -> None:
    server, path, load_log = reloading
    assert httpx.post(f"{server.url}/double", json=[1]).json() == {"out": [2.0], "version": 1}
    assert loads(load_log) == 1
    new_code = SERVICE.replace('"version": 1', '"version": 2') + (
        "\n\n@api\ndef triple(x: int) -> int:\n    return 3 * x\n"
    )
    after = edit_and_wait(server, path, new_code)
    assert httpx.post(f"{server.url}/double", json=[1]).json() == {"out": [2.0], "version": 2}
    assert httpx.post(f"{server.url}/triple", json=4).json() == 12  # a new route appears
    assert "/triple" in httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert loads(load_log) == 1  # the model stayed loaded
    assert after["last_error"] is None
    assert isinstance(after["last_reload_ms"], float) and after["last_reload_ms"] > 0
    # removing an API removes its route
    edit_and_wait(server, path, SERVICE)
    assert httpx.post(f"{server.url}/triple", json=4).status_code == 404


def test_broken_edit_keeps_last_good_version_and_reports_the_error(
    reloading: tuple[ServerProcess, Path, Path],
) -> None:
    server, path, _ = reloading
    good = status(server)
    path.write_text(SERVICE + "\n\nvalue = undefined_name + 1\n")
    assert wait_until(lambda: status(server)["last_error"] is not None, timeout=15), server.log()
    broken = status(server)
    assert broken["last_error"] == {
        "message": "NameError: name 'undefined_name' is not defined",
        "file": str(path.resolve()),
        "line": SERVICE.count("\n") + 3,
    }
    assert broken["generation"] == good["generation"]
    assert broken["source_sha256"] == good["source_sha256"]
    assert httpx.post(f"{server.url}/double", json=[3]).json() == {"out": [6.0], "version": 1}
    # a syntax error is reported the same way
    path.write_text(SERVICE + "\ndef broken(:\n")
    assert wait_until(
        lambda: (status(server)["last_error"] or {}).get("message", "").startswith("SyntaxError"),
        timeout=15,
    ), server.log()
    # fixing the file clears the error
    after = edit_and_wait(server, path, SERVICE.replace('"version": 1', '"version": 3'))
    assert after["last_error"] is None
    assert httpx.post(f"{server.url}/double", json=[3]).json() == {"out": [6.0], "version": 3}


def test_a_reload_on_request_answers_once_live_and_the_watcher_does_not_repeat_it(
    reloading: tuple[ServerProcess, Path, Path], tmp_path: Path,
) -> None:
    """What the kernel does after writing the service: POST /_nbento/reload answers when the
    new code serves (or with the attempt's error); the file watcher's event for the same write
    then reloads nothing."""
    server, path, _ = reloading
    before = status(server)["generation"]
    code = SERVICE.replace('"version": 1', '"version": 4')
    path.write_text(code)
    answer = httpx.post(f"{server.url}/_nbento/reload", timeout=30).json()
    assert answer["source_sha256"] == hashlib.sha256(code.encode()).hexdigest(), answer
    assert answer["last_error"] is None and answer["generation"] == before + 1, answer
    assert httpx.post(f"{server.url}/double", json=[1]).json()["version"] == 4  # live already
    time.sleep(1.0)  # the watcher has seen the write by now (10-150 ms): same bytes, no reload
    assert status(server)["generation"] == before + 1, server.log()
    again = httpx.post(f"{server.url}/_nbento/reload", timeout=30).json()
    assert again["generation"] == before + 1  # nothing changed: nothing reloaded

    path.write_text(SERVICE + "\ndef broken(:\n")
    failed = httpx.post(f"{server.url}/_nbento/reload", timeout=30).json()
    assert failed["last_error"]["message"].startswith("SyntaxError"), failed
    assert failed["source_sha256"] == answer["source_sha256"]  # the last good code serves
    assert httpx.post(f"{server.url}/double", json=[1]).json()["version"] == 4

    # only a development server (--reload) has the route
    path.write_text(code)
    with running_server(tmp_path / "svc") as fixed:
        assert httpx.post(f"{fixed.url}/_nbento/reload", timeout=30).status_code == 404


def test_new_latest_model_version_reloads_that_runner_only(
    reloading: tuple[ServerProcess, Path, Path], tmp_path: Path,
) -> None:
    server, _, load_log = reloading
    first = status(server)["runners"]
    new_tag = save_scaler("scaler", factor=10.0, load_log=str(load_log))
    assert wait_until(
        lambda: status(server)["runners"]["scaler"]["tag"] == new_tag, timeout=15
    ), server.log()
    assert httpx.post(f"{server.url}/double", json=[1]).json() == {"out": [10.0], "version": 1}
    assert loads(load_log) == 2
    assert loads(tmp_path / "other-loads.txt") == 1  # the other runner was kept
    assert status(server)["runners"]["other"]["tag"] == first["other"]["tag"]


def test_a_model_version_that_fails_to_load_keeps_the_old_generation_serving(
    reloading: tuple[ServerProcess, Path, Path],
) -> None:
    """The edit pins a new version of `scaler` that raises while loading: the reload fails,
    and the old generation (code and its loaded `scaler` runner) keeps answering."""
    server, path, _ = reloading
    good = status(server)
    bad_tag = save_scaler("scaler", factor=10.0, fail_load="weights file is corrupt")
    path.write_text(SERVICE.replace('runner("scaler:latest")', f'runner("{bad_tag}")')
                    .replace('"version": 1', '"version": 2'))
    assert wait_until(
        lambda: "weights file is corrupt" in str(status(server)["last_error"]), timeout=30
    ), server.log()
    failed = status(server)
    assert failed["generation"] == good["generation"]
    assert failed["source_sha256"] == good["source_sha256"]
    assert failed["runners"]["scaler"]["tag"] == good["runners"]["scaler"]["tag"] != bad_tag
    for x in (1.0, 3.0, 7.0):  # the old code on the old model, each time
        answer = httpx.post(f"{server.url}/double", json=[x])
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"out": [2.0 * x], "version": 1}
    assert httpx.get(f"{server.url}/readyz").status_code == 200


def test_reload_calls_regenerate_first_and_keeps_runners(tmp_path: Path) -> None:
    """The notebook plugin's `ServiceSource.regenerate` rebuilds service.py before each import
    (in-process: the host and the real runner pool, no HTTP)."""
    import asyncio

    from runtime.service.handles import set_backend_resolver
    from runtime.service.sources import ServiceSource
    from runtime.serving.host import ServiceHost
    from runtime.serving.runners import RunnerPool
    from runtime.settings import load_config

    load_log = tmp_path / "loads.txt"
    save_scaler("scaler", load_log=str(load_log))
    save_scaler("other")
    origin = tmp_path / "origin.txt"  # stands in for the notebook
    origin.write_text("1")
    target = write_service(tmp_path / "svc", SERVICE)

    def regenerate() -> None:
        target.write_text(SERVICE.replace('"version": 1', f'"version": {origin.read_text()}'))

    source = ServiceSource(path=target, watch=[origin], regenerate=regenerate, origin=origin)
    config = load_config()
    pool = RunnerPool(config)
    previous = set_backend_resolver(pool.resolver)

    async def scenario() -> list[object]:
        host = ServiceHost(source, config, pool)
        host.load_initial()
        await host.start()
        while not host.ready:
            await asyncio.sleep(0.01)
        first = await host.endpoints["/double"].call({"xs": [1.0]})
        origin.write_text("7")
        ok = await host.reload()
        second = await host.endpoints["/double"].call({"xs": [1.0]})
        status = host.status()
        await host.aclose(5)
        return [first, ok, second, status["generation"], status["last_error"]]

    try:
        first, ok, second, generation, error = asyncio.run(scenario())
    finally:
        set_backend_resolver(previous)
    assert first == {"out": [2.0], "version": 1}
    assert ok is True and error is None and generation == 2
    assert second == {"out": [2.0], "version": 7}
    assert loads(load_log) == 1
