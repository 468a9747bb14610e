"""Issue 9.3: every layout applies the same effective settings. Code says max_batch_size 8
(`runner(..., batching=...)` and `@api(max_batch_size=8)`), the config file says 64: 64 under
`nbento serve SRC`, in the built Bento served by `nbento serve BENTO`, in its split-layout runner
process, in the image's own command and in the Kubernetes ConfigMap; `NBENTO_*` beats the file
and `--set` beats the environment. Real servers on 127.0.0.1, read through `/_nbento/status`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.runtime.bento_fixtures import save_toy_model, write_toy_service
from tests.runtime.serving_support import REPO, running_server

SERVICE = '''\
from helpers import features
from runtime import api, runner

SERVICE_NAME = "toy"
classifier = runner("toy_clf:latest", batching={"predict": {"max_batch_size": 8}})


@api
def classify(texts: list[str]) -> dict:
    return {"labels": [int(v) for v in classifier.predict(features(texts))]}


@api(batchable=True, max_batch_size=8)
def lengths(texts: list[str]) -> list[int]:
    return [len(t) for t in texts]
'''

CONFIG = """\
runners:
  toy_clf:
    batching: {max_batch_size: 64}
apis:
  lengths: {max_batch_size: 64}
"""


def _nbento(*args: str, env: dict[str, str] | None = None) -> str:
    child = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "runtime", *args],
        capture_output=True, text=True, env=child, cwd=str(REPO), timeout=300,
    )
    assert done.returncode == 0, f"nbento {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _status(url: str) -> dict[str, Any]:
    return httpx.get(f"{url}/_nbento/status", timeout=10).json()  # type: ignore[no-any-return]


def _batch_sizes(settings: dict[str, Any]) -> tuple[int, int]:
    """(runner toy_clf's predict, API lengths) max_batch_size in an effective-settings view."""
    return (
        settings["runners"]["toy_clf"]["methods"]["predict"]["max_batch_size"],
        settings["apis"]["lengths"]["max_batch_size"],
    )


@dataclass
class Built:
    home: Path  # the model store the service folder is served from
    svc: Path
    config: Path
    bento: Path

    @property
    def env(self) -> dict[str, str]:
        return {"NBENTO_HOME": str(self.home)}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """A service folder, its config file and the Bento `nbento build` makes of them (built
    once for this module: a build pins requirements and builds the nbento wheel)."""
    root = tmp_path_factory.mktemp("layouts")
    home = root / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NBENTO_HOME", str(home))
        save_toy_model()
    svc = write_toy_service(root / "svc", SERVICE)
    config = root / "serve.yaml"
    config.write_text(CONFIG)
    env = {"NBENTO_HOME": str(home)}
    out = json.loads(_nbento("build", str(svc), "--config", str(config), "--json", env=env))
    return Built(home, svc, config, Path(out["path"]))


def test_every_layout_applies_the_same_effective_settings(
    built: Built, tmp_path: Path
) -> None:
    svc, config, bento = built.svc, built.config, built.bento
    with running_server(svc, "--config", str(config), env=built.env) as server:
        from_source = _status(server.url)
        assert httpx.post(f"{server.url}/lengths", json=["abc", "de"]).json() == [3, 2]
    assert _batch_sizes(from_source["settings"]) == (64, 64)
    # the runner itself runs with it, not only the report
    assert from_source["runners"]["toy_clf"]["settings"]["predict"]["max_batch_size"] == 64
    assert from_source["settings_sources"] == ["defaults", "code", f"file {config}", "flags --port"]

    # The Bento records what the file makes of the code, and ships the file, not code values.
    info = yaml.safe_load((bento / "bento.yaml").read_text())
    (runner,) = info["nbento_runners"]  # nbento's key beside BentoML's spec-2 fields
    assert runner["methods"]["predict"]["batching"]["max_batch_size"] == 64
    assert yaml.safe_load((bento / "config.yaml").read_text()) == yaml.safe_load(CONFIG)

    # `nbento serve BENTO`: no --config, the Bento's config.yaml is the file layer.
    with running_server(bento) as server:
        from_bento = _status(server.url)
    assert from_bento["settings"] == from_source["settings"]
    assert from_bento["settings_sources"][2] == f"file {bento / 'config.yaml'}"

    # Split layout: the runner process resolves the same batching for its runner.
    with running_server(bento, "--runner", "toy_clf", "--dev") as server:  # --dev: full readyz
        runner_status = httpx.get(f"{server.url}/readyz", timeout=10).json()
    assert runner_status["runners"]["toy_clf"]["settings"] == {
        "predict": from_source["settings"]["runners"]["toy_clf"]["methods"]["predict"]
    }

    # The image: its Dockerfile names config.yaml as NBENTO_CONFIG and runs the entry point.
    dockerfile = (bento / "env" / "docker" / "Dockerfile").read_text()
    assert "NBENTO_CONFIG=/home/bento/config.yaml" in dockerfile
    image_env = {"NBENTO_HOME": str(bento), "NBENTO_CONFIG": str(bento / "config.yaml")}
    entry = str(bento / info["entry_point"])
    image_view = yaml.safe_load(_nbento("serve", entry, "--port", "0", "--print-settings", env=image_env))
    assert image_view == from_source["settings"]

    # Kubernetes: the ConfigMap the pods mount as NBENTO_CONFIG resolves the same way.
    out = tmp_path / "k8s"
    _nbento("export", "k8s", str(bento), "--out", str(out))
    (config_map,) = yaml.safe_load_all((out / "configmap.yaml").read_text())
    (deployment, *_) = yaml.safe_load_all((out / "api-server.yaml").read_text())
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["NBENTO_CONFIG"] == "/etc/nbento/config.yaml"
    mounted = tmp_path / "etc-nbento" / "config.yaml"
    mounted.parent.mkdir()
    mounted.write_text(config_map["data"]["config.yaml"])
    pod_view = yaml.safe_load(
        _nbento("serve", str(bento), "--port", "0", "--print-settings",
                env={"NBENTO_CONFIG": str(mounted)})
    )
    assert pod_view == from_source["settings"]


def test_env_beats_the_file_and_set_beats_env(built: Built) -> None:
    svc, config, bento = built.svc, built.config, built.bento
    env = {
        "NBENTO_RUNNERS__TOY_CLF__BATCHING__MAX_BATCH_SIZE": "16",
        "NBENTO_APIS__LENGTHS__MAX_BATCH_SIZE": "16",
    }
    with running_server(bento, "--set", "apis.lengths.max_batch_size=4", env=env) as server:
        status = _status(server.url)
    assert _batch_sizes(status["settings"]) == (16, 4)
    assert status["runners"]["toy_clf"]["settings"]["predict"]["max_batch_size"] == 16
    # The same precedence from the source with --config, without a server.
    view = yaml.safe_load(
        _nbento("serve", str(svc), "--config", str(config), "--print-settings",
                "--set", "runners.toy_clf.batching.max_batch_size=2", env={**built.env, **env})
    )
    assert _batch_sizes(view) == (2, 16)
