"""`nbento containerize`: the message without an engine, and (slow) the whole path on a real
dockerd: a local base image, the example Bento built into an image, the container answering
over 127.0.0.1, and nothing left behind."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx
import pytest

from runtime.cli import main
from runtime.export.bento import build_bento
from runtime.export.bento_store import Bento
from runtime.export.containerize import docker_build_command
from tests.runtime.bento_fixtures import (
    copy_example,
    save_support_classifier,
    save_toy_model,
    write_toy_service,
)
from tests.runtime.docker_engine import DockerEngine, base_rootfs_tar, why_no_dockerd


@pytest.fixture
def toy_bento(tmp_path: Path) -> Bento:
    save_toy_model()
    return build_bento(write_toy_service(tmp_path / "svc"))


def test_no_engine_says_so_and_prints_the_docker_build_command(
    toy_bento: Bento,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    code = main(["containerize", str(toy_bento.tag), "--tag", "toy:test"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"no container engine answered at unix://{tmp_path}/no-such.sock" in err
    assert docker_build_command(toy_bento, "toy:test") in err
    assert "Traceback" not in err


def test_docker_build_command_uses_the_bento_as_context(toy_bento: Bento) -> None:
    command = docker_build_command(toy_bento, "toy:1", {"BASE_IMAGE": "localhost/base:1"})
    assert command.startswith("docker build --network host -f ")
    assert f"{toy_bento.path}/env/docker/Dockerfile -t toy:1" in command
    assert command.endswith(f"--build-arg BASE_IMAGE=localhost/base:1 {toy_bento.path}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_container_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    reason = why_no_dockerd()
    if reason:
        pytest.skip(reason)
    pytest.importorskip("jupyter_ext.capture.notebook")
    started = time.monotonic()
    save_support_classifier()
    bento = build_bento(copy_example("support_tickets.ipynb", tmp_path / "nb"))
    base = base_rootfs_tar()  # cached between runs
    tag = f"support-tickets:{bento.version}"
    try:
        engine = DockerEngine().__enter__()
    except RuntimeError as exc:
        pytest.skip(f"dockerd cannot run on this machine: {exc}")
    try:
        engine.import_base_image(base)  # FROM python:3.11-slim resolves with no registry
        monkeypatch.setenv("DOCKER_HOST", engine.base_url)
        assert main(["containerize", str(bento.tag), "--tag", tag]) == 0
        log = capsys.readouterr().out
        assert "Step 1/" in log and f"built {tag}" in log
        image = engine.client.images.get(tag)
        assert image.attrs["Config"]["User"] == "1000:1000"
        assert "3000/tcp" in image.attrs["Config"]["ExposedPorts"]

        port = _free_port()
        # The platform's settings: read-only root, writable /tmp, no capabilities.
        container = engine.client.containers.run(
            tag,
            ["--host", "127.0.0.1", "--port", str(port)],
            network_mode="host",
            detach=True,
            read_only=True,
            tmpfs={"/tmp": "rw,size=64m"},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            container.reload()
            assert container.status in ("created", "running"), container.logs().decode()[-3000:]
            time.sleep(0.5)
        else:
            pytest.fail("container not ready in 180 s:\n" + container.logs().decode()[-3000:])
        texts = [
            "I was charged twice for my subscription",
            "The app crashes when I upload a photo",
        ]
        answer = httpx.post(f"{url}/classify", json=texts, timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        expected = _answer_in_process(texts)
        assert body == expected
        assert body["labels"][0] == "billing"
        status = httpx.get(f"{url}/_nbento/status", timeout=5).json()
        assert status["service"] == "support_tickets"
        assert [r["tag"] for r in status["runners"].values()] == [m.tag for m in bento.info.models]
        print(json.dumps({"e2e_seconds": round(time.monotonic() - started, 1)}))
    finally:
        engine.close()
    assert engine.leftovers() == {"processes": [], "mounts": [], "files": []}


def _answer_in_process(texts: list[str]) -> dict[str, object]:
    """What the notebook's classify returns, computed from the same model in this process."""
    import numpy as np

    import runtime

    clf = runtime.load("support_classifier:latest")
    cleaned = [" ".join(t.split()).lower() for t in texts]
    proba = np.asarray(clf.predict_proba(cleaned))
    return {
        "labels": [str(label) for label in clf.predict(cleaned)],
        "scores": [round(float(p), 4) for p in proba.max(axis=1)],
    }
