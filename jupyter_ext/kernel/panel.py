"""`%nbento panel`: the Models, Server, Try it and Export sections as ipywidgets, for front
ends without JupyterLab extensions (Notebook 7, VS Code). Every button calls what the
magics, the CLI and the JupyterLab panel call: the model store, `%nbento serve` / `stop`
(the kernel's own `KernelServer`), the call helper of the REST proxy, and `export_service`
(Bento build + Kubernetes manifests) in a background job driving a progress bar."""

from __future__ import annotations

import html
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from jupyter_ext.actions.dev_servers import api_forms, call_api, plain_reload_error
from jupyter_ext.actions.export_job import ExportOptions, export_service
from jupyter_ext.actions.jobs import JobRegistry, default_jobs
from jupyter_ext.kernel.durations import human_ms
from jupyter_ext.kernel.jupyter_link import docs_link, find_jupyter_server
from runtime.errors import NbentoError
from runtime.store.artifacts import human_size


@dataclass
class PanelBackend:
    """What the panel needs from the kernel, as plain callables (so tests can pass their own):
    the service folder to export (captured cells written out), the running server's URL or
    None, and start / stop actions."""

    service_folder: Callable[[], Path]
    server_url: Callable[[], str | None]
    server_status: Callable[[], dict[str, Any] | None]
    start_server: Callable[[], None]
    stop_server: Callable[[], None]


def _error(message: str) -> str:
    return f"<span style='color: var(--jp-error-color1, #c62828)'>{html.escape(message)}</span>"


def _saved_by(model: str, cell_id: str | None) -> str:
    """The cell that saved a model, named as the JupyterLab panel names it (kind and name), its
    id in the tooltip; the widget does not know the notebook's execution counts."""
    if not cell_id:
        return "-"
    return f"<span title='cell id {html.escape(cell_id)}'>model {html.escape(model)}</span>"


def reload_text(status: dict[str, Any]) -> str:
    """`loaded 12:03:04 (reload took 120 ms)`, or what is true before the first reload."""
    loaded = str(status.get("loaded_at") or "")
    when = loaded[11:19] if len(loaded) >= 19 and loaded[10] == "T" else loaded
    took = status.get("last_reload_ms")
    if not loaded:
        return "not loaded yet"
    if took is None:
        return f"loaded {when}, no reload since the start"
    return f"loaded {when} (reload took {human_ms(float(took))})"


class ModelsSection:
    def __init__(self) -> None:
        self.table = widgets.HTML()
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.widget = widgets.VBox([self.refresh_button, self.table])
        self.refresh()

    def refresh(self) -> None:
        from runtime import store

        try:
            models = store.list_models()
        except NbentoError as exc:
            self.table.value = _error(str(exc))
            return
        if not models:
            self.table.value = "<i>No models saved yet. Run a %%nbento model cell.</i>"
            return
        rows = []
        for m in models:
            info = m.info
            sigs = ", ".join(
                f"{name}{' (batchable)' if sig.batchable else ''}" for name, sig in info.signatures.items()
            )
            rows.append(
                f"<tr><td style='white-space: nowrap'><b>{html.escape(info.name)}</b>:"
                f"{html.escape(info.version)}</td>"
                f"<td>{html.escape(info.framework.name)}</td><td>{html.escape(sigs)}</td>"
                f"<td style='white-space: nowrap'>{human_size(info.size_bytes)}</td>"
                f"<td>{_saved_by(info.name, info.provenance.cell_id)}</td></tr>"
            )
        self.table.value = (
            "<table class='nbento-models'><tr><th>model</th><th>framework</th><th>signatures</th>"
            "<th>size</th><th>saved by</th></tr>" + "".join(rows) + "</table>"
        )


