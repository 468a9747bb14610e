"""How runner Deployments of the split layout scale: on CPU (the default for CPU-only runners),
on work waiting (the runner's `nbento_runner_queue_depth` gauge, the default for runners with
GPUs) through an HPA `Pods` metric served by the Prometheus Adapter, or with a KEDA
`ScaledObject` and a Prometheus trigger (`--keda`). Also the drain timing every pod shares, so
scale-down never cuts a batch in flight.
"""

from __future__ import annotations

from typing import Any

from runtime.export.k8s_options import K8sOptions, autoscaling

Doc = dict[str, Any]
QUEUE_METRIC = "nbento_runner_queue_depth"
# API servers resolve a runner's headless Service again every 5 s (balancer.BalancingOptions);
# a pod leaving waits this long before SIGTERM so no API server still picks it.
ENDPOINT_DELAY_S = 6


def scales_on_queue(opts: K8sOptions, gpus: int) -> bool:
    """Whether a runner with `gpus` GPUs scales on queue depth: `--keda` and `--autoscale-metric
    queue` say so for all; otherwise runners with GPUs do (their CPU says little)."""
    if opts.keda:
        return True
    if opts.autoscale_metric is not None:
        return opts.autoscale_metric == "queue"
    return gpus > 0


def drain(drain_s: int) -> tuple[Doc, int]:
    """The container `lifecycle` and pod `terminationGracePeriodSeconds`: wait for endpoint
    removal to reach the API servers, then the server's own drain (`drain_s`, the Bento's
    `graceful_timeout_s`: it finishes queued and in-flight batches after SIGTERM), plus a
    margin."""
    lifecycle = {"preStop": {"exec": {"command": ["sleep", str(ENDPOINT_DELAY_S)]}}}
    return lifecycle, ENDPOINT_DELAY_S + drain_s + 5


def queue_metric_spec(opts: K8sOptions) -> Doc:
    """An `autoscaling/v2` HPA spec (without scaleTargetRef) on rows waiting per pod."""
    spec = autoscaling(opts)
    spec["metrics"] = [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": QUEUE_METRIC},
                "target": {"type": "AverageValue", "averageValue": str(opts.queue_target)},
            },
        }
    ]
    # Queue depth swings within seconds; scale up at once, down only after it stayed low.
    spec["behavior"] = {
        "scaleUp": {"stabilizationWindowSeconds": 0},
        "scaleDown": {"stabilizationWindowSeconds": 300},
    }
    return spec


def render_scaled_object(
    opts: K8sOptions, metadata: Doc, deployment: str, runner: str
) -> Doc:
    """A KEDA `ScaledObject` (keda.sh/v1alpha1) scaling `deployment` on the rows waiting in
    `runner`'s queues, per replica (`threshold` is an AverageValue target)."""
    low = opts.min_replicas if opts.min_replicas is not None else opts.replicas
    matchers = [f'runner="{runner}"']
    if opts.namespace:
        matchers.append(f'namespace="{opts.namespace}"')
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": metadata,
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment},
            "minReplicaCount": low,
            "maxReplicaCount": opts.max_replicas,
            "pollingInterval": 15,
            "cooldownPeriod": 300,
            "triggers": [
                {
                    "type": "prometheus",
                    "metadata": {
                        "serverAddress": opts.prometheus_url,
                        "query": f"sum({QUEUE_METRIC}{{{','.join(matchers)}}})",
                        "threshold": str(opts.queue_target),
                    },
                }
            ],
        },
    }


def adapter_rules(metadata: Doc) -> Doc:
    """A ConfigMap holding the Prometheus Adapter rule that serves the queue gauge as the
    custom metric `nbento_runner_queue_depth` per pod (merge its `config.yaml` into the
    adapter's own rules; docs/export.md)."""
    rule = (
        "rules:\n"
        f"- seriesQuery: '{QUEUE_METRIC}{{namespace!=\"\",pod!=\"\"}}'\n"
        "  resources:\n"
        "    overrides:\n"
        "      namespace: {resource: namespace}\n"
        "      pod: {resource: pod}\n"
        "  name:\n"
        f'    matches: "^{QUEUE_METRIC}$"\n'
        f'    as: "{QUEUE_METRIC}"\n'
        "  metricsQuery: 'sum(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)'\n"
    )
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata,
            "data": {"config.yaml": rule}}
