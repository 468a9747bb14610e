"""Links the widget panel shows, as the user's browser can open them. The development server
listens on the kernel's 127.0.0.1, which a browser elsewhere (a remote JupyterLab, JupyterHub)
cannot reach; nbento's Jupyter server extension proxies it at `{base_url}nbento/proxy/PORT/`
(`jupyter_ext/server/proxy.py`). So when the kernel runs under a Jupyter server that has the
extension, the panel links there, by path only (the browser keeps the host it reached Jupyter
by); otherwise it links the server itself and says why.

    link = docs_link("http://127.0.0.1:3000", find_jupyter_server())
    link.href   # "/user/ana/nbento/proxy/3000/docs", or "http://127.0.0.1:3000/docs"
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import httpx

PROBE_TIMEOUT_S = 2.0
DIRECT_NOTE = (
    "direct link: it opens only in a browser on the kernel's machine (no Jupyter server with "
    "nbento's server extension was found for this kernel, so the link cannot go through "
    "Jupyter's nbento/proxy/)"
)


@dataclass(frozen=True)
class JupyterServer:
    """The Jupyter server this kernel runs under: its base URL (path) and where the kernel
    reaches it (None when it cannot tell)."""

    base_url: str
    url: str | None


@dataclass(frozen=True)
class DocsLink:
    href: str
    via_jupyter: bool
    note: str | None = None


def find_jupyter_server(
    runtime_dir: Path | None = None, parent_pid: int | None = None,
    environ: dict[str, str] | None = None,
) -> JupyterServer | None:
    """The Jupyter server that started this kernel: the `jpserver-PID.json` in Jupyter's
    runtime folder whose PID is the kernel's parent (a server started with the default
    provisioner spawns its kernels itself), else JupyterHub's single-user server from
    `JUPYTERHUB_SERVICE_PREFIX`. Only `base_url` and `url` are read from the file."""
    env = os.environ if environ is None else environ
    parent = os.getppid() if parent_pid is None else parent_pid
    folder = runtime_dir if runtime_dir is not None else _runtime_dir()
    if folder is not None:
        for path in sorted(folder.glob("jpserver-*.json")):
            try:
                info = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(info, dict) and info.get("pid") == parent and info.get("base_url"):
                url = info.get("url")
                return JupyterServer(str(info["base_url"]), str(url) if url else None)
    prefix = env.get("JUPYTERHUB_SERVICE_PREFIX")
    if prefix:
        return JupyterServer(prefix, env.get("JUPYTERHUB_SERVICE_URL") or None)
    return None


def _runtime_dir() -> Path | None:
    try:
        from jupyter_core.paths import jupyter_runtime_dir
    except ImportError:  # a kernel without Jupyter's own packages
        return None
    return Path(jupyter_runtime_dir())


@lru_cache(maxsize=8)
def has_nbento_routes(url: str) -> bool:
    """Whether the Jupyter server at `url` serves nbento's routes. Asked without credentials:
    Jupyter answers a route it has with a login redirect or 403, and one it lacks with 404."""
    try:
        answer = httpx.get(
            url.rstrip("/") + "/nbento/servers", timeout=PROBE_TIMEOUT_S, trust_env=False,
            follow_redirects=False,
        )
    except httpx.HTTPError:
        return False
    return answer.status_code != 404


def docs_link(server_url: str, jupyter: JupyterServer | None) -> DocsLink:
    """The `/docs` link for the development server at `server_url`: through the proxy of
    `jupyter` (`find_jupyter_server()`) when it has nbento's extension, else direct with a
    note."""
    port = urlsplit(server_url).port
    if jupyter is None or jupyter.url is None or port is None or not has_nbento_routes(jupyter.url):
        return DocsLink(f"{server_url.rstrip('/')}/docs", via_jupyter=False, note=DIRECT_NOTE)
    path = jupyter.base_url.strip("/")
    base = f"/{path}/" if path else "/"
    return DocsLink(f"{base}nbento/proxy/{port}/docs", via_jupyter=True)
