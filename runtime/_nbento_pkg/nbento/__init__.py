"""nbento: notebook cells as a typed, batched model service. This is the name users import.

    %load_ext nbento                                   # the %nbento / %%nbento magics
    from nbento import runner, api, save_model, load   # in cells and service modules

The code lives in two packages shipped with it: `runtime` (store, service, server, export;
what runs in a container) and `jupyter_ext` (magics, capture, the Jupyter server extension).
This module re-exports `runtime`'s public API on first use, so `import nbento` stays cheap
(no FastAPI, no Jupyter), and hands the Jupyter hooks to `jupyter_ext` when Jupyter calls them.

The source sits in runtime/_nbento_pkg/ (the repository keeps two top-level packages); the
wheel ships it as the top-level `nbento` and an editable install puts that folder on sys.path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import runtime
from runtime.version import __version__

if TYPE_CHECKING:  # pragma: no cover - what the lazy names resolve to, for type checkers
    from runtime import (
        DataFrameOf,
        Model,
        ModelHandle,
        ModelStore,
        NbentoError,
        NDArray,
        Serializer,
        Service,
        Tag,
        UploadedFile,
        api,
        delete,
        export_model,
        get,
        import_model,
        list_models,
        load,
        load_service,
        ndarray,
        register_rows,
        register_serializer,
        runner,
        save_model,
    )

# The same names as `runtime.__all__` (tests/test_packaging.py holds them equal).
__all__ = [
    "ModelStore",
    "Model",
    "save_model",
    "get",
    "load",
    "list_models",
    "delete",
    "export_model",
    "import_model",
    "register_serializer",
    "Serializer",
    "Tag",
    "runner",
    "ModelHandle",
    "api",
    "Service",
    "load_service",
    "NbentoError",
    "NDArray",
    "ndarray",
    "DataFrameOf",
    "UploadedFile",
    "register_rows",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name == "list" or (name in runtime.__all__ and name != "__version__"):
        value = getattr(runtime, name)
        globals()[name] = value
        return value
    raise AttributeError(
        f"module 'nbento' has no attribute {name!r}; its public names are: {', '.join(__all__)}"
    )


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


# ---- Jupyter's hooks, answered by jupyter_ext (imported only when Jupyter asks) -------------


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext nbento`: register the `%nbento` / `%%nbento` magics (once per kernel)."""
    from jupyter_ext import load_ipython_extension as load

    load(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """`%unload_ext nbento`: stop the kernel's server and the capture hook."""
    from jupyter_ext import unload_ipython_extension as unload

    unload(ipython)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "nbento"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    from jupyter_ext import _load_jupyter_server_extension as load

    load(server_app)


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    # The built panel lives inside jupyter_ext; an absolute "src" is used as it is.
    from pathlib import Path

    import jupyter_ext

    return [{"src": str(Path(jupyter_ext.__file__).parent / "labextension"), "dest": "nbento"}]
