"""Service definition: `@api` marks plain functions as endpoints, and `load_service` imports a
service module (fresh each time, so a reload sees new code) into a `Service`.

    from runtime import api, runner

    classifier = runner("support_classifier:latest")

    @api
    def classify(texts: list[str]) -> dict:
        return {"labels": classifier.predict(texts).tolist()}
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
import traceback
import types
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar, overload

from runtime.errors import ServiceImportError, ServiceLoadError
from runtime.service.handles import ModelHandle
from runtime.service.sources import SERVICE_MODULE, ServiceSource, resolve_source

F = TypeVar("F", bound=Callable[..., Any])

_API_ATTR = "__nbento_api__"
# Paths the server answers itself (probes, metrics, docs); an API cannot shadow them.
RESERVED_NAMES = frozenset({"livez", "readyz", "metrics", "docs", "redoc", "openapi"})
_RUNTIME_DIR = str(Path(__file__).resolve().parent)


@dataclass(frozen=True)
class ApiSpec:
    """One endpoint: the function and how it is served. `batchable` APIs take a batch (a list,
    or an array along axis 0) and return one output row per input row."""

    name: str
    func: Callable[..., Any]
    is_async: bool
    batchable: bool = False
    max_batch_size: int | None = None
    max_latency_ms: float | None = None
    doc: str = ""

    @property
    def route(self) -> str:
        return f"/{self.name}"


@overload
def api(func: F, /) -> F: ...
@overload
def api(
    func: F,
    /,
    *,
    name: str | None = None,
    batchable: bool = False,
    max_batch_size: int | None = None,
    max_latency_ms: float | None = None,
) -> F: ...
@overload
def api(
    func: None = None,
    /,
    *,
    name: str | None = None,
    batchable: bool = False,
    max_batch_size: int | None = None,
    max_latency_ms: float | None = None,
) -> Callable[[F], F]: ...


def api(
    func: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    batchable: bool = False,
    max_batch_size: int | None = None,
    max_latency_ms: float | None = None,
) -> Any:
    """Mark `func` as an endpoint `POST /{name}` (default: the function name).

    Works as `@api`, `@api(name=..., batchable=True, max_batch_size=32, max_latency_ms=10)`
    and as a plain call `api(fn, name="classify")`. The function itself is returned unchanged,
    so it stays callable in a notebook."""

    def mark(fn: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(fn):
            raise TypeError(f"@api marks functions, got {type(fn).__name__}")
        api_name = name or fn.__name__
        if not api_name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(
                f"API name {api_name!r} must be letters, digits, '_' or '-' (it becomes the URL "
                f"path); pass name='...'"
            )
        if api_name in RESERVED_NAMES or api_name.startswith("_"):
            raise ValueError(
                f"API name {api_name!r} is taken by the server ({', '.join(sorted(RESERVED_NAMES))}"
                f" and names starting with '_' are reserved); pass name='...'"
            )
        if max_batch_size is not None and max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1, got {max_batch_size}")
        if max_latency_ms is not None and max_latency_ms <= 0:
            raise ValueError(f"max_latency_ms must be positive, got {max_latency_ms}")
        spec = ApiSpec(
            name=api_name,
            func=fn,
            is_async=inspect.iscoroutinefunction(fn),
            batchable=batchable,
            max_batch_size=max_batch_size,
            max_latency_ms=max_latency_ms,
            doc=inspect.getdoc(fn) or "",
        )
        setattr(fn, _API_ATTR, spec)
        return fn

    return mark(func) if func is not None else mark


@dataclass
class Service:
    """A loaded service: its APIs by name and the model handles its code uses, by runner name."""

    name: str
    apis: dict[str, ApiSpec]
    runners: dict[str, ModelHandle]
    module: types.ModuleType
    source_sha256: str
    source: ServiceSource = field(default_factory=ServiceSource)

    def only_runner(self, name: str) -> Service:
        """This service reduced to one runner (for `nbento serve SRC --runner NAME`)."""
        if name not in self.runners:
            known = ", ".join(sorted(self.runners)) or "(none)"
            raise ServiceLoadError(
                f"service '{self.name}' has no runner '{name}'; its runners: {known}"
            )
        return replace(self, runners={name: self.runners[name]})


def load_service(source: str | Path | ServiceSource) -> Service:
    """Import a service (folder with service.py, a .py file, a dotted module or a resolved
    `ServiceSource`) into a fresh module object, and collect its APIs and model handles."""
    src = as_source(source)
    path, module_name = _locate(src)
    try:
        code_bytes = path.read_bytes()
    except OSError as exc:
        raise ServiceLoadError(f"cannot read service file {path}: {exc.strerror}") from exc
    module = _execute(path, module_name, code_bytes)
    apis: dict[str, ApiSpec] = {}
    runners: dict[str, ModelHandle] = {}
    for value in list(vars(module).values()):
        spec = getattr(value, _API_ATTR, None)
        if isinstance(spec, ApiSpec):
            other = apis.get(spec.name)
            if other is not None and other.func is not spec.func:
                raise ServiceLoadError(
                    f"two functions in {path} are both served as '{spec.name}': "
                    f"{other.func.__qualname__} and {spec.func.__qualname__}; "
                    f"give one another name with @api(name=...)"
                )
            apis[spec.name] = spec
        elif isinstance(value, ModelHandle):
            known = runners.get(value.name)
            if known is not None and known.tag != value.tag:
                raise ServiceLoadError(
                    f"runner name '{value.name}' is used for two models in {path}: "
                    f"{known.tag} and {value.tag}; pass runner(..., name='...') to tell them apart"
                )
            runners.setdefault(value.name, value)
    if not apis:
        raise ServiceLoadError(
            f"{path} defines no API: mark at least one function with @api "
            f"(from nbento import api)"
        )
    default_name = path.parent.name if path.name == SERVICE_MODULE else path.stem
    name = str(getattr(module, "SERVICE_NAME", None) or default_name)
    return Service(
        name=name,
        apis=apis,
        runners=runners,
        module=module,
        source_sha256=hashlib.sha256(code_bytes).hexdigest(),
        source=src,
    )


def as_source(target: str | Path | ServiceSource) -> ServiceSource:
    """A `ServiceSource` as given, or resolved from what the user named."""
    if isinstance(target, ServiceSource):
        return target
    return resolve_source(target)


def _locate(src: ServiceSource) -> tuple[Path, str]:
    if src.path is not None:
        path = Path(src.path)
        stem = path.parent.name if path.name == SERVICE_MODULE else path.stem
        safe = "".join(ch if ch.isalnum() else "_" for ch in stem)
        return path, f"_nbento_service_{safe}"
    if src.module:
        try:
            spec = importlib.util.find_spec(src.module)
        except (ImportError, ValueError) as exc:
            raise ServiceLoadError(f"cannot find module {src.module!r}: {exc}") from exc
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            raise ServiceLoadError(
                f"no importable Python module {src.module!r} (checked sys.path); "
                f"pass a .py file or a service folder instead"
            )
        return Path(spec.origin), src.module
    raise ServiceLoadError("empty service source: neither a path nor a module name")


def _execute(path: Path, module_name: str, code_bytes: bytes) -> types.ModuleType:
    """Compile from the bytes just read (never a cached .pyc: two edits within one second
    must both be seen) and run them in a new module object registered under `module_name`
    (pydantic and typing resolve annotations through sys.modules)."""
    folder = str(path.parent)
    if folder not in sys.path:  # after site-packages: a `runtime.py` there cannot shadow nbento
        sys.path.append(folder)
    module = types.ModuleType(module_name)
    module.__file__ = str(path)
    module.__spec__ = importlib.util.spec_from_file_location(module_name, path)
    try:
        code = compile(code_bytes, str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise ServiceImportError(
            f"SyntaxError: {exc.msg}", exc.filename or str(path), exc.lineno
        ) from None
    previous = sys.modules.get(module_name)
    sys.modules[module_name] = module
    try:
        exec(code, module.__dict__)
    except (Exception, SystemExit) as exc:
        if previous is not None:
            sys.modules[module_name] = previous
        else:
            sys.modules.pop(module_name, None)
        file, line = _user_frame(exc, str(path))
        message = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, SyntaxError):  # raised by a module the service imports
            file, line, message = exc.filename or file, exc.lineno or line, f"SyntaxError: {exc.msg}"
        raise ServiceImportError(message, file, line) from None
    return module


def _user_frame(exc: BaseException, service_file: str) -> tuple[str | None, int | None]:
    """The frame to show: the deepest one in the service file, else the deepest outside
    nbento itself."""
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if frame.filename == service_file:
            return frame.filename, frame.lineno
    for frame in reversed(frames):
        if not frame.filename.startswith(_RUNTIME_DIR) and not frame.filename.startswith("<"):
            return frame.filename, frame.lineno
    return service_file, None
