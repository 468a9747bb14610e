"""`nbento containerize`: the message without an engine, and (slow) the whole path on a real
dockerd: a local base image, the example Bento built into an image, the container answering
over 127.0.0.1, the fidelity matrix's DataFrame pipeline answering as in the kernel, and
nothing left behind."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from runtime.cli import main
from runtime.export.bento import build_bento
from runtime.export.bento_store import Bento
from runtime.export.containerize import docker_build_command
from runtime.export.golden import Golden, write_goldens
from tests.conftest import missing, require, require_module
from tests.fidelity.cases import DATAFRAME_PIPELINE
from tests.fidelity.matrix import Layout, check_layout, kernel_answers, write_notebook
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


@pytest.fixture(scope="module")
def engine() -> Iterator[DockerEngine]:
    """One private dockerd for the module's end-to-end tests, with the local base image; on
    exit nothing of it may be left (processes, mounts, files)."""
    reason = why_no_dockerd()
    require(not reason, str(reason))
    base = base_rootfs_tar()  # cached between runs
    try:
        started = DockerEngine().__enter__()
    except RuntimeError as exc:
        missing(f"dockerd cannot run on this machine: {exc}")
    try:
        started.import_base_image(base)  # FROM python:3.11-slim resolves with no registry
        yield started
    finally:
        started.close()
    assert started.leftovers() == {"processes": [], "mounts": [], "files": []}


def _run_container(engine: DockerEngine, tag: str, environment: dict[str, str]) -> str:
    """Run `tag` as the platform would (read-only root, writable /tmp, no capabilities) on a
    free port of 127.0.0.1; wait for /readyz and return the URL."""
    port = _free_port()
    container = engine.client.containers.run(
        tag,
        ["--host", "127.0.0.1", "--port", str(port)],
        network_mode="host",
        detach=True,
        read_only=True,
        tmpfs={"/tmp": "rw,size=64m"},
        cap_drop=["ALL"],
        security_opt=["no-new-privileges"],
        environment=environment,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return url
        except httpx.HTTPError:
            pass
        container.reload()
        assert container.status in ("created", "running"), container.logs().decode()[-3000:]
        time.sleep(0.5)
    pytest.fail("container not ready in 180 s:\n" + container.logs().decode()[-3000:])


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_container_end_to_end(
    engine: DockerEngine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    require_module("jupyter_ext.capture.notebook")
    started = time.monotonic()
    save_support_classifier()
    from jupyter_ext.capture.notebook import build_service

    notebook = copy_example("support_tickets.ipynb", tmp_path / "nb")
    golden_texts = ["I was charged twice for my subscription", "My parcel arrived damaged"]
    write_goldens(build_service(notebook)[1].folder / "golden.jsonl", [Golden(
        api="classify", request={"texts": golden_texts}, answer=_answer_in_process(golden_texts),
    )])
    bento = build_bento(notebook)  # replays them against the Bento served from its folder
    tag = f"support-tickets:{bento.version}"
    monkeypatch.setenv("DOCKER_HOST", engine.base_url)
    assert main(["containerize", str(bento.tag), "--tag", tag, "--verify"]) == 0
    printed = capsys.readouterr()
    log = printed.err  # progress goes to stderr, the verdict to stdout
    assert "sending the build context" in log and "MiB" in log
    assert "Step 1/" in log and f"built {tag}" in log
    assert "replaying 1 golden answer(s) against the container at http://127.0.0.1:" in log
    assert "1 golden answer(s) replayed against http://127.0.0.1:" in printed.out  # it answers
    image = engine.client.images.get(tag)
    assert image.attrs["Config"]["User"] == "1000:1000"
    assert "3000/tcp" in image.attrs["Config"]["ExposedPorts"]

    # the image's own config.yaml is the file layer; the environment beats it
    url = _run_container(
        engine, tag, {"NBENTO_RUNNERS__SUPPORT_CLASSIFIER__BATCHING__MAX_BATCH_SIZE": "16"}
    )
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
    assert status["settings_sources"][2] == "file /home/bento/config.yaml"
    batching = status["settings"]["runners"]["support_classifier"]["methods"]
    assert {m: b["max_batch_size"] for m, b in batching.items()} == {
        "predict": 16, "predict_proba": 16,
    }
    print(json.dumps({"e2e_seconds": round(time.monotonic() - started, 1)}))


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_container_answers_like_the_kernel(
    engine: DockerEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fidelity matrix's DataFrame pipeline (pandas + scikit-learn, both installable from
    PyPI inside the image): a real kernel runs its notebook, the Bento of that notebook runs as
    a container, and one 60-row request and 60 concurrent single-row requests (batched) get the
    kernel's answers."""
    for module in DATAFRAME_PIPELINE.needs:
        require_module(module)
    started = time.monotonic()
    notebook = write_notebook(tmp_path / "nb", [DATAFRAME_PIPELINE])
    expected = kernel_answers(notebook)[DATAFRAME_PIPELINE.name]
    assert "error" not in expected, expected.get("error")
    bento = build_bento(notebook)
    tag = f"fidelity:{bento.version}"
    monkeypatch.setenv("DOCKER_HOST", engine.base_url)
    assert main(["containerize", str(bento.tag), "--tag", tag]) == 0
    # One worker, as in the matrix's other layouts: rows queue while it computes.
    runner = DATAFRAME_PIPELINE.runner.upper()
    url = _run_container(engine, tag, {f"NBENTO_RUNNERS__{runner}__WORKERS": "1"})
    layout = Layout("container", url, {DATAFRAME_PIPELINE.runner: f"{url}/metrics"})
    check_layout(DATAFRAME_PIPELINE, expected, layout)
    print(json.dumps({"fidelity_container_seconds": round(time.monotonic() - started, 1)}))


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
