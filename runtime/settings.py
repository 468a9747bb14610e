"""Every serving setting in one typed object (`ServerConfig`) and the one resolver that builds
it (`resolve_settings`). Sources, later ones winning key by key:

1. defaults (the field defaults below);
2. code: `runner(..., batching=...)`, `@api(max_batch_size=..., max_latency_ms=...)`;
3. a YAML file: `--config FILE`, else the file `$NBENTO_CONFIG` names;
4. environment `NBENTO_*`, nested with `__` (`NBENTO_RUNNERS__CLASSIFIER__BATCHING__MAX_BATCH_SIZE=16`);
5. command-line flags, then `--set KEY=VALUE`.

Each source stays a separate layer, so batching is resolved layer by layer: within one layer a
method's own block beats its runner's `batching`, and any later layer beats every earlier one.
`nbento serve`, the Bento, its image and its manifests all resolve through here; see
docs/settings.md.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from runtime.errors import NbentoError

log = logging.getLogger("nbento.settings")

ENV_PREFIX = "NBENTO_"
# NBENTO_* variables that are not server settings (read elsewhere).
NOT_SETTINGS = frozenset({
    "NBENTO_HOME", "NBENTO_CONFIG", "NBENTO_TIMING", "NBENTO_TEST_CACHE", "NBENTO_LOG_LEVEL",
    "NBENTO_API_TOKEN", "NBENTO_API_TOKEN_FILE", "NBENTO_TRUST_DIR", "NBENTO_TRUSTED_STORE",
})
# Listen address, dev mode, reload and the runner map belong to one deployment, not to a Bento.
DEPLOYMENT_KEYS = frozenset({"host", "port", "dev", "reload", "runner_map"})

V = TypeVar("V")


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
    # (arguments then travel in the runtime.serving.wire format); `auto`: processes for
    # torch-backed models, threads for the rest. Measured in docs/batching.md.
    isolation: Literal["auto", "thread", "process"] = "auto"
    # What each source wrote for this runner, in precedence order (see ServerConfig.runner).
    _layers: tuple[RunnerConfig, ...] = PrivateAttr(default=())
    _name: str | None = PrivateAttr(default=None)

    def method_batching(
        self, method: str | None, code: Mapping[str, Any] | None = None
    ) -> BatchingConfig:
        """Batching of `method` (None: of any method without its own settings): defaults <
        code (`code["*"]`, then `code[method]`, as given to `runner(..., batching=...)`) < each
        settings layer in turn (its `batching`, then its `methods[method]`; only the keys a
        layer wrote count)."""
        merged: dict[str, Any] = {}
        for key in ("*", method):
            merged.update(dict((code or {}).get(key or "*") or {}))
        for layer in self._layers or (self,):
            own = named(layer.methods, method) if method else None
            for block in (layer.batching, own):
                merged.update(_written(block))
        what = f"method '{method}'" if method else "every method"
        return _batching(merged, f"runner '{self._name}', {what}" if self._name else what)


class HttpConfig(_Strict):
    """Who may call the server, and how much and how long it reads (docs/security.md). The API
    token itself comes from the environment (`NBENTO_API_TOKEN`, `NBENTO_API_TOKEN_FILE`)."""

    public_metrics: bool = Field(False, description="/metrics answers without the API token")
    public_docs: bool = Field(
        False, description="/docs and /openapi.json answer without the API token"
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names answered besides localhost ones ('*.example.com', '*': any); "
        "empty: loopback binds answer localhost names only, other binds any name",
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="Origins (scheme://host[:port]) answered besides localhost ones; empty: "
        "loopback binds refuse foreign Origins, other binds do not check",
    )
    max_header_bytes: int = Field(64 * 1024, ge=1024, description="request line + headers")
    max_headers: int = Field(100, ge=8, description="header lines per request")
    read_timeout_s: float = Field(
        30.0, gt=0, description="longest wait for the rest of the headers or the next body chunk"
    )
    keep_alive_s: int = Field(5, ge=1, description="an idle keep-alive connection is closed after")


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
    limit_concurrency: int | None = Field(1000, ge=1)
    http: HttpConfig = Field(default_factory=lambda: HttpConfig.model_validate({}))
    # The layers this config was resolved from, in precedence order, with where each came from.
    _layers: tuple[ServerConfig, ...] = PrivateAttr(default=())
    _sources: tuple[str, ...] = PrivateAttr(default=())

    @property
    def layers(self) -> tuple[ServerConfig, ...]:
        """What each source wrote (a config built directly is its own single layer)."""
        return self._layers or (self,)

    @property
    def sources(self) -> list[str]:
        """Where the settings came from, lowest precedence first, e.g. `["file serve.yaml",
        "env NBENTO_MAX_BODY_BYTES"]`."""
        return list(self._sources)

    def runner(self, name: str) -> RunnerConfig:
        """The settings of runner `name` (names match ignoring case: env names are upper case)."""
        found = named(self.runners, name)
        merged = found.model_copy() if found else RunnerConfig.model_validate({})
        own = [r for r in (named(layer.runners, name) for layer in self.layers) if r is not None]
        merged._layers = tuple(own)
        merged._name = name
        return merged

    def api_batching(self, name: str, code: Mapping[str, Any] | None = None) -> BatchingConfig:
        """Batching of the batchable API `name`: defaults < code (`@api(max_batch_size=...,
        max_latency_ms=...)`, None meaning unset) < each layer's `apis[name]`."""
        merged = {k: v for k, v in (code or {}).items() if v is not None}
        for layer in self.layers:
            merged.update(_written(named(layer.apis, name)))
        return _batching(merged, f"API '{name}'")

    def flattened(self) -> dict[str, Any]:
        """What one settings file must write to resolve like all these layers together (a
        Bento ships one config.yaml): a later layer's runner-level `batching` key also drops
        that key from earlier layers' method blocks of the runner, since it beat them."""
        data: dict[str, Any] = {}
        for layer in self.layers:
            written = layer.model_dump(mode="json", exclude_unset=True)
            for name, runner in written.get("runners", {}).items():
                beaten = set(runner.get("batching", {}))
                for key, earlier in data.get("runners", {}).items():
                    if key.lower() == name.lower():
                        for block in earlier.get("methods", {}).values():
                            for field in beaten:
                                block.pop(field, None)
            data = _deep_merge(data, written)
        return data

    def overlay(self, source: str, data: Mapping[str, Any]) -> ServerConfig:
        """This config with one more layer on top: `data` (what `source` wrote) wins."""
        layer = validate_config(dict(data), f"invalid settings from {source}")
        merged = validate_config(
            _deep_merge(self.model_dump(exclude_unset=True), layer.model_dump(exclude_unset=True)),
            f"invalid settings after {source}",
        )
        merged._layers = (*self._layers, layer)
        merged._sources = (*self._sources, source)
        return merged


