"""Client-side balancing of one runner's replicas in the split layout. A runner-map entry is a
URL, a list of URLs, or `dns+http://NAME:PORT`: a name (a headless Service in Kubernetes)
resolved to all its addresses and resolved again every few seconds, so replicas an autoscaler
adds get calls at once instead of when pooled connections happen to be reopened.

    {"classifier": "http://10.0.0.7:3000"}
    {"classifier": ["http://10.0.0.7:3000", "http://10.0.0.8:3000"]}
    {"classifier": "dns+http://ticket-router-runner-classifier:3000"}

Each call goes to the replica with the fewest rows outstanding from this API server (ties in
turn). A replica whose connection fails is skipped for a backoff that doubles up to
`max_backoff_s` and is then tried again; the caller retries the call on another replica.
Connections are renewed after `max_connection_age_s` so a long-lived API server does not pin
replicas forever. `/metrics` counts calls per replica (`nbento_runner_replica_calls_total`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx

from runtime.errors import NbentoError
from runtime.serving.auth import auth_headers
from runtime.serving.metrics import REPLICA_CALLS, REPLICA_OUTSTANDING

log = logging.getLogger("nbento.runners")

# host, port -> the addresses it names (IPv4 or IPv6, no brackets)
Resolver = Callable[[str, int], Awaitable[list[str]]]
DNS_SCHEME = "dns+"


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address `host` resolves to right now (the OS resolver: DNS, /etc/hosts)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    seen: dict[str, None] = {}
    for info in infos:
        seen[str(info[4][0])] = None
    return list(seen)


@dataclass(frozen=True)
class BalancingOptions:
    refresh_s: float = 5.0  # how often a dns+ name is resolved again
    max_connection_age_s: float = 60.0
    backoff_s: float = 0.5  # first pause after a failure; doubles per failure in a row
    max_backoff_s: float = 5.0
    max_connections: int = 256  # per replica


@dataclass(frozen=True)
class Target:
    """One runner-map entry: a replica URL, or a name to resolve (`dns`)."""

    url: str
    dns: bool = False

    @property
    def host_port(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        return parts.hostname or "", int(parts.port or 0)


def parse_targets(runner: str, value: str | list[str]) -> list[Target]:
    """The replicas a runner-map entry names, or a readable error saying what to write."""
    items = [value] if isinstance(value, str) else list(value)
    if not items:
        raise NbentoError(f"runner map entry for '{runner}' is an empty list; give at least one URL")
    targets = []
    for item in items:
        dns = isinstance(item, str) and item.startswith(DNS_SCHEME)
        url = item[len(DNS_SCHEME):] if dns else item
        parts = urlsplit(url) if isinstance(url, str) else None
        port_ok = True
        try:
            port = parts.port if parts else None
        except ValueError:
            port, port_ok = None, False
        if (
            parts is None
            or parts.scheme not in ("http", "https")
            or not parts.hostname
            or not port_ok
            or (dns and port is None)
            or parts.path not in ("", "/")
        ):
            raise NbentoError(
                f"runner map entry for '{runner}' has {item!r}; write http://HOST:PORT, a list "
                f"of them, or dns+http://NAME:PORT (a name whose every address is a replica)"
            )
        targets.append(Target(url.rstrip("/"), dns))
    return targets


@dataclass
class _Pool:
    """One httpx client (its keep-alive connections) to one replica, and when it was made."""

    client: httpx.AsyncClient
    born: float
    in_flight: int = 0
    retired: bool = False


@dataclass
class Replica:
    url: str
    runner: str
    rows: int = 0  # rows of calls sent and not answered yet
    calls: int = 0  # calls sent and not answered yet
    failures: int = 0  # failures in a row
    down_until: float = 0.0
    pool: _Pool | None = None
    retiring: list[_Pool] = field(default_factory=list)

    @property
    def up(self) -> bool:
        return time.monotonic() >= self.down_until


class ReplicaSet:
    """The replicas of one runner and the choice of where the next call goes."""

    def __init__(
        self,
        runner: str,
        value: str | list[str],
        *,
        timeout: float = 300.0,
        resolver: Resolver | None = None,
        options: BalancingOptions | None = None,
    ) -> None:
        self.runner = runner
        self.targets = parse_targets(runner, value)
        self.timeout = timeout
        self.options = options or BalancingOptions()
        self._resolve = resolver or system_resolver
        self.replicas: dict[str, Replica] = {
            t.url: Replica(t.url, runner) for t in self.targets if not t.dns
        }
        self._dns = [t for t in self.targets if t.dns]
        self._resolved: dict[Target, list[str]] = {}
        self._next_refresh = 0.0
        self._refreshing: asyncio.Task[None] | None = None
        self._turn = 0

    @property
    def description(self) -> str:
        """The runner-map entry, for status pages and messages."""
        shown = [DNS_SCHEME + t.url if t.dns else t.url for t in self.targets]
        return shown[0] if len(shown) == 1 else ", ".join(shown)

    # ------------------------------------------------------------------ membership

    async def refresh(self) -> None:
        """Resolve every `dns+` name again; replicas that left are dropped (their open calls
        finish), new ones join with nothing outstanding, so they get the next calls."""
        self._next_refresh = time.monotonic() + self.options.refresh_s
        for target in self._dns:
            host, port = target.host_port
            try:
                addresses = await self._resolve(host, port)
            except (OSError, NbentoError) as exc:
                # keep the last answer: a DNS hiccup must not empty the runner
                log.warning("runner '%s': cannot resolve %s (%s); keeping %d replicas",
                            self.runner, host, exc, len(self._resolved.get(target, [])))
                continue
            scheme = urlsplit(target.url).scheme
            self._resolved[target] = [
                f"{scheme}://{f'[{a}]' if ':' in a else a}:{port}" for a in addresses
            ]
        wanted = {t.url for t in self.targets if not t.dns}
        for urls in self._resolved.values():
            wanted.update(urls)
        for url in wanted - set(self.replicas):
            log.info("runner '%s': replica %s joined", self.runner, url)
            self.replicas[url] = Replica(url, self.runner)
        for url in set(self.replicas) - wanted:
            log.info("runner '%s': replica %s left", self.runner, url)
            gone = self.replicas.pop(url)
            for pool in [*gone.retiring, *([gone.pool] if gone.pool else [])]:
                pool.retired = True
                if pool.in_flight == 0:
                    await pool.client.aclose()

    async def _refresh_if_due(self) -> None:
        if not self._dns or time.monotonic() < self._next_refresh:
            return
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.create_task(self.refresh())
        if not self.replicas:  # nothing to call until the first answer
            await asyncio.shield(self._refreshing)

    # ------------------------------------------------------------------ choosing

    async def choose(self, tried: set[str]) -> Replica | None:
        """The replica for the next call, skipping `tried` ones: the fewest outstanding rows
        among those up (ties: calls, then in turn); if all are backing off, the one that comes
        back first. None when every replica was tried."""
        await self._refresh_if_due()
        candidates = [r for u, r in self.replicas.items() if u not in tried]
        if not candidates:
            return None
        up = [r for r in candidates if r.up]
        if not up:
            return min(candidates, key=lambda r: r.down_until)
        self._turn += 1
        n = len(up)
        order = {id(r): (i - self._turn) % n for i, r in enumerate(up)}
        return min(up, key=lambda r: (r.rows, r.calls, order[id(r)]))

    def failed(self, replica: Replica, exc: BaseException) -> None:
        """A transport failure: skip the replica for a backoff, doubled per failure in a row."""
        replica.failures += 1
        pause = min(
            self.options.max_backoff_s, self.options.backoff_s * 2 ** (replica.failures - 1)
        )
        replica.down_until = time.monotonic() + pause
        REPLICA_CALLS.labels(self.runner, replica.url, "unreachable").inc()
        log.warning("runner '%s': replica %s failed (%s: %s); skipping it for %.1fs",
                    self.runner, replica.url, type(exc).__name__, exc, pause)
        # a dead replica's pooled connections are no use; make new ones when it is back
        if replica.pool is not None:
            replica.pool.retired = True
            replica.retiring.append(replica.pool)
            replica.pool = None

    def answered(self, replica: Replica) -> None:
        replica.failures = 0
        replica.down_until = 0.0
        REPLICA_CALLS.labels(self.runner, replica.url, "answered").inc()

    @contextlib.asynccontextmanager
    async def lease(self, replica: Replica, rows: int) -> AsyncIterator[httpx.AsyncClient]:
        """The client for one call to `replica`, counting its rows as outstanding meanwhile."""
        pool = self._pool(replica)
        pool.in_flight += 1
        replica.rows += rows
        replica.calls += 1
        gauge = REPLICA_OUTSTANDING.labels(self.runner, replica.url)
        gauge.inc(rows)
        try:
            yield pool.client
        finally:
            pool.in_flight -= 1
            replica.rows -= rows
            replica.calls -= 1
            gauge.dec(rows)
            if pool.retired and pool.in_flight == 0:
                with contextlib.suppress(ValueError):
                    replica.retiring.remove(pool)
                await pool.client.aclose()

    def _pool(self, replica: Replica) -> _Pool:
        now = time.monotonic()
        pool = replica.pool
        if pool is not None and now - pool.born > self.options.max_connection_age_s:
            # renew: the old connections finish their calls and close
            pool.retired = True
            if pool.in_flight:
                replica.retiring.append(pool)
            else:
                asyncio.get_running_loop().create_task(pool.client.aclose())
            pool = None
        if pool is None:
            limit = self.options.max_connections
            pool = replica.pool = _Pool(
                httpx.AsyncClient(
                    base_url=replica.url,
                    timeout=httpx.Timeout(self.timeout, connect=5.0),
                    limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit),
                    headers=auth_headers(),  # runners require the API server's token
                ),
                now,
            )
        return pool

    def status(self) -> list[dict[str, object]]:
        return [
            {"url": r.url, "outstanding_rows": r.rows, "up": r.up}
            for r in self.replicas.values()
        ]

    async def aclose(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
        for replica in self.replicas.values():
            for pool in [*replica.retiring, *([replica.pool] if replica.pool else [])]:
                await pool.client.aclose()
            replica.pool, replica.retiring = None, []
