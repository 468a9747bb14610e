"""Development servers started from the panels: the notebook captured into its service folder,
then `nbento serve SERVICE_DIR --reload` as a child of the Jupyter server (JupyterLab panel)
or of the kernel (ipywidgets panel) through `KernelServer`, the class `%nbento serve` uses; with
what the Server section shows — URL, PID, reload state read from `/_nbento/status`, a
metrics summary read from `/metrics` — and the call proxy that Try it goes through, so the
browser never talks to the service port itself.

States the panels show (`describe()["state"]`): starting, running, reloading (a save is being
captured and loaded), reload-failed (the last change did not load; the server still answers
with generation N) and stopped. A failed reload is an answer, not an HTTP failure: `recapture`
returns it as data, with the error pointed at the notebook cell and line (`reload_errors`).

One server per service: a server a kernel started (`%nbento serve`, the widget's Start) is
registered in its service folder (`server_registry`); `discover` adopts it for the notebooks
open in Jupyter, and `start` attaches to it instead of starting a second one. Stopping an
adopted server stops it for the kernel too."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from jupyter_ext.actions.kernel_server import KernelServer, free_port
from jupyter_ext.actions.metrics_summary import (
    MetricsHistory,
    batching_settings,
    parse_metrics,
    small_batch_reason,
    totals,
)
from jupyter_ext.actions.reload_errors import capture_failure, reload_error, server_error
from jupyter_ext.actions.server_registry import live_near
from runtime.errors import NbentoError
from runtime.serving.auth import auth_headers

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
_LOG_TAIL = 40


class ServerNotFound(NbentoError, LookupError):
    """No development server with this id (never started here, or already forgotten)."""


@dataclass
class DevServer:
    """One background server (a `KernelServer`, the class `%nbento serve` uses) serving the
    service captured from `notebook`, plus the chart history the panels draw."""

    id: str
    notebook: Path
    kernel: KernelServer
    started_at: float = field(default_factory=time.time)
    history: MetricsHistory = field(default_factory=MetricsHistory)
    last_status: dict[str, Any] | None = None
    returncode: int | None = None
    # The saved notebook could not be captured (a syntax error): the server never saw that
    # change. Believed while the server still serves what it served then (generation, sha).
    capture_error: dict[str, Any] | None = None
    capture_error_at: tuple[Any, Any] | None = None
    reloading: bool = False
    # What the last save did, for this server only (a new server starts without one).
    last_save: dict[str, Any] | None = None

    @property
    def url(self) -> str:
        return self.kernel.url

    @property
    def pid(self) -> int | None:
        return self.kernel.pid

    @property
    def started_by(self) -> str:
        """"jupyter" (this process started it) or "kernel" (adopted from the registry)."""
        return self.kernel.owner if self.kernel.attached is not None else "jupyter"

    def running(self) -> bool:
        return self.kernel.running

    def log_tail(self, lines: int = _LOG_TAIL) -> list[str]:
        return self.kernel.log_tail(lines).splitlines()

    def fetch_status(self) -> dict[str, Any] | None:
        status = self.kernel.status()
        if status is not None:
            self.last_status = status
        return status

    def fetch_metrics(self, timeout: float = 2.0) -> dict[str, Any] | None:
        """Scrape `/metrics` once, add a chart point, return since-start totals."""
        try:
            response = httpx.get(
                f"{self.url}/metrics", timeout=timeout, trust_env=False, headers=auth_headers()
            )
            response.raise_for_status()
        except httpx.HTTPError:
            return None
        snap = parse_metrics(response.text)
        self.history.add(snap)
        return totals(snap)

    def current_error(self, status: dict[str, Any]) -> dict[str, Any] | None:
        """The one error to show: the capture error of the last save while the server still
        serves what it served then, else the server's own reload error, mapped to its cell."""
        served = (status.get("generation"), status.get("source_sha256"))
        if self.capture_error is not None and self.capture_error_at != served:
            self.capture_error = None  # the kernel wrote fixed code and the server loaded it
        if self.capture_error is not None:
            return dict(self.capture_error, generation=status.get("generation"))
        return server_error(status.get("last_error"), self.kernel.folder, status.get("generation"))

    def describe(self, *, probe: bool = True) -> dict[str, Any]:
        """The JSON the panels show. `probe` asks the server (status + metrics) when running."""
        alive = self.running()
        status = self.fetch_status() if (probe and alive) else None
        metrics = self.fetch_metrics() if (probe and alive and status is not None) else None
        last = status or self.last_status or {}
        error = self.current_error(last) if alive else None
        if not alive:
            state = "stopped"
        elif status is None and self.last_status is None:
            state = "starting"
        elif self.reloading:
            state = "reloading"
        elif error is not None:
            state = "reload-failed"
        else:
            state = "running"
        batchers = batching_settings(last.get("settings"))
        points = list(self.history.points)
        return {
            "id": self.id,
            "notebook": str(self.notebook),
            "service_dir": str(self.kernel.folder),
            "url": self.url,
            "docs_url": f"{self.url}/docs",
            "pid": self.pid,
            "started_by": self.started_by,
            "state": state,
            "returncode": self.returncode,
            "started_at": self.started_at,
            "service": last.get("service"),
            "generation": last.get("generation"),
            "source_sha256": last.get("source_sha256"),
            "loaded_at": last.get("loaded_at"),
            "last_reload_ms": last.get("last_reload_ms"),
            "last_error": last.get("last_error"),
            "error": error,
            "reload_error": error["text"] if error else None,
            "last_save": self.last_save,
            "runners": last.get("runners", {}),
            "metrics": metrics,
            "history": points,
            "batching": batchers,
            "small_batch_reason": small_batch_reason(points[-1] if points else None, batchers),
            "log_tail": [] if state in ("running", "reloading") else self.log_tail(),
        }


