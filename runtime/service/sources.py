"""What a `SOURCE` argument names: a service folder, a `.py` file, an importable module, or
(through a plugin) a notebook. One resolver for `serve`, `build` and the panel.

Runtime never imports Jupyter: notebooks are handled by a loader registered under the entry
point group `nbento.source_loaders` (the `jupyter_ext` package registers `ipynb`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

from runtime.errors import ServiceLoadError

SERVICE_MODULE = "service.py"
SERVICE_MANIFEST = "service.yaml"


@dataclass
class ServiceSource:
    """A resolved service. Either `path` (a `.py` file, usually `<dir>/service.py` next to its
    `service.yaml` manifest) or `module` (a dotted module name) is set.

    `watch` lists the files whose change should trigger a reload; `regenerate`, when set,
    rebuilds `path` from its origin (a notebook) and is called before each reload."""

    path: Path | None = None
    module: str | None = None
    watch: list[Path] = field(default_factory=list)
    regenerate: Callable[[], None] | None = None
    origin: Path | None = None  # the notebook or file the user named

    @property
    def manifest(self) -> Path | None:
        if self.path is None:
            return None
        candidate = self.path.parent / SERVICE_MANIFEST
        return candidate if candidate.exists() else None


SourceLoader = Callable[[Path], ServiceSource]


def _plugin(suffix: str) -> SourceLoader | None:
    for ep in entry_points(group="nbento.source_loaders"):
        if ep.name == suffix:
            loader: SourceLoader = ep.load()
            return loader
    return None


def resolve_source(target: str | Path) -> ServiceSource:
    """Resolve a user's SOURCE argument, with a readable error when it names nothing."""
    path = Path(target)
    if path.is_dir():
        module = path / SERVICE_MODULE
        if not module.exists():
            raise ServiceLoadError(
                f"folder {path} has no {SERVICE_MODULE}; point at a service folder "
                f"(like .nbento/<service>/), a .py file, a module or a notebook"
            )
        return ServiceSource(path=module.resolve(), watch=[module.resolve()], origin=path)
    if path.suffix == ".py":
        if not path.exists():
            raise ServiceLoadError(f"no such file: {path}")
        return ServiceSource(path=path.resolve(), watch=[path.resolve()], origin=path)
    if not path.exists() and _is_module_name(str(target)):
        return ServiceSource(module=str(target), origin=None)
    if path.suffix:
        if not path.exists():
            raise ServiceLoadError(f"no such file: {path}")
        loader = _plugin(path.suffix.lstrip("."))
        if loader is None:
            hint = " (install nbento[jupyter] to read notebooks)" if path.suffix == ".ipynb" else ""
            raise ServiceLoadError(f"don't know how to serve a {path.suffix} file: {path}{hint}")
        return loader(path)
    raise ServiceLoadError(f"no service at {target!r}: not a folder, .py file, notebook or module")


def _is_module_name(text: str) -> bool:
    """`pkg.api` or `app` names a module; `x.py` and `x.ipynb` name files."""
    parts = text.split(".")
    return all(part.isidentifier() for part in parts) and parts[-1] not in ("py", "ipynb")
