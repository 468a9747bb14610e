"""`{base_url}nbento/proxy/ID/PATH`: a development server's `/docs` and APIs through the Jupyter
server, so a browser that cannot reach `127.0.0.1:PORT` (JupyterHub, a remote lab) still opens
them. Not an open proxy: the target is only ever a server this Jupyter started or adopted
(`jupyter_ext.actions.dev_servers`), named by its id or its port, and only on a loopback
address. Jupyter's own auth guards it (token or cookie; XSRF on POST), and the browser's
`Origin`, cookies and Jupyter token are never passed on; the nbento API token is added when
this process has one.

    GET  /nbento/proxy/ID/docs            Swagger UI (its files come from the server itself)
    GET  /nbento/proxy/ID/openapi.json    the document, with `servers` set to this prefix
    POST /nbento/proxy/ID/API             one API call ("Try it out" in /docs)
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.utils import url_path_join
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from jupyter_ext.actions.dev_servers import DevServer, default_servers
from runtime.serving.auth import auth_headers

AUTH_RESOURCE = "nbento"
PROXY_TIMEOUT_S = 60.0
MAX_BODY_BYTES = 64 * 1024 * 1024
# what goes to the server, and what comes back; everything else stays on its side
_REQUEST_HEADERS = ("Content-Type", "Accept")
_ANSWER_HEADERS = ("Content-Type", "Cache-Control", "Retry-After", "Allow", "Content-Disposition")


def api_authorization(given: str, jupyter_token: str | None,
                      own: dict[str, str]) -> dict[str, str]:
    """The Authorization header the proxy sends to a server: this Jupyter server's own API
    token (`own`: NBENTO_API_TOKEN in its environment), else a bearer token the browser sent
    (what /docs' Authorize button adds, for a server a kernel started with a token this
    process does not know). Jupyter's own token never goes to the server."""
    if own:
        return own
    if given[:7].lower() != "bearer ":
        return {}
    value = given[7:].strip()
    if not value or hmac.compare_digest(value.encode(), (jupyter_token or "").encode()):
        return {}
    return {"Authorization": f"Bearer {value}"}


def is_loopback_url(url: str) -> bool:
    """`url` points at this machine's loopback interface (127.x, ::1 or localhost)."""
    host = urlsplit(url).hostname or ""
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def find_server(key: str) -> DevServer:
    """The known development server with this id, or listening on this port."""
    servers = default_servers.list()
    for server in servers:
        if server.id == key:
            return server
    if key.isdigit():
        for server in servers:
            if urlsplit(server.url).port == int(key):
                return server
    known = ", ".join(sorted(s.id for s in servers)) or "none yet"
    raise tornado.web.HTTPError(
        404,
        f"no development server {key!r} known to this Jupyter server (known: {known}); the "
        "proxy reaches only servers started or adopted here: open the notebook's nbento "
        "panel or GET /nbento/servers first",
    )


