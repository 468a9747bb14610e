"""nbento's notebook side: the magics, the Jupyter server extension behind the JupyterLab
panel, and the ipywidgets panel. Users load it as `%load_ext nbento` and Jupyter enables it as
the server extension `nbento` (the `nbento` package hands both to this module); the older
`%load_ext jupyter_ext` and `jpserver_extensions = {"jupyter_ext": true}` keep working."""

from __future__ import annotations

from typing import Any


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext nbento` (or `jupyter_ext`): register `%nbento` / `%%nbento` (once per kernel)."""
    from jupyter_ext.kernel.magics import NbentoMagics

    if getattr(ipython, "_nbento_magics", None) is not None:
        return
    magics = NbentoMagics(ipython)
    ipython.register_magics(magics)
    ipython._nbento_magics = magics


def unload_ipython_extension(ipython: Any) -> None:
    """`%unload_ext nbento` (or `jupyter_ext`): stop the kernel's server and the capture hook."""
    magics = getattr(ipython, "_nbento_magics", None)
    if magics is None:
        return
    if magics.server is not None:
        magics.server.stop()
    ipython.events.unregister("pre_run_cell", magics._pre_run_cell)
    ipython._nbento_magics = None


# ---- Jupyter server extension + prebuilt JupyterLab extension (the side panel) -------------


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    # "src" is relative to this package; "dest" is the labextension's package.json name.
    return [{"src": "labextension", "dest": "nbento"}]


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "jupyter_ext"}]


def _load_jupyter_server_extension(server_app: Any) -> None:
    """Called by jupyter_server when the extension is enabled: add the `/nbento/` routes and
    stop the development servers the panel started when Jupyter shuts down."""
    import atexit

    from jupyter_ext.actions.dev_servers import default_servers
    from jupyter_ext.server.handlers import (
        setup_handlers,  # lazy: kernels importing jupyter_ext skip tornado
    )

    settings = server_app.web_app.settings
    if settings.get("nbento_handlers"):  # enabled as both `nbento` and `jupyter_ext`
        return
    settings["nbento_handlers"] = True
    setup_handlers(server_app.web_app)
    atexit.register(default_servers.stop_all)
    server_app.log.info("nbento: REST handlers registered under /nbento/")
