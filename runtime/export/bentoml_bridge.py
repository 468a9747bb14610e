"""What the generated `src/<service>_bentoml.py` calls under `bentoml serve`: nbento's own
serving stack (service host, runner pool, adaptive batchers) inside BentoML's worker.

BentoML decodes the request from the API's signature and calls the generated method; the
method hands the arguments to `NbentoBridge.call`, which runs them through nbento's endpoint
(so concurrent requests are batched by nbento's batcher) and answers with nbento's own
encoding, status codes and error bodies: the same bytes `nbento serve` would send.
"""

from __future__ import annotations

import logging
import os
import typing
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from runtime.errors import NbentoError, QueueFull, RequestError, RequestTooLarge, RunnerNotAvailable
from runtime.service.definition import as_source
from runtime.service.handles import set_backend_resolver
from runtime.serving.error_body import error_response
from runtime.serving.host import ServiceHost
from runtime.serving.runners import RunnerPool
from runtime.settings import load_config

log = logging.getLogger("nbento.error")

CONFIG_FILE = "config.yaml"


class NbentoBridge:
    """One nbento service, served from inside a BentoML service class.

    `module_file`: the generated module's `__file__` (in the Bento's src/); `entry`: the
    nbento module's file name beside it; `pinned`: runner name -> exact model tag."""

    def __init__(self, module_file: str, entry: str, pinned: Mapping[str, str]) -> None:
        src = Path(module_file).resolve().parent
        config_path = os.environ.get("NBENTO_CONFIG") or src.parent / CONFIG_FILE
        self.config = load_config(config_path if Path(config_path).is_file() else None)
        self.pinned = dict(pinned)
        # Any, as in serve(): RunnerPoolLike declares `ready` settable, RunnerPool a property
        pool: Any = RunnerPool(self.config)
        self.pool = pool
        set_backend_resolver(pool.resolver)
        self.host = ServiceHost(as_source(src / entry), self.config, pool)
        self.service = self.host.load_initial()
        missing = sorted(set(self.service.runners) - set(self.pinned))
        if missing:
            raise NbentoError(
                f"runner(s) {', '.join(missing)} of service '{self.service.name}' have no pinned "
                f"model in this Bento; rebuild it with `nbento build`"
            )
        for name, handle in self.service.runners.items():
            handle.tag = self.pinned[name]  # exactly the version the Bento carries
        self._started = False

    @property
    def service_module(self) -> ModuleType:
        return self.service.module

    def hint(self, api: str, name: str) -> Any:
        """The type hint of parameter `name` (or the return type, `name="return"`) of API `api`
        as the service module wrote it, constraints (`Annotated[..., Field(...)]`) included, so
        BentoML validates what nbento's server validates."""
        return typing.get_type_hints(self.service.apis[api].func, include_extras=True)[name]

    def use_models(self, models: Mapping[str, Any]) -> None:
        """Point nbento's store at the folder BentoML resolved the pinned models in (the
        Bento's own `models/`, or `$BENTOML_HOME/models` after `bentoml import`)."""
        homes = set()
        for runner, model in models.items():
            path = Path(str(model.path))
            if str(model.tag) != self.pinned[runner]:
                raise NbentoError(
                    f"runner '{runner}': BentoML resolved {model.tag}, the Bento pins "
                    f"{self.pinned[runner]}"
                )
            homes.add(path.parent.parent.parent)  # HOME/models/NAME/VERSION
        if len(homes) > 1:
            raise NbentoError(
                f"the pinned models are in more than one store ({', '.join(map(str, homes))}); "
                f"import them into one BentoML store"
            )
        if homes:
            os.environ["NBENTO_HOME"] = str(homes.pop())

    async def start(self) -> None:
        """Load the runners (nbento's pool, with its workers and batchers) before the first
        request; raises when a model cannot load, so BentoML does not report ready."""
        if self._started:
            return
        await self.host.start()
        assert self.host.initial_load is not None
        await self.host.initial_load
        self._started = True

    async def stop(self) -> None:
        await self.host.aclose(self.config.graceful_timeout_s)

    async def call(self, api: str, kwargs: dict[str, Any]) -> Any:
        """Run one request through nbento's endpoint; a starlette Response with nbento's
        bytes (BentoML sends a Response as it is)."""
        from starlette.responses import Response

        endpoint = self.host.endpoints[f"/{api}"]
        try:
            result = await endpoint.call(kwargs)
            payload, media = endpoint.schema.encode(result)
        except (RequestError, QueueFull, RunnerNotAvailable, RequestTooLarge) as exc:
            # the one error body nbento's own server sends (runtime/serving/error_body.py)
            answer = error_response(exc, where=f"API {api}", log=log)
            return Response(answer.content, status_code=answer.status, headers=answer.headers)
        return Response(payload, media_type=media)