def named(mapping: Mapping[str, V], name: str) -> V | None:
    """`mapping[name]`, else the entry whose key equals `name` ignoring case."""
    if name in mapping:
        return mapping[name]
    lowered = name.lower()
    return next((v for k, v in mapping.items() if k.lower() == lowered), None)


def _written(block: BaseModel | None) -> dict[str, Any]:
    """Only the keys a source wrote: an unwritten key never hides code or a lower layer."""
    if block is None:
        return {}
    return block.model_dump(include=set(block.model_fields_set))


def _batching(data: dict[str, Any], what: str) -> BatchingConfig:
    try:
        return BatchingConfig.model_validate(data)
    except ValidationError as exc:
        raise NbentoError(f"invalid batching settings for {what}: {_problems(exc)}") from exc


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _problems(exc: ValidationError, name: Any = None) -> str:
    return "; ".join(
        f"{name(err['loc']) if name else '.'.join(str(p) for p in err['loc'])}: {err['msg']}"
        for err in exc.errors()
    )


def validate_config(data: dict[str, Any], what: str) -> ServerConfig:
    """`ServerConfig` from plain data, or one readable `NbentoError` listing every problem."""
    try:
        return ServerConfig.model_validate(data)
    except ValidationError as exc:
        raise NbentoError(f"{what}: {_problems(exc)}") from exc


# ------------------------------------------------------------------------ the sources


