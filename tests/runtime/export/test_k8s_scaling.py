"""Kubernetes export past one machine (issue 15): headless runner Services, runner autoscaling on
queue depth (HPA Pods metric + Prometheus Adapter rule, or KEDA ScaledObjects), drain timing,
and canary / blue-green with a golden-replay guard Job. Core kinds validate strictly against the
Kubernetes schemas, HTTPRoute and ScaledObject against CRDs kept in tests/runtime/export/k8s/,
and `kubectl kustomize` renders every combination."""

from __future__ import annotations

import copy
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.cli import main
from runtime.errors import BuildError
from runtime.export.bento import build_bento
from runtime.export.bento_store import Bento
from runtime.export.k8s import render_manifests
from runtime.export.k8s_options import K8sOptions
from tests.conftest import require
from tests.runtime.bento_fixtures import save_toy_model, write_toy_service
from tests.runtime.export.test_k8s import (
    CRDS,
    KUBECTL,
    TWO_RUNNERS,
    _assert_pods_hardened,
    _crd_validator,
    _docs,
    _validate,
)

Files = dict[str, list[dict[str, Any]]]


@pytest.fixture
def bentos(tmp_path: Path) -> tuple[Bento, Bento]:
    """(previous, current): two versions of the same service."""
    save_toy_model()
    svc = write_toy_service(tmp_path / "svc", TWO_RUNNERS)
    previous = build_bento(svc)
    (svc / "service.py").write_text((svc / "service.py").read_text() + "\n# v2\n")
    current = build_bento(svc)
    assert previous.tag != current.tag
    return previous, current


def _by_name(files: Files, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in _docs(files, kind)}


def test_runner_services_are_headless_and_pods_drain_before_they_go(
    bentos: tuple[Bento, Bento],
) -> None:
    _, bento = bentos
    files = render_manifests(bento, K8sOptions(split_runners=True))
    _validate(files)
    services = _by_name(files, "Service")
    assert services["ticket-router"]["spec"].get("clusterIP") is None
    assert services["ticket-router-runner-toy-clf"]["spec"]["clusterIP"] == "None"
    drain_s = int(bento.server_config().graceful_timeout_s)
    for deployment in _docs(files, "Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        pre_stop = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
        # endpoint removal reaches the API servers (5 s re-resolve) before SIGTERM starts the drain
        assert pre_stop > 5
        assert pod["terminationGracePeriodSeconds"] >= pre_stop + drain_s
    # CPU stays the default for CPU-only runners; no adapter rule without a queue metric
    for hpa in _docs(files, "HorizontalPodAutoscaler"):
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert "prometheus-adapter-rules.yaml" not in files


def test_queue_metric_hpas_and_gpu_runners_default_to_the_queue(
    bentos: tuple[Bento, Bento],
) -> None:
    _, bento = bentos
    files = render_manifests(bento, K8sOptions(split_runners=True, autoscale_metric="queue"))
    _validate(files)
    hpas = _by_name(files, "HorizontalPodAutoscaler")
    assert hpas["ticket-router"]["spec"]["metrics"][0]["type"] == "Resource"  # API server: CPU
    for name in ("ticket-router-runner-toy-clf", "ticket-router-runner-score-model"):
        (metric,) = hpas[name]["spec"]["metrics"]
        assert metric == {
            "type": "Pods",
            "pods": {
                "metric": {"name": "nbento_runner_queue_depth"},
                "target": {"type": "AverageValue", "averageValue": "16"},
            },
        }
    (rules,) = files["prometheus-adapter-rules.yaml"]
    rule = yaml.safe_load(rules["data"]["config.yaml"])["rules"][0]
    assert rule["seriesQuery"].startswith("nbento_runner_queue_depth{")
    assert rule["name"]["as"] == "nbento_runner_queue_depth"
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}

    gpu = render_manifests(bento, K8sOptions(split_runners=True, gpu={"Score_Model": 1}))
    hpas = _by_name(gpu, "HorizontalPodAutoscaler")
    assert hpas["ticket-router-runner-score-model"]["spec"]["metrics"][0]["type"] == "Pods"
    assert hpas["ticket-router-runner-toy-clf"]["spec"]["metrics"][0]["type"] == "Resource"
    assert "prometheus-adapter-rules.yaml" in gpu


def test_keda_scaled_objects_replace_runner_hpas(bentos: tuple[Bento, Bento]) -> None:
    _, bento = bentos
    files = render_manifests(
        bento, K8sOptions(split_runners=True, keda=True, namespace="ml", queue_target=8,
                          min_replicas=1, max_replicas=6),
    )
    _validate(files)
    assert set(_by_name(files, "HorizontalPodAutoscaler")) == {"ticket-router"}
    scaled = _by_name(files, "ScaledObject")
    obj = scaled["ticket-router-runner-toy-clf"]
    assert obj["spec"]["scaleTargetRef"]["name"] == "ticket-router-runner-toy-clf"
    assert (obj["spec"]["minReplicaCount"], obj["spec"]["maxReplicaCount"]) == (1, 6)
    (trigger,) = obj["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    assert trigger["metadata"]["query"] == (
        'sum(nbento_runner_queue_depth{runner="toy_clf",namespace="ml"})'
    )
    assert trigger["metadata"]["threshold"] == "8"
    # the CRD check can fail: a misspelled key or a non-string trigger value is reported
    broken = copy.deepcopy(obj)
    broken["spec"]["minReplicas"] = 1
    broken["spec"]["triggers"][0]["metadata"]["threshold"] = 8
    assert len(list(_crd_validator(CRDS["ScaledObject"]).iter_errors(broken))) == 2


