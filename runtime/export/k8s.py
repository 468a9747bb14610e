"""Kubernetes manifests for a Bento: plain YAML plus a `kustomization.yaml`.

Layouts: single (one Deployment serving APIs and runners in-process), `split_runners` (an API
server Deployment wired by `NBENTO_RUNNER_MAP` to one Deployment per runner), and `yatai` (a
`serving.yatai.ai/v2alpha1` BentoDeployment and the BentoRequest it needs, see `k8s_yatai.py`).
The notebook, CLI and panel call `write_manifests(bento, K8sOptions(...))`.

`api_token_secret` (`--api-token-secret SECRET[:KEY]`) gives every server container, the split
layout's runners included, `NBENTO_API_TOKEN` from that Secret: clients then need
`Authorization: Bearer <token>`, and the API server sends it to its runners. The ServiceMonitor
scrapes `/metrics` with the same Secret.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from runtime.errors import BuildError
from runtime.export.bento_store import Bento, Resources
from runtime.export.dockerfile import BENTO_HOME, PORT, UID, serve_command
from runtime.export.k8s_autoscale import (
    adapter_rules,
    drain,
    queue_metric_spec,
    render_scaled_object,
    scales_on_queue,
)
from runtime.export.k8s_canary import render_canary
from runtime.export.k8s_network import runner_network_policy
from runtime.export.k8s_options import (
    K8sOptions,
    SecretEnv,
    autoscaling,
    dns_name,
    mebibytes,
    millicores,
)
from runtime.export.k8s_yatai import render_yatai
from runtime.export.written import write_files
from runtime.settings import ServerConfig, resolve_settings

Doc = dict[str, Any]
CONFIG_DIR = "/etc/nbento"
MANAGED_BY = "nbento"
TOKEN_ENV = "NBENTO_API_TOKEN"  # runtime.serving.auth.TOKEN_ENV (export does not import serving)
DEFAULT_TOKEN_KEY = "token"


def api_token_env(secret: str) -> SecretEnv:
    """`SECRET[:KEY]` as the `NBENTO_API_TOKEN` variable read from that Secret (key `token` by
    default), e.g. made with `kubectl create secret generic api-token --from-literal=token=...`."""
    name, _, key = secret.partition(":")
    try:
        return SecretEnv.parse(f"{TOKEN_ENV}={name}:{key or DEFAULT_TOKEN_KEY}")
    except BuildError:
        raise BuildError(
            f"--api-token-secret {secret!r} must name a Secret, optionally with its key: "
            f"SECRET or SECRET:KEY (key default '{DEFAULT_TOKEN_KEY}'), e.g. api-token:token"
        ) from None


def _with_api_token(options: K8sOptions) -> K8sOptions:
    """`options` with the API token among its Secret variables, for every layout."""
    from dataclasses import replace

    if options.api_token_secret is None:
        return options
    if any(s.env == TOKEN_ENV for s in options.secret_env):
        raise BuildError(
            f"--secret-env {TOKEN_ENV}=... and --api-token-secret both set the API token; "
            f"keep --api-token-secret"
        )
    token = api_token_env(options.api_token_secret)
    return replace(options, secret_env=[*options.secret_env, token])


# ------------------------------------------------------------------ building blocks


def _labels(bento: Bento, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": dns_name(bento.name),
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/version": bento.version[:63],
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def _selector(bento: Bento, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": dns_name(bento.name),
        "app.kubernetes.io/component": component,
    }


def _meta(name: str, labels: dict[str, str], namespace: str | None) -> Doc:
    meta: Doc = {"name": name, "labels": labels}
    if namespace:
        meta["namespace"] = namespace
    return meta


def _sum(resources: list[Resources]) -> Resources:
    return Resources(
        cpu=f"{sum(millicores(r.cpu) for r in resources)}m",
        memory=f"{sum(mebibytes(r.memory) for r in resources)}Mi",
        gpu=sum(r.gpu for r in resources),
    )


def _resources(res: Resources) -> Doc:
    """Requests as given; the CPU limit leaves room to burst, memory is capped at the request
    (a pod over its memory estimate should restart, not starve its node)."""
    limits: dict[str, Any] = {"cpu": f"{2 * millicores(res.cpu)}m", "memory": res.memory}
    requests: dict[str, Any] = {"cpu": res.cpu, "memory": res.memory}
    if res.gpu:
        limits["nvidia.com/gpu"] = res.gpu
        requests["nvidia.com/gpu"] = res.gpu
    return {"requests": requests, "limits": limits}


def _probe(path: str, period: int, failures: int) -> Doc:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def _container(
    bento: Bento,
    opts: K8sOptions,
    command: list[str],
    res: Resources,
    extra_env: list[Doc],
    config_name: str,
) -> Doc:
    env: list[Doc] = [
        {"name": "NBENTO_HOME", "value": BENTO_HOME},
        {"name": "NBENTO_CONFIG", "value": f"{CONFIG_DIR}/config.yaml"},
        *extra_env,
    ]
    for secret in opts.secret_env:
        env.append(
            {
                "name": secret.env,
                "valueFrom": {"secretKeyRef": {"name": secret.secret, "key": secret.key}},
            }
        )
    return {
        "name": "server",
        "image": opts.image or f"{bento.name}:{bento.version}",
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "env": env,
        "resources": _resources(res),
        # Slow model loads: allow up to 10 minutes before liveness starts counting.
        "startupProbe": _probe("/readyz", 5, 120),
        "readinessProbe": _probe("/readyz", 5, 3),
        "livenessProbe": _probe("/livez", 10, 3),
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        ],
    }


def _deployment(
    bento: Bento, opts: K8sOptions, name: str, component: str, container: Doc, config_name: str
) -> Doc:
    lifecycle, grace = drain(int(_shipped_settings(bento).graceful_timeout_s))
    container = {**container, "lifecycle": lifecycle}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, _labels(bento, component), opts.namespace),
        "spec": {
            "replicas": opts.replicas,
            "selector": {"matchLabels": _selector(bento, component)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {
                    "labels": _labels(bento, component),
                    "annotations": {
                        # A changed ConfigMap rolls the pods (they read it at start).
                        "nbento.dev/config-sha256": hashlib.sha256(
                            (bento.path / bento.info.config).read_bytes()
                        ).hexdigest(),
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(PORT),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": {
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": grace,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": UID,
                        "runAsGroup": UID,
                        "fsGroup": UID,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
                        {"name": "config", "configMap": {"name": config_name}},
                    ],
                },
            },
        },
    }


def _service(
    bento: Bento, opts: K8sOptions, name: str, component: str, *, headless: bool = False
) -> Doc:
    spec: Doc = {
        "type": "ClusterIP",
        "selector": _selector(bento, component),
        "ports": [{"name": "http", "port": PORT, "targetPort": "http", "protocol": "TCP"}],
    }
    if headless:  # DNS answers every ready pod; the API servers balance (serving/balancer.py)
        spec["clusterIP"] = "None"
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(name, _labels(bento, component), opts.namespace),
        "spec": spec,
    }


def _hpa(
    bento: Bento, opts: K8sOptions, name: str, component: str, spec: Doc | None = None
) -> Doc:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(name, _labels(bento, component), opts.namespace),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            **(spec or autoscaling(opts)),
        },
    }


def _runner_scaler(bento: Bento, opts: K8sOptions, name: str, component: str, runner: str) -> Doc:
    """A runner's HPA on CPU or queue depth, or its KEDA ScaledObject (k8s_autoscale.py)."""
    if opts.keda:
        meta = _meta(name, _labels(bento, component), opts.namespace)
        return render_scaled_object(opts, meta, name, runner)
    if scales_on_queue(opts, opts.gpu.get(runner, 0)):
        return _hpa(bento, opts, name, component, queue_metric_spec(opts))
    return _hpa(bento, opts, name, component)


