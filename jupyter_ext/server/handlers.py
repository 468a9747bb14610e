"""REST handlers under `/nbento/` on the Jupyter server: what the JupyterLab panel shows and
does. Every handler is an `APIHandler` (token / cookie auth, XSRF on POST and DELETE for
cookie-authenticated browsers) with `@authorized` on the `nbento` resource, and answers bad
input with 400 and a message. The work itself is done by the same functions the CLI and the
magics use (`runtime.store.model_store`, `jupyter_ext.capture.notebook`, `runtime.export.bento`, `runtime.export.k8s`).

    GET    /nbento/models                  models in the store
    GET    /nbento/models/TAG              one model's metadata
    DELETE /nbento/models/TAG              delete one version (or NAME:latest)
    GET    /nbento/services?notebook=P     captured cells by kind, generated source, warnings
    GET    /nbento/servers                 development servers: started here, or by the
                                           kernels of open notebooks (adopted)
    POST   /nbento/servers {notebook}      start `nbento serve NOTEBOOK --reload`
    GET    /nbento/servers/ID              status, reload state, metrics summary + history
    DELETE /nbento/servers/ID              stop it
    POST   /nbento/servers/ID/reload       re-capture the saved notebook, wait for the reload;
                                           200 also when the change did not load (`ok` false,
                                           `error` at its notebook cell and line)
    GET    /nbento/servers/ID/apis         APIs with request schema and an example body
    POST   /nbento/servers/ID/call/API     proxy one call (the browser never sees the port)
    POST   /nbento/exports {notebook, ...} start a Bento + Kubernetes export job
    GET    /nbento/jobs/ID                 a job's progress, log and result
    GET    /nbento/proxy/ID/PATH           a server's /docs and APIs through Jupyter
    POST   /nbento/proxy/ID/API            (jupyter_ext/server/proxy.py)
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import tornado.web
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join

from jupyter_ext.actions.dev_servers import ServerNotFound, api_forms, call_api, default_servers
from jupyter_ext.actions.export_job import ExportOptions, export_notebook
from jupyter_ext.actions.jobs import default_jobs
from jupyter_ext.actions.notebook_paths import HiddenNotebook, hidden_part, refuse_hidden
from jupyter_ext.server.proxy import proxy_routes, session_notebooks
from runtime.errors import ModelNotFound, NbentoError

AUTH_RESOURCE = "nbento"


class NbentoHandler(APIHandler):
    """Shared plumbing: JSON in/out, notebook paths confined to the server root, and errors
    meant for people turned into 4xx answers with a message."""

    auth_resource = AUTH_RESOURCE

    def write_json(self, value: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(value, default=str))

    def json_body(self) -> dict[str, Any]:
        raw = self.request.body or b"{}"
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise tornado.web.HTTPError(400, f"the request body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise tornado.web.HTTPError(400, f"the request body must be a JSON object, got {raw[:80]!r}")
        return data

    def root_dir(self) -> Path:
        root = self.settings.get("server_root_dir") or self.contents_manager.root_dir
        return Path(str(root)).expanduser().resolve()

    def notebook_path(self, rel: Any) -> Path:
        """A notebook named relative to the Jupyter root (as JupyterLab paths are)."""
        if not isinstance(rel, str) or not rel.strip():
            raise tornado.web.HTTPError(400, "say which notebook: 'notebook' is a path like 'dir/name.ipynb'")
        root = self.root_dir()
        path = (root / rel.lstrip("/")).resolve()
        if path != root and root not in path.parents:
            raise tornado.web.HTTPError(400, f"notebook {rel!r} is outside the Jupyter root {root}")
        try:  # before looking at the file: a hidden notebook's existence is not shown either
            refuse_hidden(rel, path, root, allow_hidden=bool(self.contents_manager.allow_hidden))
        except HiddenNotebook as exc:
            raise tornado.web.HTTPError(exc.status, str(exc)) from None
        if path.suffix != ".ipynb":
            raise tornado.web.HTTPError(400, f"{rel!r} is not a notebook (.ipynb)")
        if not path.is_file():
            raise tornado.web.HTTPError(400, f"no notebook {rel!r} under the Jupyter root")
        return path

    def relative(self, path: Path | str) -> str:
        try:
            return str(Path(path).resolve().relative_to(self.root_dir()))
        except ValueError:
            return str(path)

    def user_error(self, exc: NbentoError) -> tornado.web.HTTPError:
        status = 404 if isinstance(exc, ModelNotFound | ServerNotFound) else 400
        return tornado.web.HTTPError(status, str(exc))


def _model_json(model: Any) -> dict[str, Any]:
    info = model.info.model_dump(mode="json")
    info["tag"] = str(model.tag)
    info["path"] = str(model.path)
    return info


class ModelsHandler(NbentoHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        from runtime import store

        name = self.get_query_argument("name", None)
        try:
            models = await asyncio.to_thread(store.list_models, name)
        except NbentoError as exc:
            raise self.user_error(exc) from None
        self.write_json({"models": [_model_json(m) for m in models]})


class ModelHandler(NbentoHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, tag: str) -> None:
        from runtime import store

        try:
            model = await asyncio.to_thread(store.get, tag)
        except NbentoError as exc:
            raise self.user_error(exc) from None
        self.write_json(_model_json(model))

    @tornado.web.authenticated
    @authorized
    async def delete(self, tag: str) -> None:
        from runtime import store

        try:
            model = await asyncio.to_thread(store.delete, tag)
        except NbentoError as exc:
            raise self.user_error(exc) from None
        self.write_json({"deleted": str(model.tag)})


def _cell_json(cell: Any) -> dict[str, Any]:
    return {"cell_id": cell.cell_id, "kind": cell.kind, "name": cell.name,
            "index": cell.index, "options": cell.options}


class ServicesHandler(NbentoHandler):
    """The service a notebook's captured cells make, read from the saved file (offline
    capture), with the module the server would import and the free-name warnings."""

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        from jupyter_ext.capture import notebook as capture

        path = self.notebook_path(self.get_query_argument("notebook", None))

        def describe() -> dict[str, Any]:
            cap = capture.capture_notebook(path)
            groups: dict[str, list[dict[str, Any]]] = {"preprocess": [], "model": [], "api": []}
            for cell in cap.cells:
                groups.setdefault(cell.kind, []).append(_cell_json(cell))
            try:
                source: str | None = capture.render_module(cap.cells, cap.service_name)
                render_error = None
            except NbentoError as exc:
                source, render_error = None, str(exc)
            return {
                "notebook": self.relative(path),
                "service": cap.service_name,
                "service_dir": str(capture.service_dir(path.parent, cap.service_name)),
                "cells": groups,
                "source": source,
                "error": render_error,
                "warnings": [
                    {"name": f.name, "cell_id": f.cell.cell_id, "line": f.line, "message": f.message}
                    for f in cap.free_names
                ],
            }

        try:
            self.write_json(await asyncio.to_thread(describe))
        except NbentoError as exc:
            raise self.user_error(exc) from None


def _server_json(handler: NbentoHandler, described: dict[str, Any]) -> dict[str, Any]:
    described["notebook"] = handler.relative(described["notebook"])
    return described


class ServersHandler(NbentoHandler):
    async def open_notebooks(self) -> list[Path]:
        """The notebooks with a kernel session: where a kernel may have started a server."""
        return await session_notebooks(self)

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        notebooks = await self.open_notebooks()
        await asyncio.to_thread(default_servers.discover, notebooks)
        servers = default_servers.list()
        found = [await asyncio.to_thread(s.describe) for s in servers]
        self.write_json({"servers": [_server_json(self, d) for d in found]})

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body()
        path = self.notebook_path(body.get("notebook"))
        port = body.get("port")
        if port is not None and (not isinstance(port, int) or isinstance(port, bool)
                                 or not 1024 <= port <= 65535):
            raise tornado.web.HTTPError(400, f"port must be a number from 1024 to 65535, got {port!r}")
        try:
            server = await asyncio.to_thread(default_servers.start, path, port=port)
        except NbentoError as exc:
            raise self.user_error(exc) from None
        described = await asyncio.to_thread(server.describe)
        self.write_json(_server_json(self, described), status=201)


class ServerHandler(NbentoHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, server_id: str) -> None:
        try:
            server = default_servers.get(server_id)
        except NbentoError as exc:
            raise self.user_error(exc) from None
        self.write_json(_server_json(self, await asyncio.to_thread(server.describe)))

    @tornado.web.authenticated
    @authorized
    async def delete(self, server_id: str) -> None:
        try:
            server = await asyncio.to_thread(default_servers.stop, server_id)
        except NbentoError as exc:
            raise self.user_error(exc) from None
        self.write_json({"stopped": server.id, "returncode": server.returncode})


class ServerReloadHandler(NbentoHandler):
    """Re-capture the saved notebook into the served folder and wait for the hot reload. A
    change that does not load is an expected outcome, answered as data, not an HTTP error."""

    @tornado.web.authenticated
    @authorized
    async def post(self, server_id: str) -> None:
        try:
            outcome = await asyncio.to_thread(default_servers.recapture, server_id)
        except NbentoError as exc:
            raise self.user_error(exc) from None
        self.write_json(outcome)


class ServerApisHandler(NbentoHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, server_id: str) -> None:
        try:
            server = default_servers.get(server_id)
            forms = await asyncio.to_thread(api_forms, server.url)
        except NbentoError as exc:
            raise self.user_error(exc) from None
        self.write_json({"apis": forms})


class CallHandler(NbentoHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self, server_id: str, api: str) -> None:
        raw = self.request.body or b""
        try:
            body = json.loads(raw) if raw.strip() else {}
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise tornado.web.HTTPError(400, f"the request body is not JSON: {exc}") from None
        try:
            server = default_servers.get(server_id)
            if not server.running():
                raise NbentoError(f"server {server_id} is not running; start it again")
            answer = await asyncio.to_thread(call_api, server.url, api, body)
        except NbentoError as exc:
            raise self.user_error(exc) from None
        self.write_json(answer)


class ExportsHandler(NbentoHandler):
    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.json_body()
        path = self.notebook_path(body.pop("notebook", None))
        try:
            options = ExportOptions.from_json(body)
        except NbentoError as exc:
            raise self.user_error(exc) from None
        if options.out_dir is not None:
            # relative out_dir is relative to the notebook; it must stay under the root
            out = (path.parent / options.out_dir).resolve()
            root = self.root_dir()
            if out != root and root not in out.parents:
                raise tornado.web.HTTPError(400, f"out_dir {options.out_dir!r} is outside the Jupyter root")
            if not self.contents_manager.allow_hidden and hidden_part(out.relative_to(root)):
                raise tornado.web.HTTPError(400, f"out_dir {options.out_dir!r} is a hidden folder; "
                                                 f"export into a folder whose name has no leading dot")
            options = ExportOptions(options.split_runners, options.yatai, options.image, str(out))
        job = default_jobs.start("export", lambda report: export_notebook(path, options, report))
        self.write_json(job.to_json(), status=202)


class JobHandler(NbentoHandler):
    @tornado.web.authenticated
    @authorized
    async def get(self, job_id: str) -> None:
        try:
            job = default_jobs.get(job_id)
        except NbentoError as exc:
            raise tornado.web.HTTPError(404, str(exc)) from None
        self.write_json(job.to_json())


_ID = r"([A-Za-z0-9_.:-]+)"


def setup_handlers(web_app: Any) -> None:
    """Register the routes under `{base_url}nbento/`."""
    base = url_path_join(web_app.settings["base_url"], "nbento")
    routes: list[tuple[str, type[NbentoHandler]]] = [
        (r"/models", ModelsHandler),
        (r"/models/([^/]+)", ModelHandler),
        (r"/services", ServicesHandler),
        (r"/servers", ServersHandler),
        (rf"/servers/{_ID}", ServerHandler),
        (rf"/servers/{_ID}/apis", ServerApisHandler),
        (rf"/servers/{_ID}/reload", ServerReloadHandler),
        (rf"/servers/{_ID}/call/([^/]+)", CallHandler),
        (r"/exports", ExportsHandler),
        (rf"/jobs/{_ID}", JobHandler),
    ]
    web_app.add_handlers(".*$", [(base + pattern, handler) for pattern, handler in routes])
    web_app.add_handlers(".*$", proxy_routes(web_app.settings["base_url"]))
