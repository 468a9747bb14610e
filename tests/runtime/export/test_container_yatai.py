"""The Bento's own image run the way Yatai runs it: `sh -c "./env/docker/entrypoint.sh bentoml
serve . --production"` with `PORT=3000`-style configuration gives the same answers as the image's
default `nbento serve`, and the Bento's config.yaml (max_batch_size 8) applies. Uses the private
dockerd and offline base image of the container end-to-end test (tests/runtime/docker_engine.py)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from runtime.cli import main
from runtime.export.bento import build_bento
from tests.conftest import missing, require, require_module
from tests.runtime.bento_fixtures import copy_example, save_support_classifier
from tests.runtime.docker_engine import DockerEngine, base_rootfs_tar, why_no_dockerd
from tests.runtime.serving_support import free_port, metric_value

YATAI_COMMAND = ["sh", "-c", "./env/docker/entrypoint.sh bentoml serve . --production"]
REQUESTS = [
    {"texts": ["I was charged twice for my subscription"]},
    {"texts": ["the app crashes when I open settings", "where is my parcel?"]},
]


def _run(engine: DockerEngine, tag: str, **kwargs: Any) -> Any:
    # The platform's settings: read-only root, writable /tmp, no capabilities.
    return engine.client.containers.run(
        tag, network_mode="host", detach=True, read_only=True, tmpfs={"/tmp": "rw,size=256m"},
        cap_drop=["ALL"], security_opt=["no-new-privileges"], **kwargs,
    )


def _wait_ready(url: str, container: Any, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        container.reload()
        assert container.status in ("created", "running"), container.logs().decode()[-4000:]
        time.sleep(0.5)
    pytest.fail(f"{url} not ready in {timeout} s:\n" + container.logs().decode()[-4000:])


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_image_answers_yatai_pod_command_like_nbento_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reason = why_no_dockerd()
    require(not reason, str(reason))
    require_module("jupyter_ext.capture.notebook")
    save_support_classifier()
    config = tmp_path / "nbento.yaml"
    config.write_text(yaml.safe_dump(
        {"runners": {"support_classifier": {"batching": {"max_batch_size": 8, "max_latency_ms": 50}}}}
    ))
    bento = build_bento(copy_example("support_tickets.ipynb", tmp_path / "nb"), config=config)
    base = base_rootfs_tar()
    tag = f"support-tickets-yatai:{bento.version}"
    try:
        engine = DockerEngine().__enter__()
    except RuntimeError as exc:
        missing(f"dockerd cannot run on this machine: {exc}")
    try:
        engine.import_base_image(base)
        monkeypatch.setenv("DOCKER_HOST", engine.base_url)
        assert main(["containerize", str(bento.tag), "--tag", tag]) == 0

        nb_port, yatai_port = free_port(), free_port()
        nbento = _run(engine, tag, command=["--host", "127.0.0.1", "--port", str(nb_port)])
        yatai = _run(engine, tag, entrypoint=YATAI_COMMAND, environment={"PORT": str(yatai_port)})
        nb_url, yatai_url = f"http://127.0.0.1:{nb_port}", f"http://127.0.0.1:{yatai_port}"
        _wait_ready(nb_url, nbento)
        _wait_ready(yatai_url, yatai)
        assert httpx.get(f"{yatai_url}/livez", timeout=5).status_code == 200
        for body in REQUESTS:
            a = httpx.post(f"{yatai_url}/classify", json=body, timeout=30)
            b = httpx.post(f"{nb_url}/classify", json=body, timeout=30)
            assert (a.status_code, a.content) == (200, b.content)

        body = {"texts": ["a double charge", "the app crashes", "where is my parcel"]}
        with ThreadPoolExecutor(max_workers=32) as pool:
            codes = list(pool.map(
                lambda _: httpx.post(f"{yatai_url}/classify", json=body, timeout=60).status_code,
                range(64),
            ))
        assert set(codes) == {200}
        text = httpx.get(f"{yatai_url}/metrics", timeout=10).text
        labels = {"runner": "support_classifier", "method": "predict_proba"}
        batches = metric_value(text, "nbento_runner_batch_size_count", labels)
        assert metric_value(text, "nbento_runner_batch_size_bucket", {**labels, "le": "8.0"}) == batches
        assert 0 < batches < 64 * 3  # batched by nbento, never past the Bento's 8 rows
    finally:
        engine.close()
    assert engine.leftovers() == {"processes": [], "mounts": [], "files": []}
