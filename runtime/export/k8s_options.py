"""What `nbento export k8s` can change (`K8sOptions`) and the small rules every manifest shares:
DNS-safe names, resource quantities, the autoscaling block."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from runtime.errors import BuildError
from runtime.export.bento_store import Bento


@dataclass
class SecretEnv:
    """An environment variable read from a Kubernetes Secret (`ENV=SECRET:KEY`)."""

    env: str
    secret: str
    key: str

    @classmethod
    def parse(cls, text: str) -> SecretEnv:
        match = re.fullmatch(
            r"([A-Za-z_][A-Za-z0-9_]*)=([a-z0-9][a-z0-9.-]*):([-._a-zA-Z0-9]+)", text
        )
        if not match:
            raise BuildError(
                f"--secret-env {text!r} must look like ENV=SECRET_NAME:KEY, e.g. "
                f"OPENAI_API_KEY=llm-keys:openai"
            )
        return cls(*match.groups())


@dataclass
class K8sOptions:
    """Everything `nbento export k8s` can change; the defaults make a working deployment."""

    out: Path | None = None
    image: str | None = None  # default: BENTO_NAME:VERSION (what containerize tags)
    namespace: str | None = None
    split_runners: bool = False
    yatai: bool = False
    replicas: int = 1
    min_replicas: int | None = None  # default: replicas
    max_replicas: int = 3
    cpu_target_percent: int = 70
    gpu: dict[str, int] = field(default_factory=dict)  # runner name -> nvidia.com/gpu count
    service_monitor: bool = False
    pdb: bool = False
    secret_env: list[SecretEnv] = field(default_factory=list)
    # SECRET[:KEY] (key default "token"): NBENTO_API_TOKEN of every server, see k8s.api_token_env
    api_token_secret: str | None = None
    # Runner scaling (k8s_autoscale.py): None = CPU, or queue depth for runners with GPUs.
    autoscale_metric: Literal["cpu", "queue"] | None = None
    queue_target: int = 16  # rows waiting per runner pod before another is added
    keda: bool = False  # KEDA ScaledObjects with a Prometheus trigger instead of runner HPAs
    prometheus_url: str = "http://prometheus-operated.monitoring.svc:9090"
    # Canary (k8s_canary.py): this Bento gets `canary` percent, the `previous` Bento the rest.
    canary: int | None = None
    previous: str | None = None  # tag or folder of the Bento now in production
    gateway: str = "nbento-gateway"  # the Gateway API Gateway the HTTPRoute attaches to

    def check(self, bento: Bento) -> None:
        runners = {r.name for r in bento.info.runners}
        unknown = sorted(set(self.gpu) - runners)
        if unknown:
            raise BuildError(
                f"--gpu names runners this Bento does not have: {', '.join(unknown)}; its "
                f"runners: {', '.join(sorted(runners)) or '(none)'}"
            )
        if any(n < 1 for n in self.gpu.values()):
            raise BuildError(f"--gpu counts must be at least 1, got {self.gpu}")
        low = self.min_replicas if self.min_replicas is not None else self.replicas
        if self.replicas < 1 or low < 1 or self.max_replicas < low:
            raise BuildError(
                f"replicas must satisfy 1 <= --min <= --max and --replicas >= 1; got "
                f"replicas={self.replicas} min={low} max={self.max_replicas}"
            )
        if self.yatai and self.split_runners:
            raise BuildError(
                "--yatai runs the runners inside the one pod Yatai deploys (how it serves "
                "BentoML >= 1.2 Bentos); drop --split-runners"
            )
        self._check_scaling_and_canary()
        if self.namespace is not None and not _DNS_LABEL.fullmatch(self.namespace):
            raise BuildError(f"--namespace {self.namespace!r} is not a DNS-1123 label")


    def _check_scaling_and_canary(self) -> None:
        if self.autoscale_metric not in (None, "cpu", "queue"):
            raise BuildError(
                f"--autoscale-metric must be cpu or queue, got {self.autoscale_metric!r}"
            )
        if (self.keda or self.autoscale_metric == "queue") and not self.split_runners:
            raise BuildError(
                "--keda and --autoscale-metric queue scale runner Deployments; add "
                "--split-runners (the single layout scales one Deployment on CPU)"
            )
        if self.keda and self.autoscale_metric == "cpu":
            raise BuildError("--keda scales on queue depth; drop --autoscale-metric cpu")
        if self.queue_target < 1:
            raise BuildError(f"--queue-target must be at least 1 row, got {self.queue_target}")
        if (self.canary is None) != (self.previous is None):
            raise BuildError(
                "--canary PERCENT and --previous BENTO_TAG go together: the canary is this "
                "Bento, --previous names the one in production now (the rollback artifact)"
            )
        if self.canary is not None:
            if not 0 <= self.canary <= 100:
                raise BuildError(f"--canary is a percentage 0..100, got {self.canary}")
            if self.yatai:
                raise BuildError("--canary writes plain Deployments; drop --yatai")


_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


def dns_name(*parts: str) -> str:
    """A DNS-1035 label (Service names: lower case, starts with a letter, at most 63) made from
    `parts`; long names keep a hash suffix so two runners never collide."""
    text = "-".join(parts).lower()
    text = re.sub(r"[^a-z0-9-]+", "-", text).strip("-")
    text = re.sub(r"-{2,}", "-", text)
    if not text or not text[0].isalpha():
        text = f"nb-{text}".rstrip("-")
    if len(text) > 63:
        digest = hashlib.sha256("-".join(parts).encode()).hexdigest()[:8]
        text = f"{text[:54].rstrip('-')}-{digest}"
    return text


def millicores(cpu: str) -> int:
    return int(cpu[:-1]) if cpu.endswith("m") else int(float(cpu) * 1000)


def mebibytes(memory: str) -> int:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024, "Ti": 1024 * 1024}
    for suffix, factor in units.items():
        if memory.endswith(suffix):
            return int(float(memory[: -len(suffix)]) * factor)
    return int(int(memory) / (1024 * 1024))


def autoscaling(opts: K8sOptions) -> dict[str, Any]:
    """Replica bounds and the CPU target: the HPA spec and Yatai's autoscaling block alike."""
    return {
        "minReplicas": opts.min_replicas if opts.min_replicas is not None else opts.replicas,
        "maxReplicas": opts.max_replicas,
        "metrics": [
            {
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {
                        "type": "Utilization",
                        "averageUtilization": opts.cpu_target_percent,
                    },
                },
            }
        ],
    }