class ServerSection:
    def __init__(self, backend: PanelBackend, on_change: Callable[[], None]) -> None:
        self.backend = backend
        self.on_change = on_change
        self.start_button = widgets.Button(description="Start", button_style="success", icon="play")
        self.stop_button = widgets.Button(description="Stop", icon="stop")
        self.refresh_button = widgets.Button(description="Status", icon="refresh")
        self.info = widgets.HTML()
        self.log = widgets.Output()
        self.start_button.on_click(lambda _: self._run(self.backend.start_server))
        self.stop_button.on_click(lambda _: self._run(self.backend.stop_server))
        self.refresh_button.on_click(lambda _: self.refresh())
        self.widget = widgets.VBox([
            widgets.HBox([self.start_button, self.stop_button, self.refresh_button]),
            self.info, self.log,
        ])
        self.refresh()

    def _run(self, action: Callable[[], None]) -> None:
        self.log.clear_output()
        with self.log:
            try:
                action()
            except NbentoError as exc:
                print(f"nbento: {exc}")
        self.refresh()
        self.on_change()

    def refresh(self) -> None:
        url = self.backend.server_url()
        self.start_button.disabled = url is not None
        self.stop_button.disabled = url is None
        if url is None:
            self.info.value = "<i>No server running. Start serves the captured cells with hot reload.</i>"
            return
        status = self.backend.server_status() or {}
        error = plain_reload_error(status.get("last_error"))
        docs = docs_link(url, find_jupyter_server())
        note = f" <small>({html.escape(docs.note)})</small>" if docs.note else ""
        parts = [
            f"<b>running</b> at <code>{html.escape(url)}</code>"
            f" (<a href='{html.escape(docs.href)}' target='_blank'>/docs</a>){note}",
            f"PID {status.get('pid', '?')}, generation {status.get('generation', '-')}, "
            f"{html.escape(reload_text(status))}",
        ]
        if error:
            parts.append(_error(error))
        self.info.value = "<br>".join(parts)


class TryItSection:
    def __init__(self, backend: PanelBackend) -> None:
        self.backend = backend
        self.api = widgets.Dropdown(description="API")
        self.body = widgets.Textarea(layout=widgets.Layout(width="100%", height="8em"))
        self.send_button = widgets.Button(description="Send", button_style="primary", icon="paper-plane")
        self.answer = widgets.HTML()
        self._examples: dict[str, Any] = {}
        self.api.observe(self._choose, names="value")
        self.send_button.on_click(lambda _: self.send())
        self.widget = widgets.VBox([self.api, self.body, self.send_button, self.answer])
        self.refresh()

    def refresh(self) -> None:
        url = self.backend.server_url()
        self.send_button.disabled = url is None
        if url is None:
            self.api.options = []
            self.answer.value = "<i>Start the server to try its APIs.</i>"
            return
        try:
            forms = api_forms(url)
        except NbentoError as exc:
            self.answer.value = _error(str(exc))
            return
        self._examples = {f["name"]: f["example"] for f in forms}
        current = self.api.value
        self.api.options = list(self._examples)
        if self._examples:  # ipywidgets 8 leaves the value unset when options change
            self.api.value = current if current in self._examples else next(iter(self._examples))
            self._choose({"new": self.api.value})
        self.answer.value = ""

    def _choose(self, change: dict[str, Any]) -> None:
        name = change.get("new")
        if name in self._examples:
            self.body.value = json.dumps(self._examples[name], indent=2)

    def send(self) -> dict[str, Any] | None:
        url = self.backend.server_url()
        if url is None or not self.api.value:
            self.answer.value = _error("no server is running; start it in the Server section")
            return None
        try:
            body = json.loads(self.body.value or "null")
        except json.JSONDecodeError as exc:
            self.answer.value = _error(f"the body is not JSON ({exc.msg} at column {exc.colno})")
            return None
        try:
            result = call_api(url, str(self.api.value), body)
        except NbentoError as exc:
            self.answer.value = _error(str(exc))
            return None
        shown = html.escape(json.dumps(result["body"], indent=2))
        self.answer.value = (
            f"HTTP {result['status']} in {human_ms(result['latency_ms'])}<pre>{shown}</pre>"
        )
        return result


