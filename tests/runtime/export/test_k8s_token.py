"""`nbento export k8s --api-token-secret SECRET[:KEY]`: every server container (the API server and,
in the split layout, each runner) reads `NBENTO_API_TOKEN` from the Secret, in every layout, and
the ServiceMonitor scrapes `/metrics` with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.cli import main
from runtime.errors import BuildError
from runtime.export.bento_store import Bento
from runtime.export.k8s import render_manifests
from runtime.export.k8s_options import K8sOptions, SecretEnv
from tests.runtime.export.test_k8s import _docs, _validate, bento  # noqa: F401 - the fixture

TOKEN_REF = {"secretKeyRef": {"name": "api-token", "key": "token"}}


def _token_env(container: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in container["env"] if e["name"] == "NBENTO_API_TOKEN"]


def test_split_layout_gives_every_server_the_token(bento: Bento) -> None:  # noqa: F811
    files = render_manifests(
        bento, K8sOptions(split_runners=True, service_monitor=True, api_token_secret="api-token")
    )
    _validate({k: [d for d in v if d["kind"] != "ServiceMonitor"] for k, v in files.items()})
    deployments = _docs(files, "Deployment")
    assert len(deployments) == 3  # the API server and two runners
    for deployment in deployments:
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert _token_env(container) == [{"name": "NBENTO_API_TOKEN", "valueFrom": TOKEN_REF}]
        assert "token" not in yaml.safe_dump(container["command"])  # never a literal value
    (monitor,) = _docs(files, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["authorization"] == {
        "type": "Bearer", "credentials": {"name": "api-token", "key": "token"},
    }


def test_single_and_yatai_layouts_with_a_key(bento: Bento) -> None:  # noqa: F811
    files = render_manifests(bento, K8sOptions(api_token_secret="ml-secrets:api"))
    (deployment,) = _docs(files, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert _token_env(container)[0]["valueFrom"] == {
        "secretKeyRef": {"name": "ml-secrets", "key": "api"},
    }
    yatai = render_manifests(bento, K8sOptions(yatai=True, api_token_secret="api-token"))
    assert "NBENTO_API_TOKEN" in yaml.safe_dump(yatai)
    plain = render_manifests(bento, K8sOptions())
    assert "NBENTO_API_TOKEN" not in yaml.safe_dump(plain)


def test_bad_token_secrets_are_refused(bento: Bento) -> None:  # noqa: F811
    with pytest.raises(BuildError, match="--api-token-secret 'Bad_Name' must name a Secret"):
        render_manifests(bento, K8sOptions(api_token_secret="Bad_Name"))
    both = K8sOptions(
        api_token_secret="api-token",
        secret_env=[SecretEnv.parse("NBENTO_API_TOKEN=other:token")],
    )
    with pytest.raises(BuildError, match="both set the API token"):
        render_manifests(bento, both)


def test_cli_flag(bento: Bento, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "k8s"
    args = ["export", "k8s", str(bento.tag), "--out", str(out), "--split-runners"]
    assert main([*args, "--api-token-secret", "api-token"]) == 0
    for path in out.glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc and doc["kind"] == "Deployment":
                (container,) = doc["spec"]["template"]["spec"]["containers"]
                assert _token_env(container)[0]["valueFrom"] == TOKEN_REF, path
