"""`build_bento`: one self-contained folder a platform team can build an image from, and the
local bento store (`$NBENTO_HOME/bentos/NAME/VERSION/`). The notebook, the CLI and the panel
all call `build_bento`.

    bento = build_bento("examples/support_tickets.ipynb", labels={"team": "support"})
    print(bento.path)            # ~/.nbento/bentos/support_tickets/20261121-...

A Bento folder is itself an `NBENTO_HOME`: its `models/` has the store layout, so
`NBENTO_HOME=BENTO nbento serve BENTO/src` serves exactly what was built.
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from runtime import __version__
from runtime.errors import BuildError, ChecksumMismatch
from runtime.export.bento_docs import render_readme
from runtime.export.bento_src import select_files
from runtime.export.bento_store import (
    BENTO_FILE,
    CONFIG_FILE,
    Bento,
    BentoApi,
    BentoEnvironment,
    BentoInfo,
    BentoModel,
    BentoRunner,
    Resources,
    RunnerMethod,
    bentos_root,
)
from runtime.export.bentoml_service import finish_for_bentoml
from runtime.export.dockerfile import DockerOptions, render_dockerfile, serve_command
from runtime.export.requirements import pickled_modules, resolve_requirements
from runtime.service.definition import Service, load_service
from runtime.service.sources import SERVICE_MODULE, ServiceSource, resolve_source
from runtime.settings import ServerConfig, load_config
from runtime.tags import new_version, validate_name

TMP_PREFIX = ".tmp-"
_MIB = 1024 * 1024


def build_bento(
    source: str | Path | ServiceSource,
    *,
    output: str | Path | None = None,
    labels: Mapping[str, str] | None = None,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] | None = None,
    base_image: str | None = None,
    python_version: str | None = None,
    system_packages: Iterable[str] | None = None,
    packages: Iterable[str] | None = None,
    config: str | Path | ServerConfig | None = None,
    progress: Callable[[str], None] | None = None,
) -> Bento:
    """Build a Bento from a notebook, a service folder, a `.py` file or a module.

    `base_image` defaults to `python:{python_version}-slim`, `python_version` to this
    interpreter's. `packages` adds pip requirements the import scan cannot see; `config` (a
    ServerConfig or a YAML path) seeds the batching settings shipped in `config.yaml`.
    `progress` receives one line per step (the panel shows them).
    Raises `BuildError` for secrets, missing models or bad options."""
    report = progress or (lambda _msg: None)
    src = source if isinstance(source, ServiceSource) else resolve_source(source)
    service = load_service(src)
    entry = _entry_file(service)
    labels = _check_labels(labels or {})
    py_version = python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    image = base_image or f"python:{py_version}-slim"
    files = select_files(entry, include or (), exclude or ())
    target_entry = _target_entry_name(service, entry)
    server_config = config if isinstance(config, ServerConfig) else load_config(config)

    name = validate_name(service.name, "service name")
    version = new_version()
    store_dir = bentos_root() / name
    store_dir.mkdir(parents=True, exist_ok=True)
    tmp = store_dir / f"{TMP_PREFIX}{version}"
    try:
        tmp.mkdir()
        for path, rel in files.items():
            dest = tmp / "src" / (target_entry if path == entry else rel)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
        report(f"copying {len(service.runners)} model(s) with checksums verified")
        models, runners, frameworks = _copy_models(service, server_config, tmp / "models")
        report("pinning Python requirements (and building the nbento wheel)")
        reqs = resolve_requirements(
            [p for p in files if p.suffix == ".py"],
            local_modules={Path(rel).parts[0].removesuffix(".py") for rel in files.values()},
            frameworks=frameworks,
            extra_packages=packages or (),
            wheel_dir=tmp / "env" / "python" / "wheels",
        )
        (tmp / "env" / "python" / "requirements.txt").write_text(reqs.render())
        entry_point = "src" if target_entry == SERVICE_MODULE else f"src/{target_entry}"
        sys_packages = sorted(set(system_packages or ()))
        docker = DockerOptions(base_image=image, system_packages=sys_packages, entry=entry_point)
        (tmp / "env" / "docker").mkdir(parents=True)
        (tmp / "env" / "docker" / "Dockerfile").write_text(render_dockerfile(docker))
        report("writing Dockerfile, OpenAPI document and bento.yaml")
        apis = _describe_apis(service)
        (tmp / "apis").mkdir()
        openapi = _openapi_document(service, apis)
        (tmp / "apis" / "openapi.yaml").write_text(yaml.safe_dump(openapi, sort_keys=False))
        (tmp / CONFIG_FILE).write_text(_config_yaml(server_config, runners))
        info = BentoInfo(
            name=name,
            version=version,
            service=service.name,
            entry_point=entry_point,
            command=serve_command(entry_point),
            creation_time=datetime.now(timezone.utc),
            nbento_version=__version__,
            labels=labels,
            source={
                "origin": str(src.origin) if src.origin else None,
                "sha256": service.source_sha256,
            },
            apis=apis,
            runners=runners,
            models=models,
            python_version=py_version,
            environment=BentoEnvironment(
                python_version=py_version,
                base_image=image,
                system_packages=sys_packages,
                packages={k: reqs.pinned[k] for k in sorted(reqs.direct) if k in reqs.pinned},
                wheels=[f"env/python/wheels/{w.name}" for w in reqs.wheels],
                unresolved_imports=reqs.unresolved,
                built_on={
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
            ),
        )
        info = finish_for_bentoml(tmp, service, info, server_config)
        bento = Bento(tmp, info)
        (tmp / "README.md").write_text(render_readme(bento))
        (tmp / BENTO_FILE).write_text(info.to_yaml())
        final = store_dir / version
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    bento = Bento(final, info)
    if output is not None:
        _copy_out(bento, Path(output))
    return bento


def _entry_file(service: Service) -> Path:
    if service.source.path is not None:
        return Path(service.source.path)
    file = getattr(service.module, "__file__", None)
    if not file:
        raise BuildError(f"cannot find the file of service module {service.source.module!r}")
    return Path(file)


def _target_entry_name(service: Service, entry: Path) -> str:
    """Keep the file name unless the service is named after its folder (a `service.py` with
    no SERVICE_NAME): inside the Bento the folder is `src`, so name the file after the
    service to keep its name."""
    if entry.name == SERVICE_MODULE and not getattr(service.module, "SERVICE_NAME", None):
        return f"{service.name}.py"
    return entry.name


def _check_labels(labels: Mapping[str, str]) -> dict[str, str]:
    checked: dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise BuildError(f"labels are text key=value pairs, got {key!r}={value!r}")
        checked[key] = value
    return checked


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _copy_models(
    service: Service, config: ServerConfig, dest: Path
) -> tuple[list[BentoModel], list[BentoRunner], dict[str, str]]:
    """Copy each runner's model version (resolved now, so `latest` never ships) with its
    checksums verified on the way. Returns the bento.yaml entries and framework -> model."""
    from runtime.store.model_store import get

    models: dict[str, BentoModel] = {}
    runners: list[BentoRunner] = []
    frameworks: dict[str, str] = {}
    for runner_name, handle in sorted(service.runners.items()):
        model = get(handle.tag)
        tag = str(model.tag)
        if tag not in models:
            target = dest / model.tag.name / str(model.tag.version)
            target.mkdir(parents=True)
            for rel, expected in model.info.files.items():
                src_file = model.path / rel
                out = target / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src_file, out)
                if _sha256(out) != expected:
                    raise ChecksumMismatch(
                        f"model {tag}: {rel} does not match the checksum recorded when it was "
                        f"saved; the store copy is damaged, save the model again"
                    )
            shutil.copyfile(model.path / "model.yaml", target / "model.yaml")
            models[tag] = BentoModel(
                tag=tag,
                framework=model.info.framework.name,
                framework_version=model.info.framework.version,
                size_bytes=model.info.size_bytes,
                model_yaml_sha256=_sha256(target / "model.yaml"),
            )
            frameworks.setdefault(model.info.framework.name, tag)
            # The artifact format may need its own package (sklearn models saved with skops),
            # and a pickle needs the modules it refers to.
            fmt = model.info.options.get("format")
            if isinstance(fmt, str):
                frameworks.setdefault(fmt, tag)
            for rel in model.info.files:
                for module in sorted(pickled_modules(target / rel)):
                    frameworks.setdefault(module, tag)
            serializer_root = model.info.module.split(".")[0]
            if serializer_root not in ("runtime", "jupyter_ext"):
                frameworks.setdefault(serializer_root, tag)
        methods: dict[str, RunnerMethod] = {}
        runner_config = config.runner(runner_name)
        for method, signature in sorted(model.info.signatures.items()):
            batching = None
            if signature.batchable:
                settings = runner_config.for_method(method).model_dump()
                settings.update(handle.batching.get("*", {}))
                settings.update(handle.batching.get(method, {}))
                batching = settings
            methods[method] = RunnerMethod(
                batchable=signature.batchable, batch_dim=signature.batch_dim, batching=batching
            )
        memory_mib = max(512, 256 + 3 * model.info.size_bytes // _MIB)
        runners.append(
            BentoRunner(
                name=runner_name,
                model_tag=tag,
                methods=methods,
                resources=Resources(cpu="1", memory=f"{memory_mib}Mi"),
            )
        )
    return list(models.values()), runners, frameworks


def _config_yaml(config: ServerConfig, runners: list[BentoRunner]) -> str:
    """The server settings the image runs with (mounted from a ConfigMap in Kubernetes).
    Listen address, dev mode and the runner map are deployment concerns: left out."""
    data = config.model_dump(mode="json", exclude={"host", "port", "dev", "reload", "runner_map"})
    for runner in runners:
        entry = data["runners"].setdefault(runner.name, {})
        methods = {m: spec.batching for m, spec in runner.methods.items() if spec.batching}
        if methods:
            entry.setdefault("methods", {}).update(methods)
    header = "# nbento server settings (docs/settings.md). Mounted as NBENTO_CONFIG.\n"
    return header + yaml.safe_dump(data, sort_keys=False)


def _describe_apis(service: Service) -> list[BentoApi]:
    from runtime.service.schema import ApiSchema
    from runtime.serving.openapi import api_io_schemas

    described = []
    for name, spec in sorted(service.apis.items()):
        try:
            input_schema, output_schema = api_io_schemas(ApiSchema(spec))
        except TypeError as exc:  # a signature the server could not serve either
            raise BuildError(f"API '{name}' cannot be described: {exc}") from exc
        described.append(
            BentoApi(
                name=name,
                route=spec.route,
                batchable=spec.batchable,
                max_batch_size=spec.max_batch_size,
                max_latency_ms=spec.max_latency_ms,
                doc=spec.doc,
                input_schema=input_schema,
                output_schema=output_schema,
            )
        )
    return described


def _openapi_document(service: Service, apis: list[BentoApi]) -> dict[str, Any]:
    from runtime.serving.openapi import service_openapi

    return service_openapi(service)


def _copy_out(bento: Bento, output: Path) -> None:
    if output.exists() and any(output.iterdir()):
        raise BuildError(
            f"--output {output} exists and is not empty; choose a new folder (the Bento is "
            f"also in the store at {bento.path})"
        )
    shutil.copytree(bento.path, output, dirs_exist_ok=True)
