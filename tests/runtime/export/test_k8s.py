"""Kubernetes export: every manifest validates against the Kubernetes schemas (1.30 and the
newest shipped), the BentoDeployment against our CRD, `kubectl kustomize` renders the folder,
and the split layout really works: one API process plus one process per runner, wired by the
exported runner map, answer like the single process."""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import kubernetes_validate
import pytest
import yaml

from runtime.cli import main
from runtime.errors import BuildError
from runtime.export.bento import build_bento
from runtime.export.bento_store import Bento
from runtime.export.k8s import render_manifests, write_manifests
from runtime.export.k8s_options import K8sOptions, SecretEnv, dns_name, mebibytes, millicores
from tests.conftest import require
from tests.runtime.bento_fixtures import save_toy_model, write_toy_service

CRD = Path(__file__).parent / "k8s" / "bentodeployment-crd.yaml"
REQUEST_CRD = Path(__file__).parent / "k8s" / "bentorequest-crd.yaml"
# CRDs written for these tests (see each file's header), by the kind they define
CRDS = {
    "BentoDeployment": CRD,
    "BentoRequest": REQUEST_CRD,
    "HTTPRoute": CRD.parent / "httproute-crd.yaml",
    "ScaledObject": CRD.parent / "scaledobject-crd.yaml",
}
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
CUSTOM_KINDS = {*CRDS, "ServiceMonitor", "Kustomization"}


def _newest_k8s() -> str:
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    versions = [
        p.name.split("-")[0].lstrip("v") for p in root.iterdir() if p.name.endswith("-strict")
    ]
    newest = max(versions, key=lambda v: tuple(int(x) for x in v.split(".")))
    return ".".join(newest.split(".")[:2])


K8S_VERSIONS = ("1.30", _newest_k8s())

TWO_RUNNERS = """\
import numpy as np

from runtime import api, runner

SERVICE_NAME = "ticket_router"
classifier = runner("toy_clf:latest")
scorer = runner("toy_clf:latest", name="Score_Model")


@api
def classify(texts: list[str]) -> dict:
    x = [[float(len(t)), float(t.count("a"))] for t in texts]
    labels = [int(v) for v in np.asarray(classifier.predict(x))]
    again = [int(v) for v in np.asarray(scorer.predict(x))]
    return {"labels": labels, "same": labels == again}
"""


@pytest.fixture
def bento(tmp_path: Path) -> Bento:
    save_toy_model()
    svc = write_toy_service(tmp_path / "svc", TWO_RUNNERS)
    return build_bento(svc)


def _crd_validator(path: Path = CRD) -> jsonschema.Draft202012Validator:
    crd = yaml.safe_load(path.read_text())
    schema = copy.deepcopy(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])

    def close(node: Any) -> None:  # Kubernetes prunes unknown fields; make them errors here
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schema)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def _validate(files: dict[str, list[dict[str, Any]]]) -> None:
    for filename, docs in files.items():
        for doc in docs:
            if doc["kind"] in CRDS:
                errors = [e.message for e in _crd_validator(CRDS[doc["kind"]]).iter_errors(doc)]
                assert errors == [], (filename, errors)
            elif doc["kind"] not in CUSTOM_KINDS:
                for version in K8S_VERSIONS:
                    kubernetes_validate.validate(doc, version, strict=True)


def _docs(files: dict[str, list[dict[str, Any]]], kind: str) -> list[dict[str, Any]]:
    return [d for docs in files.values() for d in docs if d["kind"] == kind]