class ExportSection:
    def __init__(self, backend: PanelBackend, jobs: JobRegistry) -> None:
        self.backend = backend
        self.jobs = jobs
        self.split = widgets.Checkbox(description="split runners", indent=False)
        self.yatai = widgets.Checkbox(description="Yatai BentoDeployment", indent=False)
        self.image = widgets.Text(placeholder="image (default: service:version)", description="image")
        self.run_button = widgets.Button(description="Build Bento + manifests", button_style="primary",
                                         icon="cube", layout=widgets.Layout(width="auto"))
        self.progress = widgets.FloatProgress(value=0.0, min=0.0, max=1.0, description="")
        self.message = widgets.HTML()
        self.result = widgets.HTML()
        self.run_button.on_click(lambda _: self.start())
        self.widget = widgets.VBox([
            widgets.HBox([self.split, self.yatai]), self.image, self.run_button,
            self.progress, self.message, self.result,
        ])
        self.job_id: str | None = None

    def start(self) -> str | None:
        """Start the export in a background job; a watcher thread moves the progress bar."""
        try:
            options = ExportOptions.from_json({
                "split_runners": self.split.value, "yatai": self.yatai.value,
                "image": self.image.value or None,
            })
            folder = self.backend.service_folder()
        except NbentoError as exc:
            self.message.value = _error(str(exc))
            return None
        default_out = folder.parent.parent  # <notebook dir>/.nbento/<service> -> <notebook dir>
        self.run_button.disabled = True
        self.result.value = ""
        self.progress.bar_style = ""

        def report_to_bar(fraction: float, message: str) -> None:
            self.progress.value = max(self.progress.value, fraction)
            self.message.value = html.escape(message)

        def body(report: Callable[[float, str], None]) -> dict[str, Any]:
            def both(fraction: float, message: str) -> None:
                report(fraction, message)
                report_to_bar(fraction, message)

            try:
                return export_service(folder, options, both, default_out=default_out)
            finally:
                self.run_button.disabled = False

        job = self.jobs.start("export", body)
        self.job_id = job.id
        self.progress.value = 0.0
        threading.Thread(target=self._finish, args=(job.id,), daemon=True).start()
        return job.id

    def _finish(self, job_id: str) -> None:
        job = self.jobs.wait(job_id, timeout=1800)
        if job.state == "done":
            self.progress.value = 1.0
            self.progress.bar_style = "success"
            result = job.result
            files = "".join(f"<li><code>{html.escape(Path(f).name)}</code></li>" for f in result["manifests"])
            self.message.value = "done"
            self.result.value = (
                f"Bento: <code>{html.escape(result['bento'])}</code><br>"
                f"Manifests in <code>{html.escape(result['manifests_dir'])}</code>:<ul>{files}</ul>"
            )
        elif job.state == "failed":
            self.progress.bar_style = "danger"
            self.message.value = _error(job.error or "the export failed")


class NbentoPanel:
    """The four sections in an Accordion; `widget` is what the magic displays."""

    def __init__(self, backend: PanelBackend, jobs: JobRegistry = default_jobs) -> None:
        self.models = ModelsSection()
        self.tryit = TryItSection(backend)
        self.server = ServerSection(backend, on_change=self.tryit.refresh)
        self.export = ExportSection(backend, jobs)
        self.widget = widgets.Accordion(
            children=[self.models.widget, self.server.widget, self.tryit.widget, self.export.widget],
            titles=("Models", "Server", "Try it", "Export"),
        )
        self.widget.selected_index = 0


def show_panel(backend: PanelBackend, args: list[str]) -> Any:
    """`%nbento panel`: return the panel widget (displayed as the cell's output)."""
    if args:
        raise NbentoError(f"%nbento panel takes no arguments, got {' '.join(args)!r}")
    return NbentoPanel(backend).widget