def _pdb(bento: Bento, opts: K8sOptions, name: str, component: str) -> Doc:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(name, _labels(bento, component), opts.namespace),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": _selector(bento, component)}},
    }


def _service_monitor(bento: Bento, opts: K8sOptions) -> Doc:
    endpoint: Doc = {"port": "http", "path": "/metrics", "interval": "15s"}
    token = next((s for s in opts.secret_env if s.env == TOKEN_ENV), None)
    if token is not None:  # /metrics needs the token unless http.public_metrics is set
        endpoint["authorization"] = {
            "type": "Bearer", "credentials": {"name": token.secret, "key": token.key},
        }
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _meta(dns_name(bento.name), _labels(bento, "metrics"), opts.namespace),
        "spec": {
            "selector": {
                "matchLabels": {
                    "app.kubernetes.io/name": dns_name(bento.name),
                    "app.kubernetes.io/managed-by": MANAGED_BY,
                }
            },
            "endpoints": [endpoint],
        },
    }


def _shipped_settings(bento: Bento) -> ServerConfig:
    """The settings the pods start from: the Bento's config.yaml alone (the exporting shell's
    `NBENTO_*` variables are not the cluster's)."""
    return resolve_settings(bento.path / bento.info.config, env_layer=False)


def _config_map(bento: Bento, opts: K8sOptions, name: str) -> Doc:
    """The Bento's config.yaml, mounted at CONFIG_DIR and named by NBENTO_CONFIG: the same
    file, read by the same resolver, as `nbento serve BENTO` and the image."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(name, _labels(bento, "config"), opts.namespace),
        "data": {"config.yaml": (bento.path / bento.info.config).read_text()},
    }


def _component(
    bento: Bento,
    opts: K8sOptions,
    name: str,
    component: str,
    container: Doc,
    config_name: str,
    runner: str | None = None,
) -> list[Doc]:
    docs = [
        _deployment(bento, opts, name, component, container, config_name),
        _service(bento, opts, name, component, headless=runner is not None),
        _hpa(bento, opts, name, component)
        if runner is None
        else _runner_scaler(bento, opts, name, component, runner),
    ]
    if opts.pdb:
        docs.append(_pdb(bento, opts, name, component))
    return docs


# ------------------------------------------------------------------------ layouts


def runner_service_names(bento: Bento) -> dict[str, str]:
    """Runner name -> its Service name in the split layout."""
    base = dns_name(bento.name)
    return {r.name: dns_name(base, "runner", r.name) for r in bento.info.runners}


def runner_map(bento: Bento) -> dict[str, str]:
    """What the API server gets as NBENTO_RUNNER_MAP in the split layout: each runner's
    headless Service, resolved to every ready pod and balanced by the API server."""
    return {
        name: f"dns+http://{svc}:{PORT}" for name, svc in runner_service_names(bento).items()
    }


def render_manifests(bento: Bento, options: K8sOptions) -> dict[str, list[Doc]]:
    """File name -> the documents it holds (kustomization.yaml included)."""
    options.check(bento)
    options = _with_api_token(options)
    files: dict[str, list[Doc]]
    if options.canary is not None:
        from runtime.export.bento_store import get_bento

        files = render_canary(bento, get_bento(str(options.previous)), options, _plain_layout)
    elif options.yatai:
        files = render_yatai(bento, options)
    else:
        files = _plain_layout(bento, options)
    kustomization: Doc = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": list(files),
    }
    if options.namespace:
        kustomization["namespace"] = options.namespace
    files["kustomization.yaml"] = [kustomization]
    return files


def _plain_layout(bento: Bento, opts: K8sOptions) -> dict[str, list[Doc]]:
    base = dns_name(bento.name)
    config_name = dns_name(base, "config")
    entry = bento.info.entry_point
    files: dict[str, list[Doc]] = {"configmap.yaml": [_config_map(bento, opts, config_name)]}
    runners = bento.info.runners
    if not opts.split_runners:
        res = _sum([bento.info.api_server_resources, *(r.resources for r in runners)])
        res.gpu = sum(opts.gpu.values())
        container = _container(bento, opts, serve_command(entry), res, [], config_name)
        files["api-server.yaml"] = _component(
            bento, opts, base, "api-server", container, config_name
        )
    else:
        services = runner_service_names(bento)
        map_env = {
            "name": "NBENTO_RUNNER_MAP",
            "value": json.dumps(runner_map(bento), sort_keys=True),
        }
        container = _container(
            bento,
            opts,
            serve_command(entry),
            bento.info.api_server_resources,
            [map_env],
            config_name,
        )
        files["api-server.yaml"] = _component(
            bento, opts, base, "api-server", container, config_name
        )
        for runner in runners:
            res = runner.resources.model_copy(update={"gpu": opts.gpu.get(runner.name, 0)})
            command = [*serve_command(entry), "--runner", runner.name]
            component = dns_name("runner", runner.name)
            container = _container(bento, opts, command, res, [], config_name)
            name = services[runner.name]
            files[f"{component}.yaml"] = [
                *_component(bento, opts, name, component, container, config_name, runner.name),
                runner_network_policy(
                    _meta(name, _labels(bento, component), opts.namespace),
                    _selector(bento, component), _selector(bento, "api-server"), PORT,
                    prometheus=opts.service_monitor,
                ),
            ]
        if not opts.keda and any(scales_on_queue(opts, opts.gpu.get(r.name, 0)) for r in runners):
            meta = _meta(dns_name(base, "prometheus-adapter-rules"), _labels(bento, "metrics"),
                         opts.namespace)
            files["prometheus-adapter-rules.yaml"] = [adapter_rules(meta)]
    if opts.service_monitor:
        files["servicemonitor.yaml"] = [_service_monitor(bento, opts)]
    return files


def dump_documents(docs: list[Doc]) -> str:
    return "---\n".join(yaml.safe_dump(doc, sort_keys=False) for doc in docs)


def write_manifests(
    bento: Bento | str | Path,
    options: K8sOptions | str | Path | None = None,
    **overrides: Any,
) -> list[Path]:
    """Write the manifests into `options.out` (default `./k8s-BENTO_NAME`); returns the files.

    `bento` may be a Bento, its tag or its folder; `options` may be a folder (the output),
    and keyword arguments override `K8sOptions` fields, so the panel can call
    `write_manifests(bento, out_dir, split_runners=True)`. Files of the same names are
    replaced, files an earlier export wrote there and this layout lacks are removed
    (`runtime.export.written`); other files in the folder are left alone."""
    from dataclasses import fields, replace

    from runtime.export.bento_store import get_bento

    if not isinstance(bento, Bento):
        bento = get_bento(bento)
    if options is None:
        options = K8sOptions()
    elif not isinstance(options, K8sOptions):
        options = K8sOptions(out=Path(options))
    known = {f.name for f in fields(K8sOptions)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise BuildError(f"unknown Kubernetes export options {unknown}; known: {sorted(known)}")
    if overrides:
        options = replace(options, **{k: v for k, v in overrides.items() if v is not None})
    out = Path(options.out) if options.out else Path(f"k8s-{dns_name(bento.name)}")
    files = render_manifests(bento, options)
    return write_files(out, {name: dump_documents(docs) for name, docs in files.items()}).written