def _wait_error_cleared(server: DevServer, generation: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = server.fetch_status()
        if status is None or not status.get("last_error") or status.get("generation") != generation:
            return
        time.sleep(0.02)


def plain_reload_error(error: Any) -> str | None:
    """`{"message", "file", "line"}` -> one sentence a person can act on (the widget panel's
    words; the JupyterLab panel gets the error mapped to its cell from `describe()`)."""
    return reload_error(error)


class DevServers:
    """The servers this process started, by id. Thread-safe; one per process."""

    def __init__(self) -> None:
        self._servers: dict[str, DevServer] = {}
        self._lock = threading.Lock()

    def start(self, notebook: str | Path, *, port: int | None = None,
              timeout: float = START_TIMEOUT_S) -> DevServer:
        """Capture the notebook (as `nbento build-service` does), then start `nbento serve
        SERVICE_DIR --reload` and wait until it is ready. One server per notebook: a second
        start returns the running one, and a server a kernel already runs for it is adopted."""
        from jupyter_ext.capture.notebook import build_service

        path = Path(notebook).resolve()
        if path.suffix != ".ipynb" or not path.is_file():
            raise NbentoError(f"no notebook at {path}; start a server for an existing .ipynb file")
        adopted = self.discover([path])
        with self._lock:
            for server in self._servers.values():
                if server.notebook == path and server.running():
                    return server
        if adopted:
            return adopted[-1]
        capture, written = build_service(path)
        kernel = KernelServer(written.folder, port=port or free_port(), reload=True,
                              notebook=path, owner="jupyter")
        # a port picked here may be taken by another process before the server binds it
        kernel.start(timeout=timeout, port_tries=1 if port else 5)
        server = DevServer(f"{capture.service_name}-{kernel.port}", path, kernel)
        server.fetch_status()
        with self._lock:
            self._servers[server.id] = server
        return server

    def discover(self, notebooks: list[Path]) -> list[DevServer]:
        """Adopt the running servers registered for these notebooks (started by their kernels)
        and forget adopted ones that stopped; returns the adopted servers still running."""
        with self._lock:
            for server_id, server in list(self._servers.items()):
                if server.kernel.attached is not None and not server.running():
                    del self._servers[server_id]  # stopped by its kernel: nothing to show
            known = {(str(s.kernel.folder), s.pid) for s in self._servers.values()}
        for notebook in notebooks:
            for record in live_near(notebook):
                if (record.folder, record.pid) in known:
                    continue
                kernel = KernelServer.attach(Path(record.folder))
                if kernel is None:
                    continue
                service = Path(record.folder).name
                server = DevServer(f"{service}-{kernel.port}", notebook.resolve(), kernel,
                                   started_at=record.started_at)
                with self._lock:
                    self._servers[server.id] = server
        with self._lock:
            return [s for s in self._servers.values()
                    if s.kernel.attached is not None and s.notebook in
                    {n.resolve() for n in notebooks} and s.running()]

    def recapture(self, server_id: str, timeout: float = 30.0) -> dict[str, Any]:
        """Re-capture the saved notebook into the served folder and wait for the reload (what
        the panel does after each save). A change that does not load is an expected outcome,
        answered as data: `ok` False, `error` pointed at the notebook cell and line, and the
        server's state (`describe()`) under `server`."""
        server = self.get(server_id)
        server.reloading = True
        try:
            outcome = self._recapture(server, timeout)
        finally:
            server.reloading = False
        server.last_save = {"text": outcome["text"], "ok": outcome["ok"], "at": time.time()}
        outcome["server"] = server.describe()
        return outcome

    def _recapture(self, server: DevServer, timeout: float) -> dict[str, Any]:
        from jupyter_ext.capture.notebook import build_service

        before = server.fetch_status()
        served = ((before or {}).get("generation"), (before or {}).get("source_sha256"))
        started = time.perf_counter()
        try:
            _, written = build_service(server.notebook, out_dir=server.kernel.folder)
        except NbentoError as exc:  # the saved cells do not make a module: nothing to load
            server.capture_error = capture_failure(server.notebook, exc)
            server.capture_error_at = served
            return {"changed": True, "ok": False, "elapsed_ms": 0.0, "timed_out": False,
                    "error": server.current_error(before or {}),
                    "text": "saved: the change did not load (see the error)"}
        server.capture_error = None
        if not written.changed:
            return {"changed": False, "ok": True, "elapsed_ms": 0.0, "timed_out": False,
                    "error": server_error((before or {}).get("last_error"), server.kernel.folder,
                                          served[0]),
                    "text": "saved: the service code did not change"}
        outcome = server.kernel.wait_for_reload(written.sha256, before, started=started,
                                                timeout=timeout)
        if outcome.ok and (before or {}).get("last_error"):
            # back to the bytes it still serves: "served" at once, but the failed attempt's
            # error clears only when the server has loaded the file again
            _wait_error_cleared(server, served[0], timeout=min(timeout, 5.0))
        error = server_error(outcome.error, server.kernel.folder, served[0]) if outcome.error else None
        if outcome.ok:
            text = f"saved: reloaded in {outcome.elapsed_ms:.0f} ms"
        elif outcome.timed_out:
            text = f"saved: the server did not pick up the change in {timeout:.0f} s; see its log"
        else:
            text = "saved: the change did not load (see the error)"
        return {"changed": True, "ok": outcome.ok, "elapsed_ms": round(outcome.elapsed_ms, 1),
                "timed_out": outcome.timed_out, "error": error, "text": text}

    def get(self, server_id: str) -> DevServer:
        with self._lock:
            server = self._servers.get(server_id)
        if server is None:
            raise ServerNotFound(
                f"no development server {server_id!r}; list them with GET /nbento/servers"
            )
        return server

    def list(self) -> list[DevServer]:
        with self._lock:
            return list(self._servers.values())

    def for_notebook(self, notebook: str | Path) -> DevServer | None:
        path = Path(notebook).resolve()
        found = [s for s in self.list() if s.notebook == path]
        running = [s for s in found if s.running()]
        candidates = running or found
        return candidates[-1] if candidates else None

    def stop(self, server_id: str) -> DevServer:
        """SIGTERM the server's process group (it drains), SIGKILL after a timeout."""
        server = self.get(server_id)
        server.returncode = server.kernel.stop(timeout=STOP_TIMEOUT_S)
        with self._lock:
            self._servers.pop(server_id, None)
        return server

    def stop_all(self) -> None:
        for server in self.list():
            self.stop(server.id)


def call_api(url: str, api: str, body: Any, timeout: float = 60.0) -> dict[str, Any]:
    """POST a JSON body to one API of the server at `url`; the answer with status and latency.
    Sends the API token (`NBENTO_API_TOKEN` / `NBENTO_API_TOKEN_FILE`) when this process has it."""
    if not api.isidentifier():
        raise NbentoError(f"API names are Python identifiers, got {api!r}")
    headers = auth_headers()
    started = time.perf_counter()
    try:
        response = httpx.post(
            f"{url}/{api}", json=body, timeout=timeout, trust_env=False, headers=headers
        )
    except httpx.HTTPError as exc:
        raise NbentoError(f"could not reach {url}/{api}: {exc}") from exc
    latency_ms = (time.perf_counter() - started) * 1000
    try:
        payload: Any = response.json()
    except ValueError:
        payload = response.text
    return {"status": response.status_code, "latency_ms": round(latency_ms, 2), "body": payload}


def api_forms(url: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The server's APIs from `/openapi.json`, each with its request schema and an example body
    built from that schema (what Try it pre-fills)."""
    try:
        response = httpx.get(
            f"{url}/openapi.json", timeout=timeout, trust_env=False, headers=auth_headers()
        )
        response.raise_for_status()
        spec = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise NbentoError(f"could not read {url}/openapi.json: {exc}") from exc
    components = spec.get("components", {}).get("schemas", {})
    forms = []
    for route, item in sorted(spec.get("paths", {}).items()):
        post = item.get("post")
        name = route.strip("/")
        if post is None or not name.isidentifier():
            continue  # probes, runner endpoints and the like
        content = post.get("requestBody", {}).get("content", {})
        schema = (content.get("application/json") or {}).get("schema", {})
        resolved = _resolve(schema, components)
        forms.append({
            "name": name,
            "summary": post.get("summary") or post.get("description") or "",
            "schema": resolved,
            "example": example_for(resolved, components),
        })
    return forms


def _resolve(schema: Any, components: dict[str, Any], depth: int = 0) -> Any:
    if isinstance(schema, dict) and "$ref" in schema and depth < 20:
        ref = str(schema["$ref"]).rsplit("/", 1)[-1]
        return _resolve(components.get(ref, {}), components, depth + 1)
    return schema


def example_for(schema: Any, components: dict[str, Any], depth: int = 0) -> Any:
    """A plausible JSON value for a JSON schema: its example/default, else a typed placeholder."""
    schema = _resolve(schema, components)
    if not isinstance(schema, dict) or depth > 8:
        return None
    for key in ("example", "default"):
        if key in schema:
            return schema[key]
    if schema.get("examples"):
        return schema["examples"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        options = [s for s in schema.get(key, []) if _resolve(s, components).get("type") != "null"]
        if options:
            return example_for(options[0], components, depth + 1)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return {
            name: example_for(prop, components, depth + 1)
            for name, prop in schema.get("properties", {}).items()
        }
    if kind == "array":
        item = example_for(schema.get("items", {}), components, depth + 1)
        return [] if item is None else [item]
    return {"string": "text", "integer": 0, "number": 0.0, "boolean": False}.get(str(kind))


default_servers = DevServers()


