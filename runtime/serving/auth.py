"""Who may call a server: the API token and the Host/Origin checks (docs/security.md).

- The token: with `NBENTO_API_TOKEN` (or a file named by `NBENTO_API_TOKEN_FILE`) set, every
  route but the probes (and, if configured, `/metrics` and the docs) needs
  `Authorization: Bearer <token>`, compared in constant time and never logged.
- Loopback binds answer local sites only: a `Host` that is not `localhost`, `127.x.y.z` or
  `[::1]` (DNS rebinding) or an `Origin` of another site (a web page posting to the notebook's
  server) gets 403. `http.allowed_hosts` / `http.allowed_origins` widen (or, on other binds,
  narrow) what is answered.

`HttpGuard.refusal(scope)` is called by the gateway (`runtime.serving.app.ApiGateway`) before
anything else; clients (the panel, `%nbento call`, a split layout's API server) send
`auth_headers()`.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.errors import Forbidden, NbentoError, RequestError, Unauthorized
from runtime.settings import ServerConfig

TOKEN_ENV = "NBENTO_API_TOKEN"
TOKEN_FILE_ENV = "NBENTO_API_TOKEN_FILE"
PROBE_PATHS = frozenset({"/livez", "/readyz"})
DOC_PATHS = frozenset({
    "/docs", "/openapi.json", "/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css", "/docs/favicon.png",
})
_LOCAL_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def api_token(environ: Mapping[str, str] | None = None) -> str | None:
    """The API token from `NBENTO_API_TOKEN` or the file `NBENTO_API_TOKEN_FILE` names (its
    content, surrounding whitespace removed); None when neither is set."""
    env = os.environ if environ is None else environ
    value = env.get(TOKEN_ENV)
    path = env.get(TOKEN_FILE_ENV)
    if value and path:
        raise NbentoError(
            f"both {TOKEN_ENV} and {TOKEN_FILE_ENV} are set; set one of them (the file is for "
            f"a mounted Kubernetes Secret)"
        )
    if path:
        try:
            value = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise NbentoError(
                f"{TOKEN_FILE_ENV}={path}: cannot read the API token file ({exc}); point it at "
                f"a readable UTF-8 file holding the token"
            ) from exc
        value = value.strip()
        if not value:
            raise NbentoError(f"{TOKEN_FILE_ENV}={path}: the API token file is empty")
    if value is None:
        return None
    value = value.strip()
    if not value:
        raise NbentoError(f"{TOKEN_ENV} is set but empty; unset it or give it a token")
    return value


def auth_headers(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What a client of an nbento server sends: `Authorization: Bearer <token>` when the token is
    set in this process's environment, else nothing."""
    token = api_token(environ)
    return {"Authorization": f"Bearer {token}"} if token else {}


def is_loopback(host: str) -> bool:
    """Whether a bind address (or a Host name) is this machine only: 127.0.0.0/8, ::1,
    localhost."""
    host = host.strip().strip("[]").lower()
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(value: str) -> str:
    """The name part of a `Host` header value: `[::1]:3000` -> `::1`, `a.b:80` -> `a.b`."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    name, _, port = value.rpartition(":")
    if name and port.isdigit():
        return name
    return value


def _origin_host(origin: str) -> str | None:
    """`http://127.0.0.1:3000` -> `127.0.0.1`; None for `null` and anything that is not an
    http(s) origin."""
    scheme, sep, rest = origin.strip().lower().partition("://")
    if not sep or scheme not in ("http", "https") or not rest or "/" in rest:
        return None
    return host_name(rest)


def _matches(name: str, patterns: list[str]) -> bool:
    for pattern in patterns:
        pattern = pattern.strip().lower()
        if pattern == "*" or pattern == name:
            return True
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return True
    return False


@dataclass(frozen=True)
class HttpGuard:
    """The checks every request passes before it is routed. Build it with `for_server`."""

    token: bytes | None
    loopback: bool
    allowed_hosts: list[str]
    allowed_origins: list[str]
    public_metrics: bool
    public_docs: bool

    @classmethod
    def for_server(cls, config: ServerConfig, environ: Mapping[str, str] | None = None) -> HttpGuard:
        token = api_token(environ)
        http = config.http
        return cls(
            token=token.encode() if token else None,
            loopback=is_loopback(config.host),
            allowed_hosts=[h.lower() for h in http.allowed_hosts],
            allowed_origins=[o.strip().lower().rstrip("/") for o in http.allowed_origins],
            public_metrics=http.public_metrics,
            public_docs=http.public_docs,
        )

    def refusal(self, scope: MutableMapping[str, Any]) -> RequestError | None:
        """The error to answer `scope` with (401 or 403), or None to serve it."""
        path: str = scope["path"]
        if path in PROBE_PATHS:
            return None  # kubelet and load balancers probe with the pod IP and no token
        host = origin = authorization = None
        for key, value in scope["headers"]:
            if key == b"host":
                host = value.decode("latin-1")
            elif key == b"origin":
                origin = value.decode("latin-1")
            elif key == b"authorization":
                authorization = value
        refused = self._site_refusal(host, origin)
        if refused is not None:
            return refused
        if self.token is None or self._is_public(path):
            return None
        if authorization is None:
            return Unauthorized(
                f"{path} needs the API token: send 'Authorization: Bearer <token>' (the server "
                f"reads it from {TOKEN_ENV} or {TOKEN_FILE_ENV})"
            )
        scheme, _, given = authorization.partition(b" ")
        if scheme.lower() != b"bearer" or not hmac.compare_digest(given.strip(), self.token):
            return Unauthorized(
                "the API token does not match; send 'Authorization: Bearer <token>' with the "
                f"token this server was started with ({TOKEN_ENV})"
            )
        return None

    def _is_public(self, path: str) -> bool:
        if path == "/metrics":
            return self.public_metrics
        return self.public_docs and path in DOC_PATHS

    def _site_refusal(self, host: str | None, origin: str | None) -> Forbidden | None:
        if self.loopback or self.allowed_hosts:
            name = host_name(host) if host else ""
            local = is_loopback(name)  # this machine's own names are never a rebinding
            if not local and not _matches(name, self.allowed_hosts):
                where = "a loopback address" if self.loopback else "this address"
                return Forbidden(
                    f"Host {host!r} is not served: this server is bound to {where} and answers "
                    f"localhost names only (a DNS-rebinding guard); add the name to the setting "
                    f"http.allowed_hosts to serve it"
                )
        if origin is not None and (self.loopback or self.allowed_origins):
            origin_host = _origin_host(origin)
            local = origin_host is not None and is_loopback(origin_host)
            if not local and origin.strip().lower().rstrip("/") not in self.allowed_origins:
                return Forbidden(
                    f"requests from web pages of Origin {origin!r} are not served (a cross-site "
                    f"request guard); add it to the setting http.allowed_origins to serve it"
                )
        return None