def test_canary_runs_both_versions_weighted_with_a_golden_replay_guard(
    bentos: tuple[Bento, Bento],
) -> None:
    previous, bento = bentos
    files = render_manifests(
        bento, K8sOptions(split_runners=True, canary=10, previous=str(previous.tag),
                          namespace="ml", image="registry.example/ticket-router:2"),
    )
    _validate(files)
    deployments = _by_name(files, "Deployment")
    assert set(deployments) == {
        f"{name}-{track}"
        for track in ("stable", "canary")
        for name in ("ticket-router", "ticket-router-runner-toy-clf",
                     "ticket-router-runner-score-model")
    }
    for name, deployment in deployments.items():
        track = name.rsplit("-", 1)[1]
        version = (previous if track == "stable" else bento).version
        pod = deployment["spec"]["template"]
        assert pod["metadata"]["labels"]["nbento.dev/track"] == track
        assert deployment["spec"]["selector"]["matchLabels"]["nbento.dev/track"] == track
        assert pod["metadata"]["labels"]["app.kubernetes.io/version"] == version[:63]
        (container,) = pod["spec"]["containers"]
        image = "registry.example/ticket-router:2" if track == "canary" else (
            f"{previous.name}:{previous.version}")
        assert container["image"] == image
        assert pod["spec"]["volumes"][1]["configMap"]["name"] == f"ticket-router-config-{track}"
        if name.startswith("ticket-router-") and "runner" not in name:
            runner_map = json.loads(
                {e["name"]: e["value"] for e in container["env"]}["NBENTO_RUNNER_MAP"]
            )
            # each track's API server calls its own track's runners
            assert runner_map["toy_clf"] == f"dns+http://ticket-router-runner-toy-clf-{track}:3000"
    services = _by_name(files, "Service")
    assert all(s["spec"]["selector"]["nbento.dev/track"] in n for n, s in services.items())
    hpas = _by_name(files, "HorizontalPodAutoscaler")
    assert {h["spec"]["scaleTargetRef"]["name"] for h in hpas.values()} == set(deployments)
    assert _docs(files, "Job")  # the guard Job's pod is checked too
    _assert_pods_hardened(files, bento.server_config().graceful_timeout_s)

    (route,) = files["httproute.yaml"]
    assert route["spec"]["rules"][0]["backendRefs"] == [
        {"name": "ticket-router-stable", "port": 3000, "weight": 90},
        {"name": "ticket-router-canary", "port": 3000, "weight": 10},
    ]
    assert route["spec"]["parentRefs"] == [{"name": "nbento-gateway"}]
    (job,) = files["canary-guard-job.yaml"]
    pod = job["spec"]["template"]["spec"]
    (guard,) = pod["containers"]
    assert guard["command"] == [
        "nbento", "verify", "/home/bento", "--url", "http://ticket-router-canary:3000"
    ]
    assert guard["image"] == "registry.example/ticket-router:2"
    assert pod["initContainers"][0]["command"][-1] == "http://ticket-router-canary:3000"
    assert job["spec"]["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
    # the HTTPRoute CRD check can fail
    broken = copy.deepcopy(route)
    broken["spec"]["rules"][0]["backendRefs"][0]["weight"] = -1
    broken["spec"]["rules"][0]["backendRef"] = []
    assert len(list(_crd_validator(CRDS["HTTPRoute"]).iter_errors(broken))) == 2


def test_bad_scaling_and_canary_options_say_what_to_do(bentos: tuple[Bento, Bento]) -> None:
    previous, bento = bentos
    with pytest.raises(BuildError, match="add --split-runners"):
        render_manifests(bento, K8sOptions(keda=True))
    with pytest.raises(BuildError, match="go together"):
        render_manifests(bento, K8sOptions(canary=10))
    with pytest.raises(BuildError, match="percentage"):
        render_manifests(bento, K8sOptions(canary=120, previous=str(previous.tag)))
    with pytest.raises(BuildError, match="drop --yatai"):
        render_manifests(bento, K8sOptions(yatai=True, canary=5, previous=str(previous.tag)))


@pytest.mark.parametrize(
    "flags",
    [
        ["--split-runners", "--autoscale-metric", "queue"],
        ["--split-runners", "--keda", "--service-monitor"],
        ["--canary", "10"],
        ["--split-runners", "--canary", "10", "--keda", "--pdb", "--service-monitor"],
    ],
)
def test_cli_export_renders_with_kubectl_kustomize(
    bentos: tuple[Bento, Bento], tmp_path: Path, flags: list[str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    previous, bento = bentos
    if "--canary" in flags:
        flags = [*flags, "--previous", str(previous.tag)]
    out = tmp_path / "k8s"
    argv = ["export", "k8s", str(bento.tag), "--out", str(out), "--namespace", "ml", *flags]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "kubectl apply -k" in printed
    assert ("kubectl wait" in printed) == ("--canary" in flags)
    require(os.access(KUBECTL, os.X_OK), f"kubectl not found at {KUBECTL}")
    proc = subprocess.run(
        [KUBECTL, "kustomize", str(out)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    rendered = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert all(d["metadata"]["namespace"] == "ml" for d in rendered)
    _validate({"rendered": [d for d in rendered if d["kind"] != "ServiceMonitor"]})
    kinds = {d["kind"] for d in rendered}
    if "--keda" in flags:
        assert "ScaledObject" in kinds
    if "--canary" in flags:
        assert {"HTTPRoute", "Job"} <= kinds