def read_config_file(path: str | Path) -> dict[str, Any]:
    """What a settings YAML file writes (a mapping), with readable errors."""
    try:
        loaded = yaml.safe_load(Path(path).read_text()) or {}
    except OSError as exc:
        raise NbentoError(f"cannot read config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise NbentoError(f"config file {path} is not valid YAML: {exc}") from exc
    if not isinstance(loaded, dict):
        raise NbentoError(f"config file {path} must hold a mapping, got {type(loaded).__name__}")
    return loaded


class _EnvSettings(BaseSettings, ServerConfig):
    """The environment layer, read by pydantic-settings: `NBENTO_<KEY>`, groups nested with
    `__`, a whole group as JSON (`NBENTO_RUNNER_MAP='{"clf": "http://..."}'`)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
        env_ignore_empty=True,  # NBENTO_RUNNER_MAP= (empty) means unset, as it always did
        extra="forbid",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings,)


def _env_name(loc: Sequence[Any]) -> str:
    return ENV_PREFIX + "__".join(str(part).upper() for part in loc)


def env_settings() -> tuple[dict[str, Any], list[str]]:
    """What `NBENTO_*` variables set (as config data) and their names. Variables that name no
    setting are logged, not ignored silently."""
    names = sorted(
        k
        for k, v in os.environ.items()
        if k.upper().startswith(ENV_PREFIX) and k.upper() not in NOT_SETTINGS and v != ""
    )
    used: list[str] = []
    for key in names:
        field = key[len(ENV_PREFIX):].split("__")[0].lower()
        if field in ServerConfig.model_fields:
            used.append(key)
        else:
            log.warning(
                "environment variable %s names no setting (settings: %s; docs/settings.md)",
                key, ", ".join(_env_name([f]) for f in ServerConfig.model_fields),
            )
    if not used:
        return {}, []
    if os.environ.get("NBENTO_RUNNER_MAP"):
        parse_runner_map(os.environ["NBENTO_RUNNER_MAP"], "NBENTO_RUNNER_MAP")
    try:
        layer = _EnvSettings()  # type: ignore[call-arg]  # reads os.environ, needs no args
    except ValidationError as exc:
        problems = _problems(exc, _env_name)
        raise NbentoError(f"invalid settings in the environment: {problems}") from exc
    except SettingsError as exc:
        raise NbentoError(
            f"invalid settings in the environment: {exc} (a whole group is JSON, e.g. "
            f"NBENTO_APIS='{{\"classify\": {{\"max_batch_size\": 16}}}}')"
        ) from exc
    return layer.model_dump(exclude_unset=True), used


def parse_set_items(items: Sequence[str]) -> dict[str, Any]:
    """`--set a.b.c=VALUE` items (values in YAML) as nested config data."""
    data: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise NbentoError(f"--set takes KEY=VALUE, like runners.NAME.workers=2; got {item!r}")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise NbentoError(f"--set {item}: the value is not valid YAML: {exc}") from exc
        target = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                raise NbentoError(f"--set {item}: {part!r} is a value, not a group of settings")
            target = child
        target[parts[-1]] = value
    return data


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


# ------------------------------------------------------------------------ the resolver


def resolve_settings(
    config_file: str | Path | None = None,
    *,
    flags: Mapping[str, Any] | None = None,
    set_items: Sequence[str] = (),
    env_layer: bool = True,
    default_file: str | Path | None = None,
) -> ServerConfig:
    """The settings every caller uses: defaults < file < `NBENTO_*` env < `flags` (None values
    ignored) < `set_items` (`--set KEY=VALUE`). The file is `config_file`, else
    `$NBENTO_CONFIG`, else `default_file` (a Bento's config.yaml); `env_layer=False` leaves
    the `NBENTO_*` settings out (a build records files, not the builder's shell). Code (batching given in the
    service) sits between defaults and file: `ServerConfig.runner(name).method_batching(...)`
    and `ServerConfig.api_batching(...)` apply it.

        config = resolve_settings("serve.yaml", flags={"port": 3001}, set_items=["dev=true"])
    """
    config = ServerConfig.model_validate({})
    path = config_file or os.environ.get("NBENTO_CONFIG") or default_file
    if path:
        config = config.overlay(f"file {path}", read_config_file(path))
    env_data, env_names = env_settings() if env_layer else ({}, [])
    if env_names:
        config = config.overlay(f"env {', '.join(env_names)}", env_data)
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    if given:
        config = config.overlay(f"flags {', '.join('--' + k.replace('_', '-') for k in given)}", given)
    if set_items:
        config = config.overlay(f"--set {' '.join(set_items)}", parse_set_items(set_items))
    return config


def load_config(path: str | Path | None = None, **overrides: Any) -> ServerConfig:
    """`resolve_settings(path, flags=overrides)`: file (or `$NBENTO_CONFIG`), env, then flags."""
    return resolve_settings(path, flags=overrides)
