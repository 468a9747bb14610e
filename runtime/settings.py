"""Every serving setting in one typed object. Sources, later ones winning: defaults here,
batching arguments given in code (`runner(..., batching=...)`, `@api(max_batch_size=...)`), the
keys a YAML file writes (`--config FILE` or env `NBENTO_CONFIG`), env `NBENTO_RUNNER_MAP`, then
CLI flags and `--set`. Documented in `docs/settings.md`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from runtime.errors import NbentoError


def nbento_home() -> Path:
    """The store root: `$NBENTO_HOME`, else `~/.nbento`. Read at call time (tests set it)."""
    return Path(os.environ.get("NBENTO_HOME") or Path.home() / ".nbento").expanduser()


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BatchingConfig(_Strict):
    """Adaptive batching for one runner method (or one batchable API)."""

    enabled: bool = True
    max_batch_size: int = Field(32, ge=1, description="most rows in one batch")
    max_latency_ms: float = Field(
        10.0, gt=0, description="longest a row may wait for companions before dispatch"
    )
    max_queue_rows: int = Field(
        2048, ge=1, description="rows waiting past this bound are refused with 503"
    )


class RunnerConfig(_Strict):
    batching: BatchingConfig = Field(default_factory=lambda: BatchingConfig.model_validate({}))
    methods: dict[str, BatchingConfig] = Field(default_factory=dict)
    # Non-batchable methods run this many calls at once per worker.
    max_concurrency: int = Field(1, ge=1)
    # Worker threads/processes of the runner; None: one per core (each with one torch thread).
    workers: int | None = Field(None, ge=1)
    threads: int | None = Field(None, ge=1, description="torch/BLAS threads per worker")
    # Where model compute runs: worker threads of the server process, or worker processes
    # (arguments then travel in the runtime.serving.wire format). Measured in docs/batching.md.
    isolation: Literal["thread", "process"] = "thread"

    def for_method(self, method: str) -> BatchingConfig:
        return self.methods.get(method, self.batching)


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(3000, ge=0, le=65535)
    dev: bool = False
    reload: bool = False
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1)
    graceful_timeout_s: float = Field(30.0, ge=0)
    runners: dict[str, RunnerConfig] = Field(default_factory=dict)
    apis: dict[str, BatchingConfig] = Field(default_factory=dict)
    # runner name -> URL, list of replica URLs, or dns+http://NAME:PORT (runtime.serving.balancer)
    runner_map: dict[str, str | list[str]] = Field(default_factory=dict)
    access_log: bool = True
    # Threads that run sync API functions; a blocked call waits on its batch, so this bounds
    # how many requests can be in one batch at once.
    api_threads: int = Field(128, ge=1)
    # Connections + requests served at once before uvicorn answers 503 (None: no limit).
    limit_concurrency: int | None = Field(None, ge=1)

    def runner(self, name: str) -> RunnerConfig:
        return self.runners.get(name) or RunnerConfig.model_validate({})


def load_config(path: str | Path | None = None, **overrides: Any) -> ServerConfig:
    """Read the YAML config (explicit path, else `$NBENTO_CONFIG`, else none), apply
    environment (`NBENTO_RUNNER_MAP`) and then `overrides` (CLI flags; None values ignored)."""
    data: dict[str, Any] = {}
    path = path or os.environ.get("NBENTO_CONFIG")
    if path:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except OSError as exc:
            raise NbentoError(f"cannot read config file {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise NbentoError(f"config file {path} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise NbentoError(f"config file {path} must hold a mapping, got {type(loaded).__name__}")
        data.update(loaded)
    env_map = os.environ.get("NBENTO_RUNNER_MAP")
    if env_map:
        data["runner_map"] = parse_runner_map(env_map, "NBENTO_RUNNER_MAP")
    data.update({k: v for k, v in overrides.items() if v is not None})
    return validate_config(data, f"invalid server settings ({path or 'flags'})")


def validate_config(data: dict[str, Any], what: str) -> ServerConfig:
    """`ServerConfig` from plain data, or one readable `NbentoError` listing every problem."""
    try:
        return ServerConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise NbentoError(f"{what}: {problems}") from exc


def parse_runner_map(text: str, where: str = "--runner-map") -> dict[str, str | list[str]]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NbentoError(
            f'{where} must be JSON like {{"classifier": "http://127.0.0.1:3101"}}: {exc}'
        ) from exc
    if not isinstance(value, dict) or not all(
        isinstance(k, str)
        and (isinstance(v, str) or (isinstance(v, list) and all(isinstance(u, str) for u in v)))
        for k, v in value.items()
    ):
        raise NbentoError(
            f"{where} must map runner names to a URL, a list of URLs or dns+http://NAME:PORT, "
            f"got {text!r}"
        )
    return value