class ProxyHandler(JupyterHandler):
    """Forwards GET and POST to one known development server. A `JupyterHandler`, not an
    `APIHandler`: the Swagger UI page needs to run its scripts (an APIHandler's
    Content-Security-Policy forbids them)."""

    auth_resource = AUTH_RESOURCE

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # a message for people, as the other /nbento/ routes answer (not Jupyter's HTML page)
        exc = kwargs.get("exc_info", (None, None, None))[1]
        message = (exc.log_message if isinstance(exc, tornado.web.HTTPError) else None) or self._reason
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"message": message}))

    @tornado.web.authenticated
    @authorized
    async def get(self, key: str, path: str) -> None:
        await self._forward(key, path)

    @tornado.web.authenticated
    @authorized
    async def post(self, key: str, path: str) -> None:
        await self._forward(key, path)

    def _prefix(self, key: str) -> str:
        return url_path_join(self.base_url, "nbento", "proxy", key)

    def _raw_path(self, key: str) -> str:
        """The path after the prefix as the browser sent it (still percent-encoded), plus
        the query string."""
        prefix = self._prefix(key) + "/"
        uri = self.request.uri or ""
        return uri[len(prefix):] if uri.startswith(prefix) else ""

    async def _find(self, key: str) -> DevServer:
        """The server named by `key`; one a kernel started (`%nbento serve`, the widget panel,
        which links here) is adopted on first use, as listing the servers would."""
        try:
            return find_server(key)
        except tornado.web.HTTPError as exc:
            if exc.status_code != 404:
                raise
        notebooks = await session_notebooks(self)
        await asyncio.to_thread(default_servers.discover, notebooks)
        return find_server(key)

    async def _forward(self, key: str, path: str) -> None:
        server = await self._find(key)
        if not is_loopback_url(server.url):
            raise tornado.web.HTTPError(
                403, f"server {server.id} listens on {server.url}, not on a loopback address; "
                "the proxy only reaches servers on this machine's 127.0.0.1",
            )
        if not server.running():
            raise tornado.web.HTTPError(
                502, f"server {server.id} is not running; start it again from the panel"
            )
        body = self.request.body if self.request.method == "POST" else None
        if body is not None and len(body) > MAX_BODY_BYTES:
            raise tornado.web.HTTPError(413, f"the body is over {MAX_BODY_BYTES} bytes")
        headers = {name: self.request.headers[name] for name in _REQUEST_HEADERS
                   if name in self.request.headers}
        headers.update(api_authorization(self.request.headers.get("Authorization", ""),
                                         self.token, auth_headers()))
        target = f"{server.url}/{self._raw_path(key)}"
        request = HTTPRequest(
            target, method=self.request.method or "GET", headers=headers, body=body,
            follow_redirects=False, request_timeout=PROXY_TIMEOUT_S,
            allow_nonstandard_methods=True, decompress_response=True,
        )
        try:
            answer = await AsyncHTTPClient().fetch(request, raise_error=False)
        except (OSError, HTTPClientError) as exc:
            raise tornado.web.HTTPError(
                502, f"could not reach server {server.id} at {server.url}: {exc}"
            ) from None
        if answer.code == 599:  # tornado's "no answer" (timeout, connection refused)
            raise tornado.web.HTTPError(
                502, f"no answer from server {server.id} at {server.url}: {answer.error}"
            )
        content = answer.body or b""
        if path == "openapi.json" and answer.code == 200:
            content = self._with_servers(content, key)
        self.set_status(answer.code, answer.reason or "Unknown")
        for name in _ANSWER_HEADERS:
            value = answer.headers.get(name)
            if value is not None:
                self.set_header(name, value)
        self.finish(content)

    def _with_servers(self, content: bytes, key: str) -> bytes:
        """Point Swagger UI's "Try it out" at this proxy instead of the page's origin root."""
        try:
            doc = json.loads(content)
        except ValueError:
            return content
        if isinstance(doc, dict):
            doc["servers"] = [{"url": self._prefix(key), "description": "through Jupyter"}]
        return json.dumps(doc).encode()


async def session_notebooks(handler: JupyterHandler) -> list[Path]:
    """The notebooks with a kernel session: where a kernel may have started a server."""
    root = handler.settings.get("server_root_dir") or handler.contents_manager.root_dir
    root_dir = Path(str(root)).expanduser().resolve()
    found = []
    for session in await handler.session_manager.list_sessions():
        rel = str(session.get("path") or "")
        path = (root_dir / rel.lstrip("/")).resolve()
        if rel.endswith(".ipynb") and (root_dir in path.parents) and path.is_file():
            found.append(path)
    return found


def proxy_routes(base_url: str) -> list[tuple[str, type[JupyterHandler]]]:
    """The proxy's route under `{base_url}nbento/proxy/`."""
    return [(url_path_join(base_url, "nbento", "proxy", r"([A-Za-z0-9_.:-]+)/(.*)"), ProxyHandler)]
