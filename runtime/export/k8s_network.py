"""The split layout's NetworkPolicy: a runner pod answers only the API server pods of its own
Bento, on the runner port. A runner's `/_runner/*` routes take already-decoded batches and run
the model; nothing else in the cluster has a reason to call them (the API token, when set, is a
second lock). Kubelet probes come from the node and are not subject to NetworkPolicy; with a
ServiceMonitor the Prometheus pods (`app.kubernetes.io/name: prometheus`, the operator's label)
may scrape `/metrics` too, since the queue-based autoscaling reads the runners' metrics."""

from __future__ import annotations

from typing import Any

Doc = dict[str, Any]

PROMETHEUS_PODS = {"app.kubernetes.io/name": "prometheus"}


def runner_network_policy(
    meta: Doc, runner_pods: dict[str, str], api_pods: dict[str, str], port: int,
    *, prometheus: bool = False,
) -> Doc:
    """A NetworkPolicy selecting the runner's pods (`runner_pods` labels) that admits TCP
    `port` from the API server's pods (`api_pods` labels, same namespace) and, with
    `prometheus`, from Prometheus pods in any namespace."""
    ports = [{"protocol": "TCP", "port": port}]
    allowed: list[Doc] = [{"from": [{"podSelector": {"matchLabels": dict(api_pods)}}],
                           "ports": ports}]
    if prometheus:
        allowed.append({
            "from": [{"namespaceSelector": {},
                      "podSelector": {"matchLabels": dict(PROMETHEUS_PODS)}}],
            "ports": ports,
        })
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta,
        "spec": {
            "podSelector": {"matchLabels": dict(runner_pods)},
            "policyTypes": ["Ingress"],
            "ingress": allowed,
        },
    }
