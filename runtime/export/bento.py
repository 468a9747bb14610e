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
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from runtime import __version__
from runtime.errors import BuildError, ChecksumMismatch, ModelNotFound
from runtime.export.bento_docs import render_readme
from runtime.export.bento_src import refuse_free_names, select_files, service_manifest
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
from runtime.export.golden import GOLDEN_FILE, Golden, ship_goldens
from runtime.export.golden_replay import cell_labels, replay_served
from runtime.export.model_loads import ShippedLoad, shipped_loads
from runtime.export.requirements import pickled_modules, resolve_requirements
from runtime.export.secret_scan import CellMap
from runtime.service.definition import Service, load_service
from runtime.service.sources import SERVICE_MODULE, ServiceSource, resolve_source
from runtime.serving.effective import effective_settings
from runtime.settings import DEPLOYMENT_KEYS, ServerConfig, resolve_settings
from runtime.store.artifacts import human_size
from runtime.tags import new_version, validate_name

if TYPE_CHECKING:
    from runtime.store.model_store import Model

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
    allow_free_names: bool = False,
    replay: bool = True,
) -> Bento:
    """Build a Bento from a notebook, a service folder, a `.py` file or a module.

    `base_image` defaults to `python:{python_version}-slim`, `python_version` to this
    interpreter's. `packages` adds pip requirements the import scan cannot see; `config` (a
    ServerConfig or a YAML path, default `$NBENTO_CONFIG`) is shipped as `config.yaml`, the
    settings file the Bento is served with; the code's own batching stays in the code, below
    it, as with `nbento serve` (docs/settings.md).
    `progress` receives one line per step, with sizes and times (the panel and the CLI
    show them).
    Raises `BuildError` for secrets, missing models or bad options, for names the captured
    cells use but never define (unless `allow_free_names`), and when the built Bento answers
    a golden request differently from the notebook (unless `replay` is False)."""
    report = progress or (lambda _msg: None)
    started = time.perf_counter()
    src = source if isinstance(source, ServiceSource) else resolve_source(source)
    service = load_service(src)
    entry = _entry_file(service)
    manifest = service_manifest(entry)
    refuse_free_names(manifest, allow=allow_free_names)
    labels = _check_labels(labels or {})
    py_version = python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    image = base_image or f"python:{py_version}-slim"
    files = select_files(entry, include or (), exclude or ())
    loads = shipped_loads(files, CellMap.from_manifest(manifest))
    target_entry = _target_entry_name(service, entry)
    server_config = _build_settings(config)

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
        report(f"copied {len(files)} source file(s) into src/ ({human_size(_tree_size(tmp / 'src'))})")
        models, runners, frameworks = _copy_models(service, tmp / "models", report, loads)
        settings_view = effective_settings(server_config, service)
        _record_batching(runners, settings_view)
        report("pinning Python requirements (and building the nbento wheel)...")
        step = time.perf_counter()
        reqs = resolve_requirements(
            [p for p in files if p.suffix == ".py"],
            local_modules={Path(rel).parts[0].removesuffix(".py") for rel in files.values()},
            frameworks=frameworks,
            extra_packages=packages or (),
            wheel_dir=tmp / "env" / "python" / "wheels",
        )
        (tmp / "env" / "python" / "requirements.txt").write_text(reqs.render())
        wheels = "".join(f", {w.name} {human_size(w.stat().st_size)}" for w in reqs.wheels)
        report(f"pinned {len(reqs.pinned)} requirement(s){wheels} in {time.perf_counter() - step:.1f} s")
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
        (tmp / CONFIG_FILE).write_text(_config_yaml(server_config, settings_view))
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
        goldens = ship_goldens(entry.parent, tmp)
        if goldens and replay:
            _replay_goldens(goldens, tmp, entry_point, manifest, report)
        final = store_dir / version
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    bento = Bento(final, info)
    report(f"Bento {name}:{version}: {human_size(_tree_size(final))} in {time.perf_counter() - started:.1f} s")
    if output is not None:
        _copy_out(bento, Path(output))
    return bento


