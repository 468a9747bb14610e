"""The effective settings of one service: every server setting and, per runner, method and
API, what it runs with once defaults < code < file < `NBENTO_*` env < command line are applied
(`runtime.settings`). One view for every layout: `nbento serve --print-settings` prints it,
`/_nbento/status` shows it under `settings`, and `nbento build` records its batching in
bento.yaml.

The view has the shape of a config file (`ServerConfig.model_validate(view)` accepts it), so
`nbento serve SRC --print-settings > pinned.yaml` pins a deployment to what it ran with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runtime.service.definition import ApiSpec, Service
from runtime.service.handles import ModelHandle
from runtime.serving.runners import worker_counts
from runtime.serving.workers import resolve_isolation
from runtime.settings import ServerConfig


def api_code(spec: ApiSpec) -> dict[str, Any]:
    """What `@api(...)` said about batching (None: not said)."""
    return {"max_batch_size": spec.max_batch_size, "max_latency_ms": spec.max_latency_ms}


def _model_of(handle: ModelHandle, models: Mapping[str, Any] | None) -> Any:
    """The model ref behind `handle` (`models`: runner name -> a loaded model ref, else the
    store is asked); None when the store lacks it (the runner reports that when it loads)."""
    from runtime.errors import NbentoError
    from runtime.store.model_store import get

    model = (models or {}).get(handle.name)
    if model is None:
        try:
            model = get(handle.tag)
        except NbentoError:
            return None
    return model


def batchable_methods(handle: ModelHandle, models: Mapping[str, Any] | None = None) -> list[str]:
    """The batchable signatures of the model behind `handle`; none for a model the store
    lacks."""
    model = _model_of(handle, models)
    if model is None:
        return []
    return sorted(m for m, sig in model.info.signatures.items() if sig.batchable)


def effective_settings(
    config: ServerConfig, service: Service, *, models: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Every setting `service` runs with under `config`, as config-file-shaped plain data:
    server keys, `runners: {NAME: {workers, threads, isolation, max_concurrency, batching,
    methods: {METHOD: ...}}}` (methods: the batchable ones) and `apis: {NAME: ...}` (the
    batchable APIs)."""
    view = config.model_dump(mode="json", exclude={"runners", "apis"})
    runners: dict[str, Any] = {}
    for name, handle in sorted(service.runners.items()):
        runner = config.runner(name)
        workers, threads = worker_counts(runner)
        model = _model_of(handle, models)
        runners[name] = {
            "workers": workers,
            "threads": threads,
            # `auto` resolved for this model, as the runner will run it.
            "isolation": resolve_isolation(
                runner.isolation, model.info.serializer if model is not None else None
            ),
            "max_concurrency": runner.max_concurrency,
            "batching": runner.method_batching(None, handle.batching).model_dump(),
            "methods": {
                method: runner.method_batching(method, handle.batching).model_dump()
                for method in batchable_methods(handle, models)
            },
        }
    view["runners"] = runners
    view["apis"] = {
        name: config.api_batching(name, api_code(spec)).model_dump()
        for name, spec in sorted(service.apis.items())
        if spec.batchable
    }
    return view
