"""The trust gate as a user meets it: `nbento models import [--trust]`, `nbento models trust`,
and a split-layout runner process (`nbento serve SRC --runner NAME`) attacked over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from runtime import store
from tests.runtime.serving_support import running_server, start_server, write_service
from tests.runtime.store.trust_fixtures import array_tar, pickle_tar
from tests.runtime.store_fixtures import REPO


def _nbento(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime", *args], capture_output=True, text=True, timeout=60,
        cwd=REPO,
    )


def _load_in_subprocess(tag: str) -> subprocess.CompletedProcess[str]:
    code = f"from nbento import load; load({tag!r}); print('loaded')"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO
    )


def test_import_says_untrusted_then_trust_after_review(tmp_path: Path) -> None:
    tripwire = tmp_path / "pwned.txt"
    archive = pickle_tar(tmp_path / "gift.tar", tripwire)

    imported = _nbento("models", "import", str(archive))
    assert imported.returncode == 0, imported.stderr
    tag = "gift:20260101-000000-aaaaaa"
    assert f"imported {tag}" in imported.stdout
    assert "not trusted: loading it (cloudpickle) runs code" in imported.stdout
    assert f"nbento models trust {tag}" in imported.stdout

    refused = _load_in_subprocess(tag)
    assert refused.returncode == 1 and "UntrustedModel" in refused.stderr
    assert not tripwire.exists()
    listed = json.loads(_nbento("models", "list", "--json").stdout)
    assert [(r["tag"], r["trusted"]) for r in listed] == [(tag, False)]

    trusted = _nbento("models", "trust", tag)
    assert trusted.returncode == 0 and trusted.stdout.strip() == f"trusted {tag}"
    assert _load_in_subprocess(tag).stdout.strip() == "loaded"
    assert tripwire.exists()
    again = _nbento("models", "trust", tag)
    assert again.stdout.strip() == f"{tag} was trusted already"


def test_import_with_trust_flag(tmp_path: Path) -> None:
    tripwire = tmp_path / "pwned.txt"
    result = _nbento("models", "import", str(pickle_tar(tmp_path / "g.tar", tripwire)),
                     "--trust", "--json")
    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert row["trusted"] is True and row["untrusted_reasons"] == []
    assert _load_in_subprocess(row["tag"]).stdout.strip() == "loaded"


def test_refusals_are_one_line_errors(tmp_path: Path) -> None:
    missing = _nbento("models", "trust", "nothing:here")
    assert missing.returncode == 1 and missing.stderr.startswith("error: no model 'nothing'")
    bad = _nbento("models", "import", str(array_tar(tmp_path / "b.tar", {"__class__": {}})))
    assert bad.returncode == 1
    assert "invalid signature name '__class__'" in bad.stderr and "Traceback" not in bad.stderr


RUNNER_SERVICE = """
import numpy as np
from nbento import api, runner

vectors = runner("vectors:latest")


@api
def first(n: int) -> list[float]:
    return [float(x) for x in vectors.dot(np.ones(n))]
"""


def test_runner_process_refuses_an_imported_tofile_model(tmp_path: Path) -> None:
    """The issue's attack: a plain NumPy model from outside declaring `tofile`, served by a
    runner process, then `POST /_runner/tofile` with a path. The runner now never loads it."""
    store.import_model(array_tar(tmp_path / "v.tar", {"tofile": {}}))
    write_service(tmp_path / "svc", RUNNER_SERVICE)
    target = tmp_path / "written-by-attacker"

    server = start_server(tmp_path / "svc", "--runner", "vectors", ready=False)
    try:
        for _ in range(200):
            if "UntrustedModel" in server.log():
                break
            time.sleep(0.05)
        assert "declares signatures tofile" in server.log()
        assert "nbento models trust vectors:" in server.log()
        # the process stays up, not ready, and never calls the method
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 503
        answer = httpx.post(
            f"{server.url}/_runner/tofile", content=_wire([str(target)]), timeout=10
        )
        assert answer.status_code == 503, answer.text
        assert "Traceback" not in answer.text
        assert server.proc.poll() is None
    finally:
        server.stop()
    assert not target.exists()


def _wire(args: list[object]) -> bytes:
    from runtime.serving import wire

    return wire.encode({"args": args, "kwargs": {}})


def test_runner_process_calls_declared_signatures_only(tmp_path: Path) -> None:
    """A trusted model whose object has `tofile`, served with only `dot` declared:
    every other name is a 404 and the process keeps serving."""
    store.save_model("vectors", np.arange(4.0), signatures=["dot"])
    write_service(tmp_path / "svc", RUNNER_SERVICE)
    target = tmp_path / "written-by-attacker"

    with running_server(tmp_path / "svc", "--runner", "vectors") as server:
        for method in ("tofile", "__class__", "dump", "_private"):
            answer = httpx.post(
                f"{server.url}/_runner/{method}", content=_wire([str(target)]), timeout=10
            )
            assert answer.status_code == 404, (method, answer.text)
            body = answer.json()["error"]
            assert body["type"] == "undeclared_method"
            assert f"has no signature '{method}'" in body["message"]
            assert "declares: dot" in body["message"]
        assert httpx.get(f"{server.url}/livez", timeout=10).status_code == 200
    assert not target.exists()


def test_containerize_refuses_a_bento_holding_an_untrusted_pickle(tmp_path: Path) -> None:
    """The image trusts the models it is built with, so building it is where a Bento from
    elsewhere must be checked: refused before any container engine is contacted."""
    from runtime.export.bento import build_bento
    from runtime.store import ModelStore
    from tests.runtime.bento_fixtures import save_toy_model, write_toy_service

    save_toy_model()
    bento = build_bento(write_toy_service(tmp_path / "toy"))
    foreign = store.import_model(
        pickle_tar(tmp_path / "gift.tar", tmp_path / "pwned.txt"),
        store=ModelStore(bento.path / "models"),
    )

    refused = subprocess.run(
        [sys.executable, "-m", "runtime", "containerize", str(bento.path), "--tag", "toy:test",
         "--docker-host", "unix:///nonexistent/docker.sock"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.startswith(f"error: refusing to build an image from {bento.path}")
    assert f"does not trust {foreign.tag}: loading it (cloudpickle) runs code" in refused.stderr
    assert "no container engine" not in refused.stderr
