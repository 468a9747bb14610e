"""Canary and blue/green rollout of a Bento (`nbento export k8s --canary PERCENT --previous TAG`):
both versions as Deployments labelled `nbento.dev/track: stable|canary` (the previous Bento is
the stable track and the rollback artifact), a Gateway API `HTTPRoute` splitting traffic by
weight between their Services, and a guard `Job` that replays the Bento's golden calls against
the canary Service (`nbento verify BENTO --url ...`) and fails when an answer differs.
`--canary 0` and `--canary 100` are the two ends of a blue/green switch.

Promote and rollback steps (kubectl): docs/export.md, "Canary and blue/green".
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from runtime.export.bento_store import Bento
from runtime.export.dockerfile import BENTO_HOME, PORT, UID
from runtime.export.k8s_options import K8sOptions, dns_name

Doc = dict[str, Any]
Layout = Callable[[Bento, K8sOptions], dict[str, list[Doc]]]
TRACK_LABEL = "nbento.dev/track"
# One copy of these serves both tracks.
SHARED_FILES = ("servicemonitor.yaml", "prometheus-adapter-rules.yaml")


def render_canary(
    bento: Bento, previous: Bento, opts: K8sOptions, layout: Layout
) -> dict[str, list[Doc]]:
    """File name -> documents: `stable-*.yaml` (the previous Bento), `canary-*.yaml` (this one),
    `httproute.yaml` and `canary-guard-job.yaml`."""
    percent = int(opts.canary or 0)
    plain = replace(opts, canary=None, previous=None)
    canary_files = layout(bento, plain)
    stable_files = layout(previous, replace(plain, image=None))
    files: dict[str, list[Doc]] = {}
    for name, docs in _retrack(stable_files, "stable").items():
        files[f"stable-{name}"] = docs
    for name, docs in _retrack(canary_files, "canary").items():
        files[f"canary-{name}"] = docs
    for shared in SHARED_FILES:
        if shared in canary_files:
            files[shared] = canary_files[shared]
    base = dns_name(bento.name)
    stable_svc = dns_name(dns_name(previous.name), "stable")
    canary_svc = dns_name(base, "canary")
    files["httproute.yaml"] = [_http_route(bento, opts, base, stable_svc, canary_svc, percent)]
    files["canary-guard-job.yaml"] = [_guard_job(bento, opts, canary_svc)]
    return files


def _retrack(files: dict[str, list[Doc]], track: str) -> dict[str, list[Doc]]:
    """One version's layout with every object renamed `NAME-TRACK` and selecting only its own
    track's pods, so two versions of the same Bento live side by side."""
    files = {k: copy.deepcopy(v) for k, v in files.items() if k not in SHARED_FILES}
    docs = [d for ds in files.values() for d in ds]
    names = {d["metadata"]["name"]: dns_name(d["metadata"]["name"], track) for d in docs}
    for doc in docs:
        meta = doc["metadata"]
        meta["name"] = names[meta["name"]]
        meta.setdefault("labels", {})[TRACK_LABEL] = track
        spec = doc.get("spec", {})
        kind = doc["kind"]
        if kind in ("Deployment", "PodDisruptionBudget"):
            spec["selector"]["matchLabels"][TRACK_LABEL] = track
        if kind == "Service":
            spec["selector"][TRACK_LABEL] = track
        if kind in ("HorizontalPodAutoscaler", "ScaledObject"):
            target = spec["scaleTargetRef"]
            target["name"] = names.get(target["name"], target["name"])
        if kind == "ScaledObject":
            for trigger in spec["triggers"]:
                query = trigger["metadata"]["query"]
                # only this track's pods (Deployment pods are NAME-<hash>-<id>)
                pods = f',pod=~"{target["name"]}-[a-z0-9]+-[a-z0-9]+"}})'
                trigger["metadata"]["query"] = query.replace("})", pods, 1)
        if kind == "Deployment":
            pod = spec["template"]
            pod["metadata"]["labels"][TRACK_LABEL] = track
            for volume in pod["spec"]["volumes"]:
                if "configMap" in volume:
                    old = volume["configMap"]["name"]
                    volume["configMap"]["name"] = names.get(old, old)
            for container in pod["spec"]["containers"]:
                for env in container.get("env", []):
                    if env["name"] == "NBENTO_RUNNER_MAP":
                        env["value"] = _renamed_runner_map(env["value"], names)
    return files