def _tree_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
def _replay_goldens(
    goldens: list[Golden], bento_dir: Path, entry_point: str, manifest: dict[str, Any] | None,
    report: Callable[[str], None],
) -> None:
    """Serve the Bento being built as the image will (its src/, its models as the store) and
    refuse it when any recorded answer differs."""
    report(f"starting the built Bento to replay {len(goldens)} golden answer(s)")
    result = replay_served(
        goldens, bento_dir / entry_point, home=bento_dir, config=bento_dir / CONFIG_FILE,
        cells=cell_labels(manifest), progress=report,
    )
    if not result.ok:
        raise BuildError(
            f"refusing to build: the Bento answers differently from the notebook. "
            f"{result.message()}\nIf the change is intended, re-run the API cell's sample calls "
            f"(or %nbento call) to record the new answers, or delete the lines from "
            f"{GOLDEN_FILE}; to build anyway: --skip-replay"
        )
    report(result.summary())


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
    service: Service, dest: Path, report: Callable[[str], None],
    loads: Sequence[ShippedLoad] = (),
) -> tuple[list[BentoModel], list[BentoRunner], dict[str, str]]:
    """Copy each runner's model version, and each version the code loads from the store
    itself (`load("NAME:latest")`), resolved now so `latest` never ships: the Bento's store
    holds exactly these versions. Checksums are verified on the way; sizes and times are
    reported. Returns the bento.yaml entries and framework -> model."""
    from runtime.store.model_store import get

    models: dict[str, BentoModel] = {}
    runners: list[BentoRunner] = []
    frameworks: dict[str, str] = {}

    def copy(model: Model) -> str:
        tag = str(model.tag)
        if tag not in models:
            models[tag] = _copy_model(model, dest, report, frameworks)
        return tag

    for runner_name, handle in sorted(service.runners.items()):
        model = get(handle.tag)
        tag = copy(model)
        methods = {
            method: RunnerMethod(batchable=signature.batchable, batch_dim=signature.batch_dim)
            for method, signature in sorted(model.info.signatures.items())
        }
        memory_mib = max(512, 256 + 3 * model.info.size_bytes // _MIB)
        runners.append(
            BentoRunner(
                name=runner_name,
                model_tag=tag,
                methods=methods,
                resources=Resources(cpu="1", memory=f"{memory_mib}Mi"),
            )
        )
    for shipped in loads:
        assert shipped.load.tag is not None  # shipped_loads refused the others
        try:
            loaded = get(shipped.load.tag)
        except ModelNotFound as exc:
            raise ModelNotFound(f"{exc}; {shipped.where} loads it: {shipped.load.call}") from None
        tag = copy(loaded)
        report(f"pinned {shipped.load.tag} -> {tag}, loaded by {shipped.where}")
    return list(models.values()), runners, frameworks


def _copy_model(
    model: Model, dest: Path, report: Callable[[str], None], frameworks: dict[str, str]
) -> BentoModel:
    """Copy one model version into the Bento's store, checksums verified, and note the
    packages loading it needs in `frameworks`."""
    tag = str(model.tag)
    copy_started = time.perf_counter()
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
    report(f"copying model {tag}... {human_size(model.info.size_bytes)} in "
           f"{time.perf_counter() - copy_started:.1f} s (checksums verified)")
    frameworks.setdefault(model.info.framework.name, tag)
    # The artifact format may need its own package (sklearn models saved with skops),
    # and a pickle needs the modules it refers to.
    fmt = model.info.options.get("format")
    if isinstance(fmt, str):
        frameworks.setdefault(fmt, tag)
    needed = model.info.options.get("versions")  # what loading needs, e.g. safetensors
    for module in sorted(needed) if isinstance(needed, dict) else ():
        frameworks.setdefault(str(module), tag)
    for rel in model.info.files:
        for module in sorted(pickled_modules(target / rel)):
            frameworks.setdefault(module, tag)
    serializer_root = model.info.module.split(".")[0]
    if serializer_root not in ("runtime", "jupyter_ext"):
        frameworks.setdefault(serializer_root, tag)
    return BentoModel(
        tag=tag,
        framework=model.info.framework.name,
        framework_version=model.info.framework.version,
        size_bytes=model.info.size_bytes,
        model_yaml_sha256=_sha256(target / "model.yaml"),
    )


def _build_settings(config: str | Path | ServerConfig | None) -> ServerConfig:
    """The settings file a Bento ships: the given one, else `$NBENTO_CONFIG`. The builder's
    `NBENTO_*` variables stay out (they belong to a deployment, which sets its own)."""
    if isinstance(config, ServerConfig):
        return config
    return resolve_settings(config, env_layer=False)


def _record_batching(runners: list[BentoRunner], view: dict[str, Any]) -> None:
    """bento.yaml records the batching each batchable method gets when served with the
    shipped config.yaml, resolved by the same code as `nbento serve` (`effective_settings`)."""
    for runner in runners:
        resolved = view["runners"][runner.name]["methods"]
        for method, spec in runner.methods.items():
            if spec.batchable:
                spec.batching = resolved[method]


def _config_yaml(config: ServerConfig, view: dict[str, Any]) -> str:
    """The Bento's settings file: what the build's settings file wrote (listen address, dev
    mode, reload and the runner map are deployment concerns: left out), read through
    NBENTO_CONFIG by the image and mounted from a ConfigMap in Kubernetes. Code values are not
    copied in: the served code applies them beneath this file, as `nbento serve` does. The
    effective batching at build time is listed as comments for whoever tunes it."""
    data = {k: v for k, v in config.flattened().items() if k not in DEPLOYMENT_KEYS}
    lines = [
        "# nbento server settings (docs/settings.md), read through NBENTO_CONFIG.",
        "# Later wins: defaults < the service code < this file < NBENTO_* env < --set.",
        "# Batching when built (`nbento serve BENTO --print-settings` shows the live view):",
    ]
    for name, runner in view["runners"].items():
        for method, batching in runner["methods"].items():
            lines.append(f"#   runners.{name}.methods.{method}: {_inline(batching)}")
    for name, batching in view["apis"].items():
        lines.append(f"#   apis.{name}: {_inline(batching)}")
    return "\n".join(lines) + "\n" + yaml.safe_dump(data, sort_keys=False)


def _inline(block: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in block.items()) + "}"


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