def _assert_pods_hardened(files: dict[str, list[dict[str, Any]]], drain_s: float) -> None:
    """Every pod template (Deployments and Jobs) keeps the service account token out of the pod,
    and each Deployment's pods get the time to drain: the preStop sleep, then the server's own
    `graceful_timeout_s` (`drain_s`), plus a small margin."""
    templates = [d["spec"]["template"] for d in _docs(files, "Deployment") + _docs(files, "Job")]
    assert templates
    for template in templates:
        assert template["spec"]["automountServiceAccountToken"] is False
    for deployment in _docs(files, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
        grace = pod["terminationGracePeriodSeconds"]
        assert pre_stop + drain_s < grace <= pre_stop + drain_s + 30, (pre_stop, drain_s, grace)


def test_single_layout(bento: Bento) -> None:
    files = render_manifests(
        bento,
        K8sOptions(
            image="registry.example/ticket-router:1",
            namespace="ml",
            replicas=2,
            max_replicas=5,
            pdb=True,
            service_monitor=True,
            secret_env=[SecretEnv.parse("DB_PASSWORD=db-creds:password")],
        ),
    )
    _validate(files)
    assert set(files) == {
        "configmap.yaml",
        "api-server.yaml",
        "servicemonitor.yaml",
        "kustomization.yaml",
    }
    (deployment,) = _docs(files, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["image"] == "registry.example/ticket-router:1"
    assert container["command"][:3] == ["nbento", "serve", "/home/bento/src"]
    assert "--runner" not in container["command"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert (
        container["startupProbe"]["failureThreshold"] * container["startupProbe"]["periodSeconds"]
        >= 300
    )
    sc = container["securityContext"]
    assert (
        sc["runAsNonRoot"] and not sc["allowPrivilegeEscalation"] and sc["readOnlyRootFilesystem"]
    )
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert (
        mounts["/tmp"] == "tmp"
        and {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}} in pod["volumes"]
    )
    env = {e["name"]: e for e in container["env"]}
    assert env["NBENTO_CONFIG"]["value"] == "/etc/nbento/config.yaml"
    assert mounts["/etc/nbento"] == "config"
    assert env["DB_PASSWORD"] == {
        "name": "DB_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "password"}},
    }
    assert all("value" not in e or e["name"] != "DB_PASSWORD" for e in container["env"])
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert (
        annotations["prometheus.io/scrape"] == "true"
        and annotations["prometheus.io/port"] == "3000"
    )
    # in-process runners: the one pod asks for the API server's and both runners' resources
    assert container["resources"]["requests"]["cpu"] == "2500m"
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    (service,) = _docs(files, "Service")
    assert service["spec"]["ports"][0]["name"] == "http"
    (hpa,) = _docs(files, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)
    (config,) = _docs(files, "ConfigMap")
    # The Bento's settings file as it is (no file given at build: nothing set, code rules),
    # with the batching it resolves to listed for whoever tunes it.
    assert config["data"]["config.yaml"] == (bento.path / "config.yaml").read_text()
    assert yaml.safe_load(config["data"]["config.yaml"]) == {}
    assert "#   runners.toy_clf.methods.predict: {enabled: true, max_batch_size: 32," in (
        config["data"]["config.yaml"]
    )
    assert all(d["metadata"].get("namespace") == "ml" for d in _docs(files, "Deployment"))
    (kustomization,) = files["kustomization.yaml"]
    assert kustomization["namespace"] == "ml"
    assert _docs(files, "PodDisruptionBudget")[0]["spec"]["maxUnavailable"] == 1
    _assert_pods_hardened(files, bento.server_config().graceful_timeout_s)


def test_split_layout(bento: Bento) -> None:
    files = render_manifests(bento, K8sOptions(split_runners=True, gpu={"Score_Model": 1}))
    _validate(files)
    deployments = {d["metadata"]["name"]: d for d in _docs(files, "Deployment")}
    assert set(deployments) == {
        "ticket-router",
        "ticket-router-runner-toy-clf",
        "ticket-router-runner-score-model",
    }
    services = {s["metadata"]["name"] for s in _docs(files, "Service")}
    assert services == set(deployments)
    assert len(_docs(files, "HorizontalPodAutoscaler")) == 3
    api = deployments["ticket-router"]["spec"]["template"]["spec"]["containers"][0]
    runner_map = json.loads({e["name"]: e for e in api["env"]}["NBENTO_RUNNER_MAP"]["value"])
    assert runner_map == {  # headless Services: the API server balances every ready pod
        "toy_clf": "dns+http://ticket-router-runner-toy-clf:3000",
        "Score_Model": "dns+http://ticket-router-runner-score-model:3000",
    }
    for name, url in runner_map.items():
        host = url.split("//")[1].split(":")[0]
        assert host in services
        runner = deployments[host]["spec"]["template"]["spec"]["containers"][0]
        assert runner["command"][-2:] == ["--runner", name]
        gpu = runner["resources"]["limits"].get("nvidia.com/gpu")
        assert gpu == (1 if name == "Score_Model" else None)
    assert "nvidia.com/gpu" not in api["resources"]["limits"]
    # each component's selector picks only its own pods
    selectors = [json.dumps(s["spec"]["selector"], sort_keys=True) for s in _docs(files, "Service")]
    assert len(set(selectors)) == 3
    _assert_pods_hardened(files, bento.server_config().graceful_timeout_s)


def test_pods_get_the_bentos_own_drain_time(tmp_path: Path) -> None:
    save_toy_model()
    svc = write_toy_service(tmp_path / "svc", TWO_RUNNERS)
    config = tmp_path / "slow-drain.yaml"
    config.write_text("graceful_timeout_s: 95\n")
    slow = build_bento(svc, config=config)
    assert slow.server_config().graceful_timeout_s == 95
    for split in (False, True):
        files = render_manifests(slow, K8sOptions(split_runners=split))
        _validate(files)
        _assert_pods_hardened(files, 95)


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("service_monitor", [False, True])
def test_split_layout_lets_only_api_pods_reach_the_runners(bento: Bento, service_monitor: bool) -> None:
    files = render_manifests(bento, K8sOptions(split_runners=True, service_monitor=service_monitor))
    _validate(files)  # NetworkPolicy against the Kubernetes schemas, strict
    pods = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
            for d in _docs(files, "Deployment")}
    api = pods.pop("ticket-router")
    policies = _docs(files, "NetworkPolicy")
    assert len(policies) == len(pods) == 2  # one per runner, none for the API server
    for policy in policies:
        spec = policy["spec"]
        guarded = [name for name, labels in pods.items()
                   if _selects(spec["podSelector"]["matchLabels"], labels)]
        assert guarded == [policy["metadata"]["name"]] and spec["policyTypes"] == ["Ingress"]
        first, *others = spec["ingress"]
        allowed = first["from"][0]["podSelector"]["matchLabels"]
        assert _selects(allowed, api) and not any(_selects(allowed, p) for p in pods.values())
        assert first["ports"] == [{"protocol": "TCP", "port": 3000}]
        assert len(first["from"]) == 1 and "namespaceSelector" not in first["from"][0]
        # Prometheus may scrape /metrics only when the export ships a ServiceMonitor
        assert [o["from"][0]["podSelector"]["matchLabels"] for o in others] == (
            [{"app.kubernetes.io/name": "prometheus"}] if service_monitor else [])
    assert _docs(render_manifests(bento, K8sOptions()), "NetworkPolicy") == []


def test_yatai_bento_request_and_deployment_match_their_crds(bento: Bento) -> None:
    files = render_manifests(
        bento, K8sOptions(yatai=True, gpu={"toy_clf": 2}, min_replicas=1, max_replicas=4)
    )
    _validate(files)
    (request,) = files["bentorequest.yaml"]
    (doc,) = files["bentodeployment.yaml"]
    assert request["spec"]["bentoTag"] == str(bento.tag)
    assert [m["tag"] for m in request["spec"]["models"]] == [m.tag for m in bento.info.models]
    # the deployment serves the Bento resource the image builder makes from the request
    assert doc["spec"]["bento"] == request["metadata"]["name"]
    assert doc["apiVersion"] == "serving.yatai.ai/v2alpha1"
    # one pod holds the API server and every runner: their resources add up
    parts = [bento.info.api_server_resources, *(r.resources for r in bento.info.runners)]
    requests = doc["spec"]["resources"]["requests"]
    assert requests["cpu"] == f"{sum(millicores(p.cpu) for p in parts)}m"
    assert requests["memory"] == f"{sum(mebibytes(p.memory) for p in parts)}Mi"
    assert requests["gpu"] == "2"
    assert "runners" not in doc["spec"]  # runner overrides exist only for legacy Bentos
    assert doc["spec"]["autoscaling"]["maxReplicas"] == 4
    # the CRD checks can fail: a misspelled key and a missing tag are reported
    broken = copy.deepcopy(doc)
    broken["spec"]["autoscalling"] = {}
    assert list(_crd_validator().iter_errors(broken))
    broken_request = copy.deepcopy(request)
    del broken_request["spec"]["bentoTag"]
    assert list(_crd_validator(REQUEST_CRD).iter_errors(broken_request))


def test_invalid_manifest_is_caught_by_the_validators(bento: Bento) -> None:
    files = render_manifests(bento, K8sOptions())
    (hpa,) = _docs(files, "HorizontalPodAutoscaler")
    hpa["spec"]["targetCPUUtilizationPercentage"] = 70  # autoscaling/v1 only
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(hpa, "1.30", strict=True)


def test_bad_options_are_refused(bento: Bento) -> None:
    with pytest.raises(BuildError, match="does not have: gpu_runner"):
        render_manifests(bento, K8sOptions(gpu={"gpu_runner": 1}))
    with pytest.raises(BuildError, match="--min <= --max"):
        render_manifests(bento, K8sOptions(min_replicas=4, max_replicas=2))
    with pytest.raises(BuildError, match="ENV=SECRET_NAME:KEY"):
        SecretEnv.parse("PASSWORD=hunter2")


def test_dns_names() -> None:
    assert dns_name("Score_Model") == "score-model"
    assert dns_name("9lives") == "nb-9lives"
    long = dns_name("x" * 80, "runner", "y" * 80)
    assert len(long) <= 63 and long != dns_name("x" * 80, "runner", "z" * 80)


@pytest.mark.parametrize(
    "flags", [[], ["--split-runners", "--pdb", "--service-monitor"], ["--yatai"]]
)
def test_cli_export_renders_with_kubectl_kustomize(
    bento: Bento, tmp_path: Path, flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "k8s"
    assert (
        main(["export", "k8s", str(bento.tag), "--out", str(out), "--namespace", "ml", *flags]) == 0
    )
    assert "kubectl apply -k" in capsys.readouterr().out
    require(os.access(KUBECTL, os.X_OK), f"kubectl not found at {KUBECTL}")
    proc = subprocess.run(
        [KUBECTL, "kustomize", str(out)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    rendered = [d for d in yaml.safe_load_all(proc.stdout) if d]
    on_disk = [
        d
        for p in out.glob("*.yaml")
        if p.name != "kustomization.yaml"
        for d in yaml.safe_load_all(p.read_text())
        if d
    ]
    assert len(rendered) == len(on_disk) > 0
    assert all(d["metadata"]["namespace"] == "ml" for d in rendered)
    kinds = {d["kind"] for d in rendered}
    _validate({"rendered": [d for d in rendered if d["kind"] not in {"ServiceMonitor"}]})
    if "--yatai" in flags:
        assert kinds == {"BentoDeployment", "BentoRequest"}


def test_write_manifests_for_the_panel(bento: Bento, tmp_path: Path) -> None:
    """The signature the panel and magics call: a folder and keyword overrides."""
    written = write_manifests(bento.path, tmp_path / "m", split_runners=True, image="img:1")
    assert {p.name for p in written} >= {"api-server.yaml", "kustomization.yaml"}
    with pytest.raises(BuildError, match="unknown Kubernetes export options"):
        write_manifests(bento, tmp_path / "m", replica=3)


# ------------------------------------------------------------- split layout, for real


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in started:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _serve(
    bento: Bento,
    args: list[str],
    env: dict[str, str],
    log: Path,
    started: list[subprocess.Popen[bytes]],
) -> None:
    full_env = {
        **os.environ,
        "NBENTO_HOME": str(bento.path),
        "NBENTO_CONFIG": str(bento.path / "config.yaml"),
        **env,
    }
    with log.open("wb") as fh:
        started.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "runtime",
                    "serve",
                    str(bento.path / bento.info.entry_point),
                    *args,
                ],
                env=full_env,
                stdout=fh,
                stderr=subprocess.STDOUT,
            )
        )


def _wait_ready(port: int, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"port {port} not ready in {timeout}s:\n{log.read_text()[-3000:]}")


def test_split_layout_answers_like_the_single_process(
    bento: Bento, tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    files = render_manifests(bento, K8sOptions(split_runners=True))
    deployments = {d["metadata"]["name"]: d for d in _docs(files, "Deployment")}
    api_container = deployments[dns_name(bento.name)]["spec"]["template"]["spec"]["containers"][0]
    exported = json.loads(
        next(e["value"] for e in api_container["env"] if e["name"] == "NBENTO_RUNNER_MAP")
    )
    # Each runner process runs the exported runner command, on 127.0.0.1 instead of 0.0.0.0.
    local_map = {}
    for name, url in exported.items():
        host = url.split("//")[1].split(":")[0]
        command = deployments[host]["spec"]["template"]["spec"]["containers"][0]["command"]
        port = _free_port()
        _serve(
            bento,
            [*command[3:], "--host", "127.0.0.1", "--port", str(port)],
            {},
            tmp_path / f"runner-{host}.log",
            processes,
        )
        local_map[name] = f"http://127.0.0.1:{port}"
    api_port, single_port = _free_port(), _free_port()
    _serve(
        bento,
        ["--port", str(api_port), "--dev"],  # --dev: the status shows the runner URLs
        {"NBENTO_RUNNER_MAP": json.dumps(local_map)},
        tmp_path / "api.log",
        processes,
    )
    _serve(bento, ["--port", str(single_port)], {}, tmp_path / "single.log", processes)
    for url in local_map.values():
        _wait_ready(int(url.rsplit(":", 1)[1]), tmp_path / "runner.log")
    _wait_ready(api_port, tmp_path / "api.log")
    _wait_ready(single_port, tmp_path / "single.log")

    body = ["aaaaaaaaaaaa", "b", "banana bread", "xyz"]
    split = httpx.post(f"http://127.0.0.1:{api_port}/classify", json=body, timeout=30)
    single = httpx.post(f"http://127.0.0.1:{single_port}/classify", json=body, timeout=30)
    assert split.status_code == single.status_code == 200, (split.text, single.text)
    assert split.json() == single.json() == {"labels": [1, 0, 1, 0], "same": True}
    status = httpx.get(f"http://127.0.0.1:{api_port}/_nbento/status", timeout=5).json()
    assert {n: r.get("url") for n, r in status["runners"].items()} == local_map