def _renamed_runner_map(value: str, names: dict[str, str]) -> str:
    mapping = json.loads(value)
    for runner, url in mapping.items():
        scheme, _, rest = url.partition("://")
        host, _, port = rest.partition(":")
        mapping[runner] = f"{scheme}://{names.get(host, host)}:{port}"
    return json.dumps(mapping, sort_keys=True)


def _labels(bento: Bento, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": dns_name(bento.name),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/version": bento.version[:63],
        "app.kubernetes.io/managed-by": "nbento",
    }


def _meta(name: str, labels: dict[str, str], opts: K8sOptions) -> Doc:
    meta: Doc = {"name": name, "labels": labels}
    if opts.namespace:
        meta["namespace"] = opts.namespace
    return meta


def _http_route(
    bento: Bento, opts: K8sOptions, name: str, stable: str, canary: str, percent: int
) -> Doc:
    """Gateway API v1 HTTPRoute: all paths of the service, `percent` to the canary."""
    return {
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": _meta(name, _labels(bento, "route"), opts),
        "spec": {
            "parentRefs": [{"name": opts.gateway}],
            "rules": [
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                    "backendRefs": [
                        {"name": stable, "port": PORT, "weight": 100 - percent},
                        {"name": canary, "port": PORT, "weight": percent},
                    ],
                }
            ],
        },
    }


_WAIT_READY = (
    "import sys, time, urllib.request\n"
    "url = sys.argv[1] + '/readyz'\n"
    "for _ in range(120):\n"
    "    try:\n"
    "        if urllib.request.urlopen(url, timeout=3).status == 200: sys.exit(0)\n"
    "    except OSError: pass\n"
    "    time.sleep(5)\n"
    "sys.exit(f'{url} not ready after 10 minutes')\n"
)


def _guard_job(bento: Bento, opts: K8sOptions, canary_svc: str) -> Doc:
    """The golden-call replay against the canary, from the canary's own image (the Bento and
    its recorded calls are at BENTO_HOME). It waits for the canary to be ready, then runs
    `nbento verify BENTO_HOME --url http://CANARY:PORT`, which exits non-zero on a differing
    answer: the Job fails and the rollout stops."""
    url = f"http://{canary_svc}:{PORT}"
    security = {
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    resources = {"requests": {"cpu": "100m", "memory": "256Mi"},
                 "limits": {"cpu": "1", "memory": "512Mi"}}
    image = opts.image or f"{bento.name}:{bento.version}"
    common = {
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "env": [{"name": "NBENTO_HOME", "value": BENTO_HOME}],
        "resources": resources,
        "securityContext": security,
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    labels = _labels(bento, "canary-guard")
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        # the version in the name: a new canary is a new Job (a Job's template is immutable)
        "metadata": _meta(dns_name(bento.name, "guard", bento.version), labels, opts),
        "spec": {
            "backoffLimit": 0,  # a differing answer is not a flake: fail once, stop
            "activeDeadlineSeconds": 1800,
            "ttlSecondsAfterFinished": 7 * 24 * 3600,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "Never",
                    "automountServiceAccountToken": False,
                    "securityContext": {
                        "runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "initContainers": [
                        {"name": "wait-for-canary",
                         "command": ["python", "-c", _WAIT_READY, url], **common}
                    ],
                    "containers": [
                        {"name": "golden-replay",
                         "command": ["nbento", "verify", BENTO_HOME, "--url", url], **common}
                    ],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
                },
            },
        },
    }
