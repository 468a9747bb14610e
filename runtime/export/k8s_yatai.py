"""Yatai objects for a Bento: the `BentoRequest` (`resources.yatai.ai/v1alpha1`) that has
yatai-image-builder turn the pushed Bento into an image, and the `BentoDeployment`
(`serving.yatai.ai/v2alpha1`) that serves it.

The Bento is a BentoML >= 1.2 Bento without BentoML runners, so Yatai runs one pod per replica
(`./env/docker/entrypoint.sh bentoml serve . --production`), and nbento's runners live in that
pod: its resources are the API server's plus every runner's. Push the Bento first
(`bentoml import FILE.bento && bentoml push NAME:VERSION`, docs/export.md): the BentoRequest
names it by tag and the image builder downloads it and its models from Yatai.
"""

from __future__ import annotations

from typing import Any

from runtime.export.bento_store import Bento, Resources
from runtime.export.dockerfile import BENTOML_REQUIREMENT
from runtime.export.k8s_options import K8sOptions, autoscaling, dns_name, mebibytes, millicores


def pod_resources(bento: Bento, opts: K8sOptions) -> Resources:
    """The API server's resources plus every runner's: they share the pod."""
    parts = [bento.info.api_server_resources, *(r.resources for r in bento.info.runners)]
    cpu = sum(millicores(p.cpu) for p in parts)
    memory = sum(mebibytes(p.memory) for p in parts)
    gpu = sum(opts.gpu.get(r.name, 0) for r in bento.info.runners)
    return Resources(cpu=f"{cpu}m", memory=f"{memory}Mi", gpu=gpu)


def _resources(res: Resources) -> dict[str, Any]:
    requests: dict[str, str] = {"cpu": res.cpu, "memory": res.memory}
    limits: dict[str, str] = {"cpu": f"{2 * millicores(res.cpu)}m", "memory": res.memory}
    if res.gpu:
        requests["gpu"] = limits["gpu"] = str(res.gpu)
    return {"requests": requests, "limits": limits}


def _metadata(bento: Bento, opts: K8sOptions, name: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "labels": {
            "app.kubernetes.io/name": dns_name(bento.name),
            "app.kubernetes.io/version": bento.version[:63],
            "app.kubernetes.io/managed-by": "nbento",
        },
    }
    if opts.namespace:
        metadata["namespace"] = opts.namespace
    return metadata


def bento_resource_name(bento: Bento) -> str:
    """The name of the BentoRequest, and of the Bento resource the image builder makes from
    it, which the BentoDeployment's `spec.bento` names."""
    return dns_name(bento.name, bento.version)


def render_bento_request(bento: Bento, opts: K8sOptions) -> dict[str, Any]:
    return {
        "apiVersion": "resources.yatai.ai/v1alpha1",
        "kind": "BentoRequest",
        "metadata": _metadata(bento, opts, bento_resource_name(bento)),
        "spec": {
            "bentoTag": str(bento.tag),
            "models": [{"tag": m.tag} for m in bento.info.models],
            "context": {"bentomlVersion": BENTOML_REQUIREMENT.partition("==")[2]},
        },
    }


def render_bento_deployment(bento: Bento, opts: K8sOptions) -> dict[str, Any]:
    envs: list[dict[str, Any]] = [
        {"name": s.env, "valueFrom": {"secretKeyRef": {"name": s.secret, "key": s.key}}}
        for s in opts.secret_env
    ]
    spec: dict[str, Any] = {
        "bento": bento_resource_name(bento),
        "resources": _resources(pod_resources(bento, opts)),
        "autoscaling": autoscaling(opts),
        "ingress": {"enabled": False},
    }
    if envs:
        spec["envs"] = envs
    return {
        "apiVersion": "serving.yatai.ai/v2alpha1",
        "kind": "BentoDeployment",
        "metadata": _metadata(bento, opts, dns_name(bento.name)),
        "spec": spec,
    }


def render_yatai(bento: Bento, opts: K8sOptions) -> dict[str, list[dict[str, Any]]]:
    """File name -> documents, for `nbento export k8s --yatai`."""
    return {
        "bentorequest.yaml": [render_bento_request(bento, opts)],
        "bentodeployment.yaml": [render_bento_deployment(bento, opts)],
    }
