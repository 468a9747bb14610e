"""Model handles: `runner(tag)` is the same object in a notebook kernel and in the server.

In a kernel a handle loads the model from the store once and calls it directly. In the server,
the serving runtime installs a *backend resolver* that maps each handle to its runner (an
in-process adaptive batcher, or a remote runner process), so the same user code is batched.

    classifier = runner("support_classifier:latest")
    classifier.predict_proba(vectors)          # sync call, any context
    await classifier.predict_proba.async_run(vectors)   # inside async API functions
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, Protocol

from runtime.errors import SignatureError
from runtime.rows import call_in_rows


class RunnerBackend(Protocol):
    """Where a handle's calls go. Implementations: `LocalBackend` here; batched and remote
    backends in the serving runtime."""

    def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any: ...

    async def acall(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any: ...


BackendResolver = Callable[["ModelHandle"], RunnerBackend]

_resolver: BackendResolver | None = None
_local_cache: dict[str, LocalBackend] = {}
_local_lock = threading.Lock()


def set_backend_resolver(resolver: BackendResolver | None) -> BackendResolver | None:
    """Install the function that gives each handle its backend; returns the previous one.

    The server calls this before importing a service module. `None` restores local calls."""
    global _resolver
    previous, _resolver = _resolver, resolver
    return previous


class LocalBackend:
    """Calls the loaded model in this process. Loaded once per resolved tag (NAME:VERSION),
    so re-running a notebook cell that creates the handle again does not reload the model."""

    def __init__(self, resolved_tag: str) -> None:
        from runtime.store.model_store import get  # late: the store imports serializers lazily too

        self.model_ref = get(resolved_tag)
        self._obj: Any = None
        self._load_lock = threading.Lock()

    @property
    def obj(self) -> Any:
        if self._obj is None:
            with self._load_lock:
                if self._obj is None:
                    self._obj = self.model_ref.load()
        return self._obj

    def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        signature = _check_signature(self.model_ref, method)
        function = getattr(self.obj, method)
        if signature.batchable and (args or kwargs):
            # The server's row path with a batch of one request: the same checks, the same
            # joined arguments and the same output split, so what fails there fails here.
            return call_in_rows(function, args, kwargs, signature.batch_dim)
        return function(*args, **kwargs)

    async def acall(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return await asyncio.to_thread(self.call, method, args, kwargs)


def _check_signature(model_ref: Any, method: str) -> Any:
    signatures = model_ref.info.signatures
    if method not in signatures:
        known = ", ".join(sorted(signatures)) or "(none)"
        raise SignatureError(
            f"model '{model_ref.tag}' has no signature '{method}'; saved signatures: {known}. "
            f"Save the model again with --batchable {method} (or signatures={{'{method}': ...}})."
        )
    return signatures[method]


def local_backend(tag: str) -> LocalBackend:
    """The process-wide local backend for a tag (`latest` resolved now)."""
    from runtime.store.model_store import get

    resolved = str(get(tag).tag)
    with _local_lock:
        backend = _local_cache.get(resolved)
        if backend is None:
            backend = _local_cache[resolved] = LocalBackend(resolved)
        return backend


class RunnerMethod:
    """`handle.predict`: call it, or `await handle.predict.async_run(...)`."""

    def __init__(self, handle: ModelHandle, name: str) -> None:
        self.handle = handle
        self.name = name

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.handle.backend.call(self.name, args, kwargs)

    async def async_run(self, *args: Any, **kwargs: Any) -> Any:
        return await self.handle.backend.acall(self.name, args, kwargs)

    def __repr__(self) -> str:
        return f"<runner method {self.handle.name}.{self.name}>"


class ModelHandle:
    """A lazy reference to a stored model; nothing loads until the first call."""

    def __init__(
        self, tag: str, *, name: str | None = None, batching: dict[str, Any] | None = None
    ) -> None:
        from runtime.tags import Tag

        parsed = Tag.parse(tag)  # validates the name now, with a readable error
        self.tag = str(tag)
        self.name = name or parsed.name
        # Per-method overrides, e.g. {"predict": {"max_batch_size": 32, "max_latency_ms": 10}};
        # a key "*" applies to every method.
        self.batching: dict[str, Any] = dict(batching or {})
        self._backend: RunnerBackend | None = None
        self._backend_resolver: BackendResolver | None = None

    @property
    def backend(self) -> RunnerBackend:
        resolver = _resolver
        if self._backend is None or self._backend_resolver is not resolver:
            self._backend = resolver(self) if resolver is not None else local_backend(self.tag)
            self._backend_resolver = resolver
        return self._backend

    def __getattr__(self, method: str) -> RunnerMethod:
        if method.startswith("_"):
            raise AttributeError(method)
        return RunnerMethod(self, method)

    def __repr__(self) -> str:
        return f"runner({self.tag!r}, name={self.name!r})"


def runner(tag: str, *, name: str | None = None, batching: dict[str, Any] | None = None) -> ModelHandle:
    """A handle on a stored model: `runner("support_classifier:latest").predict(X)`.

    `name` names the runner (default: the model name); `batching` overrides batching settings
    per method. Batchable methods take a batch: rows along `batch_dim` in a list, an array, a
    DataFrame, a tensor, a sparse matrix or a dict of arrays (see `runtime.rows`)."""
    return ModelHandle(tag, name=name, batching=batching)
