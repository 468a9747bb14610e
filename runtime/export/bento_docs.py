"""The README.md shipped in every Bento: how a platform team builds, runs and deploys it,
written for someone who has never seen the notebook."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from runtime.export.dockerfile import BENTO_HOME, PORT

if TYPE_CHECKING:
    from runtime.export.bento_store import Bento, BentoInfo


def _example_body(schema: dict[str, object]) -> str:
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items")
        item_type = items.get("type") if isinstance(items, dict) else None
        return json.dumps(["text"] if item_type == "string" else [[0.0]])
    if kind == "string":
        return json.dumps("text")
    return "{...}"


def _bentoml_rows(info: BentoInfo) -> list[str]:
    if info.bentoml is None:  # built before BentoML interop
        return []
    module = info.bentoml.service.split(":")[0]
    return [f"| `src/{module}.py` | the same APIs for `bentoml serve` (BentoML 1.4) |"]


def render_readme(bento: Bento) -> str:
    info = bento.info
    image = f"{info.name}:{info.version}"
    lines = [
        f"# Bento `{info.name}:{info.version}`",
        "",
        f"Service `{info.service}`, built {info.creation_time:%Y-%m-%d %H:%M} UTC by nbento "
        f"{info.nbento_version} (Python {info.python_version}).",
        "",
        "## What is in here",
        "",
        "| path | what |",
        "|---|---|",
        "| `bento.yaml` | the manifest: APIs with their schemas, runners, pinned model tags |",
        "| `src/` | the service code (generated from the notebook) |",
        "| `models/` | the pinned model versions (store layout, with checksums in model.yaml) |",
        "| `env/python/requirements.txt` | the service's direct dependencies, pinned; nbento as a wheel in `wheels/` |",
        "| `env/docker/Dockerfile` | the image; build context is this folder |",
        "| `env/docker/entrypoint.sh` | the image's entry point (also Yatai's pod command) |",
        *_bentoml_rows(info),
        "| `config.yaml` | server and batching settings (`NBENTO_CONFIG`) |",
        "| `apis/openapi.yaml` | the HTTP API |",
        "",
        "## Build and run the image",
        "",
        "```sh",
        f"docker build -f env/docker/Dockerfile -t {image} .",
        f"docker run --rm -p {PORT}:{PORT} {image}",
        "```",
        "",
        f"The image runs as uid 1000, serves on 0.0.0.0:{PORT}, and works with a read-only root "
        "filesystem as long as `/tmp` is writable. Change the port by appending "
        f"`--port N` to `docker run ... {image}` (the HEALTHCHECK probes {PORT}). The base "
        f"image is `{info.environment.base_image}`; pass `--build-arg BASE_IMAGE=...` to change it.",
        "",
        "Or let nbento do it: `nbento containerize "
        f"{info.name}:{info.version} --tag {image}` (talks to the engine in `DOCKER_HOST`).",
        "",
        "## Run without a container",
        "",
        "```sh",
        "python -m venv .venv && . .venv/bin/activate",
        "(cd src && pip install -r ../env/python/requirements.txt)",
        f"NBENTO_HOME=$PWD NBENTO_CONFIG=$PWD/config.yaml nbento serve {info.entry_point} --port {PORT}",
        "```",
        "",
        "## Endpoints",
        "",
        "| route | input | notes |",
        "|---|---|---|",
    ]
    for api in info.apis:
        batch = f"batchable (max {api.max_batch_size or 'default'} rows)" if api.batchable else ""
        lines.append(f"| `POST {api.route}` | `{_example_body(api.input_schema)}` | {batch} |")
    lines += [
        "| `GET /readyz` | | 200 once every model is loaded (readiness) |",
        "| `GET /livez` | | 200 while the process is alive (liveness) |",
        "| `GET /metrics` | | Prometheus metrics |",
        "",
        "## Runners and models",
        "",
        "| runner | model | batchable methods | resources |",
        "|---|---|---|---|",
    ]
    for runner in info.runners:
        methods = ", ".join(m for m, spec in runner.methods.items() if spec.batchable) or "-"
        res = runner.resources
        lines.append(
            f"| {runner.name} | `{runner.model_tag}` | {methods} | cpu {res.cpu}, memory {res.memory} |"
        )
    lines += [
        "",
        "## Kubernetes",
        "",
        "```sh",
        f"nbento export k8s {info.name}:{info.version} --image REGISTRY/{image} --out k8s/",
        f"nbento export k8s {info.name}:{info.version} --split-runners --out k8s-split/   "
        "# one Deployment per runner",
        "kubectl apply -k k8s/",
        "```",
        "",
        "In the split layout each runner runs as "
        f"`nbento serve {BENTO_HOME}/src --runner NAME` and the API server finds them through "
        "`NBENTO_RUNNER_MAP` (JSON: runner name -> URL).",
        "",
    ]
    return "\n".join(lines)
