"""A Yatai `BentoDeployment` (`serving.yatai.ai/v2alpha1`) for a Bento: the API server and
each runner with its own resources and autoscaling. Yatai runs the image and wires runners
itself, so this is the only object written (plus kustomization.yaml).

`spec.bento` names the Bento resource Yatai knows the image by (`NAME-VERSION`, made DNS
safe); push the Bento to Yatai (or create that resource) before applying.
"""

from __future__ import annotations

from typing import Any

from runtime.export.bento_store import Bento, Resources
from runtime.export.k8s_options import K8sOptions, autoscaling, dns_name, millicores


def _resources(res: Resources) -> dict[str, Any]:
    requests: dict[str, str] = {"cpu": res.cpu, "memory": res.memory}
    limits: dict[str, str] = {"cpu": f"{2 * millicores(res.cpu)}m", "memory": res.memory}
    if res.gpu:
        requests["gpu"] = limits["gpu"] = str(res.gpu)
    return {"requests": requests, "limits": limits}


def render_bento_deployment(bento: Bento, opts: K8sOptions) -> dict[str, Any]:
    envs: list[dict[str, Any]] = [
        {"name": s.env, "valueFrom": {"secretKeyRef": {"name": s.secret, "key": s.key}}}
        for s in opts.secret_env
    ]
    runners = []
    for runner in bento.info.runners:
        res = runner.resources.model_copy(update={"gpu": opts.gpu.get(runner.name, 0)})
        runners.append(
            {
                "name": runner.name,
                "resources": _resources(res),
                "autoscaling": autoscaling(opts),
            }
        )
    spec: dict[str, Any] = {
        "bento": dns_name(bento.name, bento.version),
        "resources": _resources(bento.info.api_server_resources),
        "autoscaling": autoscaling(opts),
        "ingress": {"enabled": False},
        "runners": runners,
    }
    if envs:
        spec["envs"] = envs
    metadata: dict[str, Any] = {
        "name": dns_name(bento.name),
        "labels": {
            "app.kubernetes.io/name": dns_name(bento.name),
            "app.kubernetes.io/version": bento.version[:63],
            "app.kubernetes.io/managed-by": "nbento",
        },
    }
    if opts.namespace:
        metadata["namespace"] = opts.namespace
    return {
        "apiVersion": "serving.yatai.ai/v2alpha1",
        "kind": "BentoDeployment",
        "metadata": metadata,
        "spec": spec,
    }
