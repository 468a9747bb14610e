"""Build a Bento's image with the Docker SDK against whatever engine `DOCKER_HOST` names
(dockerd, or podman's Docker-compatible API), streaming the build log as it goes.

The build runs with host networking so `pip install` inside the image uses the same network
path as the host (on machines where the bridge network has no DNS, it would fail otherwise).
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Callable, Mapping
from typing import Any

from runtime.errors import BuildError, ContainerEngineUnavailable, ImageBuildFailed
from runtime.export.bento_store import Bento
from runtime.store.artifacts import human_size
from runtime.store.model_store import ModelStore
from runtime.store.trust import untrusted_models

DOCKERFILE = "env/docker/Dockerfile"


def docker_build_command(
    bento: Bento, tag: str, build_args: Mapping[str, str] | None = None
) -> str:
    """The `docker build` command that does what `containerize` does."""
    parts = ["docker", "build", "--network", "host", "-f", f"{bento.path}/{DOCKERFILE}", "-t", tag]
    for key, value in (build_args or {}).items():
        parts += ["--build-arg", f"{key}={value}"]
    parts.append(str(bento.path))
    return shlex.join(parts)


def _client(base_url: str | None) -> Any:
    try:
        import docker
        from docker.errors import DockerException
    except ImportError as exc:
        raise ContainerEngineUnavailable(
            "the docker SDK is not installed (a build-only tool): pip install 'nbento[build]'"
        ) from exc

    where = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        client = docker.APIClient(base_url=where, timeout=600) if base_url else None
        if client is None:
            client = docker.from_env(timeout=600).api
        client.ping()
    except (DockerException, OSError) as exc:
        raise ContainerEngineUnavailable(
            f"no container engine answered at {where} ({type(exc).__name__}: {exc}). Start "
            f"dockerd (or `podman system service`) and set DOCKER_HOST, or build elsewhere"
        ) from exc
    return client


def containerize(
    bento: Bento,
    tag: str,
    *,
    base_url: str | None = None,
    build_args: Mapping[str, str] | None = None,
    log: Callable[[str], None] = print,
) -> str:
    """Build the image `tag` from `bento`; returns the image id. Each log line is passed to
    `log` with the elapsed time; the step counter (`Step 4/17`) shows progress, and the first
    and last lines give the build context's and the image's sizes.

    The image trusts the models it is built with (docs/security.md), so a Bento holding a
    model this machine does not trust is refused here, before any engine is contacted."""
    _check_models_trusted(bento)
    try:
        client = _client(base_url)
    except ContainerEngineUnavailable as exc:
        raise ContainerEngineUnavailable(
            f"{exc}.\nThe equivalent command:\n  {docker_build_command(bento, tag, build_args)}"
        ) from None
    from docker.errors import APIError

    started = time.monotonic()
    log(f"[{0.0:6.1f}s] sending the build context: {bento.path} "
        f"({human_size(bento.size_bytes())}) to {client.base_url}")
    image_id: str | None = None
    tail: list[str] = []
    try:
        stream = client.build(
            path=str(bento.path),
            dockerfile=DOCKERFILE,
            tag=tag,
            rm=True,
            forcerm=True,
            decode=True,
            network_mode="host",
            buildargs=dict(build_args or {}),
        )
        for chunk in stream:
            if "error" in chunk:
                detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                raise ImageBuildFailed(
                    f"image build failed: {detail.strip()}\nlast log lines:\n"
                    + "\n".join(tail[-15:])
                )
            aux = chunk.get("aux")
            if isinstance(aux, dict) and "ID" in aux:
                image_id = aux["ID"]
            text = chunk.get("stream") or chunk.get("status") or ""
            for line in text.rstrip("\n").splitlines():
                if line.strip():
                    tail.append(line)
                    log(f"[{time.monotonic() - started:6.1f}s] {line}")
    except APIError as exc:
        raise ImageBuildFailed(f"the engine refused the build: {exc.explanation or exc}") from exc
    image = client.inspect_image(image_id or tag)
    image_id = str(image_id or image["Id"])
    size = f", {human_size(int(image['Size']))}" if image.get("Size") else ""
    log(f"[{time.monotonic() - started:6.1f}s] built {tag} ({image_id[:19]}{size}) in "
        f"{time.monotonic() - started:.1f} s")
    return image_id


def _check_models_trusted(bento: Bento) -> None:
    refused = untrusted_models(ModelStore(bento.path / "models"))
    if refused:
        lines = "; ".join(f"{model.tag}: {' and '.join(why)}" for model, why in refused)
        raise BuildError(
            f"refusing to build an image from {bento.path}: the image would trust every model "
            f"it holds, and this machine does not trust {lines}. Review them, then run "
            f"`nbento models trust TAG` with NBENTO_HOME={bento.path} (see docs/security.md)"
        )
