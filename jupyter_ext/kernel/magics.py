"""`%%nbento preprocess|model|api` (capture cells) and `%nbento COMMAND` (serve, stop, status,
show, call, name, build, export). Line commands live in `COMMANDS`; add one with
`@command("name", "one-line help")` on a function `(magics, args: list[str]) -> object`.

Captured cells run in the kernel as usual (so the user can try an API on sample input right
there); a cell is (re-)captured only when it ran cleanly, so the running server keeps the last
good version. Errors are said in plain words, naming the cell and the line, as an IPython
`UsageError`: one line, no traceback, and the cell fails, so Run All, nbconvert and papermill
stop there.
"""

from __future__ import annotations

import contextlib
import difflib
import inspect
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class

from jupyter_ext.actions.kernel_server import KernelServer, KernelServerError, free_port
from jupyter_ext.capture.cell_args import parse_cell_args
from jupyter_ext.capture.golden import SampleCalls, record_call
from jupyter_ext.capture.live import LiveCapture
from jupyter_ext.capture.notebook import (
    CapturedCell,
    CaptureError,
    cell_line,
    check_cell,
    runner_tags,
    split_magic,
)
from jupyter_ext.kernel.cell_code import assign_last_expression
from jupyter_ext.kernel.command_args import CommandArgsError, parse_command, split_command
from jupyter_ext.kernel.durations import human_ms
from runtime.errors import NbentoError
from runtime.store.artifacts import human_size

CommandFn = Callable[["NbentoMagics", list[str]], Any]
COMMANDS: dict[str, tuple[CommandFn, str]] = {}


def command(name: str, help_text: str) -> Callable[[CommandFn], CommandFn]:
    """Register a `%nbento NAME ...` line command (the panel and build/export use this too)."""

    def register(fn: CommandFn) -> CommandFn:
        COMMANDS[name] = (fn, help_text)
        return fn

    return register


def say_error(message: str) -> None:
    print(f"nbento: {message}", file=sys.stderr)


@magics_class
class NbentoMagics(Magics):
    """The `%nbento` / `%%nbento` magic; one instance per kernel holds the capture state."""

    def __init__(self, shell: Any) -> None:
        super().__init__(shell)
        self.ip: Any = shell  # Magics.shell is Optional in IPython's types; ours is always set
        self.state = LiveCapture(shell.user_ns)
        self.server: KernelServer | None = None
        self.last_bento: Any = None  # the Bento of the last %nbento build, for export
        self._nested = False
        shell.events.register("pre_run_cell", self._pre_run_cell)
        shell.events.register("post_run_cell", self._post_run_cell)

    # ---- hooks --------------------------------------------------------------------------

    def _pre_run_cell(self, info: Any) -> None:
        """Remember which cell is running; drop the capture of a cell re-run without magic."""
        if self._nested:
            return
        raw = getattr(info, "raw_cell", None) or ""
        cell_id = getattr(info, "cell_id", None)
        if not cell_id:
            get_parent = getattr(self.ip, "get_parent", None)
            parent = get_parent() if callable(get_parent) else None
            cell_id = ((parent or {}).get("metadata") or {}).get("cellId")
        self.state.current_raw = raw
        self.state.current_id = cell_id or None
        magic = split_magic(raw)
        if magic is not None:
            return
        in_file = self.state.cell_in_file(raw)
        key = cell_id or (in_file.cell_id if in_file else None)
        if key and key in self.state.cells:
            removed = self.state.drop(key)
            print(f"nbento: {removed.label if removed else key} is no longer captured")
            try:
                self._warn_free_names()
                self._publish(time.perf_counter())
            except NbentoError as exc:
                say_error(str(exc))

    def _post_run_cell(self, result: Any) -> None:
        """A cell the saved notebook marks (panel metadata or tag) ran: serve its new code."""
        if self._nested or not result.success:
            return
        if self.state.note_run(self.state.current_raw or ""):
            try:
                self._warn_free_names()
                self._publish(time.perf_counter())
            except NbentoError as exc:
                say_error(str(exc))

    # ---- the magic ----------------------------------------------------------------------

    @line_cell_magic
    def nbento(self, line: str, cell: str | None = None) -> Any:
        """Notebook cells as a typed, batched model service (nbento).

        Mark cells to capture them into one service module (the cell still runs in the
        kernel as usual), then serve, call, build and export it with line commands.
        A command or cell that fails fails the cell (UsageError), so Run All stops there.

        (The capture kinds and the commands are listed below; `%nbento help` prints them.)
        """
        try:
            if cell is None:
                return self._line(line)
            return self._capture(line, cell)
        except NbentoError as exc:  # CaptureArgsError, CommandArgsError, store and server errors
            raise UsageError(str(exc)) from None

    def _line(self, line: str) -> Any:
        words = split_command(line)
        if not words or words[0] in ("help", "-h", "--help"):
            print(self.help_text())
            return None
        entry = COMMANDS.get(words[0])
        if entry is None:
            close = difflib.get_close_matches(words[0], COMMANDS, n=1)
            hint = f"did you mean '%nbento {close[0]}'? " if close else ""
            raise CommandArgsError(
                f"unknown command {words[0]!r}; {hint}the commands are {', '.join(COMMANDS)} "
                f"(%nbento? or %nbento help says what each does)"
            )
        return entry[0](self, words[1:])

    @staticmethod
    def help_text() -> str:
        rows = "\n".join(f"  %nbento {name:<8} {text}" for name, (_, text) in COMMANDS.items())
        return (
            "Capture cells with:\n"
            "  %%nbento preprocess   imports, helpers and runner('NAME:latest') handles\n"
            "  %%nbento model NAME [--var VAR] [--batchable m1,m2] [--batch-dim 0] [--label k=v]\n"
            "                        save the cell's last value (or VAR) to the model store\n"
            "  %%nbento api NAME [--batchable] [--max-batch-size N] [--max-latency-ms N]\n"
            "                        an endpoint; the function's type hints are its schema\n"
            "Commands:\n" + rows
        )

    def _capture(self, line: str, body: str) -> Any:
        started = time.perf_counter()
        spec = parse_cell_args(line)
        cell_id, index = self.state.identify(spec.kind, spec.name, body)
        raw = self.state.current_raw or ""
        offset = max(len(raw.splitlines()) - len(body.splitlines()), 1) if raw else 1
        cell = CapturedCell(cell_id, spec.kind, spec.name, body, spec.options, index, offset)
        if spec.kind != "model":
            try:
                check_cell(cell)
            except CaptureError as exc:
                raise UsageError(f"{exc}\nThe capture was not updated; a running server keeps "
                                 f"the previous version.") from None
        samples = SampleCalls(self.ip, cell) if spec.kind == "api" else None
        with samples if samples is not None else contextlib.nullcontext():
            value, ok = self._run_in_kernel(body, want_value=spec.kind == "model" and "var" not in spec.options)
        if not ok:
            raise UsageError(f"{cell.label} failed in the kernel (see the error above); the capture "
                             f"was not updated and a running server keeps the previous version.")
        if spec.kind == "model":
            self._save_model(cell, value)
        ran = time.perf_counter()
        self.state.record(cell)
        self._warn_free_names()
        self._publish(started)
        for note in samples.save(self.state.folder) if samples is not None else []:
            say_error(note)  # recorded samples are replayed by `nbento build` (golden.jsonl)
        if spec.kind == "model":
            self._wait_for_model(str(self.state.models_saved[str(spec.name)]["tag"]))
        if os.environ.get("NBENTO_TIMING") == "1":
            print(f"[nbento timing] run in kernel {(ran - started) * 1000:.0f} ms, capture + "
                  f"write + reload {(time.perf_counter() - ran) * 1000:.0f} ms", file=sys.stderr)
        return None

    def _run_in_kernel(self, body: str, *, want_value: bool) -> tuple[Any, bool]:
        """Run `body` like a cell (outputs shown, user tracebacks as IPython prints them).
        With `want_value`, the last expression's value is returned instead of displayed."""
        code = assign_last_expression(body, "_nbento_value_") if want_value else body
        self._nested = True
        try:
            result = self.ip.run_cell(code, store_history=False)
        finally:
            self._nested = False
        value = self.ip.user_ns.pop("_nbento_value_", None) if want_value else None
        return value, bool(result.success)

    def _save_model(self, cell: CapturedCell, value: Any) -> None:
        from runtime.store.model_store import save_model

        var = cell.options.get("var")
        if var is not None:
            if var not in self.ip.user_ns:
                raise UsageError(f"{cell.label}: --var {var} names no variable the cell defined")
            value = self.ip.user_ns[var]
        if value is None:
            raise UsageError(f"{cell.label}: nothing to save; end the cell with the model object "
                             f"(for example a last line `clf`) or pass --var NAME")
        batch_dim = cell.options.get("batch_dim", 0)
        methods = cell.options.get("batchable")
        signatures = (
            {m: {"batchable": True, "batch_dim": batch_dim} for m in methods} if methods else None
        )
        notebook = self.state.notebook()
        model = save_model(
            str(cell.name), value, signatures=signatures, labels=cell.options.get("labels"),
            provenance={"notebook": str(notebook) if notebook else None, "cell_id": cell.cell_id},
        )
        sigs = ", ".join(
            f"{name}{f' (batchable, dim {sig.batch_dim})' if sig.batchable else ''}"
            for name, sig in model.info.signatures.items()
        )
        print(f"saved model {model.tag} ({human_size(model.info.size_bytes)}); signatures: {sigs}")
        self.state.models_saved[str(cell.name)] = {
            "name": cell.name, "tag": str(model.tag), "cell_id": cell.cell_id,
        }

    def _wait_for_model(self, tag: str) -> None:
        """With a server up, a new version of a model it serves as `NAME:latest` reloads that
        runner only; say when it is serving."""
        server = self.server
        if server is None or not server.running or not server.reload:
            return
        model = tag.partition(":")[0]
        module = self.state.folder / "service.py"
        written = runner_tags(module.read_text()) if module.is_file() else []
        if not any(r["tag"] in (model, f"{model}:latest") for r in written):
            return  # no runner follows this model's latest version
        runners = server.wait_for_model(tag)
        if runners is None:
            say_error(f"the server has not loaded {tag} yet; check %nbento status")
            return
        for name, info in runners.items():
            print(f"runner {name} now serves {tag} (loaded in {info.get('load_seconds') or 0:.1f} s)")

    def _warn_free_names(self) -> None:
        for message in self.state.build_warnings():  # `nbento build` refuses these
            print(f"nbento: warning: {message}", file=sys.stderr)

    def _publish(self, started: float) -> None:
        """Write the module; with a reloading server up, wait until it serves the new code."""
        if not any(c.kind != "model" for c in self.state.ordered()) and not self.state.folder.exists():
            return
        server = self.server
        watching = server is not None and server.running and server.reload
        before = server.status() if server and watching and not server.reloads_on_request else None
        written = self.state.write()
        if server is not None and server.running and not server.reload and written.changed:
            print(f"the server at {server.url} runs without reload; %nbento stop and "
                  f"%nbento serve to serve this change")
        if server is None or not watching or not written.changed:
            return
        outcome = server.wait_for_reload(written.sha256, before, started=started)
        if outcome.ok:
            print(f"live in {outcome.elapsed_ms:.0f} ms at {server.url}")
        elif outcome.timed_out:
            say_error(f"the server has not picked up the change yet; check %nbento status "
                      f"(log: {server.log_path})")
        else:
            say_error("the server could not load the new code and keeps serving the previous "
                      "version:\n  " + self.describe_error(outcome.error))

    def describe_error(self, error: dict[str, Any] | None) -> str:
        """A server-side import error, pointed at the notebook cell and line when it is in
        the generated module."""
        if error and error.get("line") and str(error.get("file") or "").endswith("service.py"):
            module = self.state.folder / "service.py"
            try:
                found = cell_line(self.state.ordered(), module.read_text(), int(error["line"]))
            except (OSError, ValueError):
                found = None
            if found is not None:
                cell, line = found
                return f"{cell.label} line {line}: {error.get('message')}"
        return describe_error(error)


def describe_error(error: dict[str, Any] | None) -> str:
    if not error:
        return "(no details)"
    where = ""
    if error.get("line"):
        where = f" (line {error['line']} of {error.get('file') or 'service.py'})"
    return f"{error.get('message', error)}{where}"


# ---- line commands --------------------------------------------------------------------------


@command("serve", "[--port N] [--reload/--no-reload]  start the service in the background")
def _serve(magics: NbentoMagics, args: list[str]) -> None:
    ns = parse_command("serve", args)
    state = magics.state
    if not any(c.kind == "api" for c in state.ordered()):
        raise CommandArgsError("nothing to serve yet: run a '%%nbento api NAME' cell first")
    if magics.server is not None and magics.server.running:
        print(f"already serving at {magics.server.url} (stop it with %nbento stop)")
        return
    magics._warn_free_names()  # before serving: the server would fail on these names
    state.write()
    if (attached := KernelServer.attach(state.folder)) is not None:  # one server per service
        magics.server = attached
        return print(f"attached to the server at {attached.url} (started by {attached.owner})")
    port = ns.port if ns.port is not None else free_port()
    server = KernelServer(state.folder, port=port, reload=ns.reload, notebook=state.notebook())
    print(f"starting {state.service_name} from {state.folder} ...", flush=True)
    try:
        server.start(port_tries=1 if ns.port is not None else 5)
    except KernelServerError:
        server.stop()
        raise
    magics.server = server
    print(f"serving {state.service_name} at {server.url}  (docs: {server.url}/docs"
          f"{', reload on' if ns.reload else ''})")
    from jupyter_ext.kernel.jupyter_link import docs_link, find_jupyter_server

    docs = docs_link(server.url, find_jupyter_server())
    if docs.via_jupyter:
        print(f"/docs through Jupyter, for a browser on another machine: {docs.href}")


@command("stop", "stop the background server")
def _stop(magics: NbentoMagics, args: list[str]) -> None:
    parse_command("stop", args)
    server, magics.server = magics.server, None
    if server is None or not server.running:
        print("no server is running")
        return
    code = server.stop()
    print(f"stopped the server at {server.url} (exit code {code})")


@command("status", "the background server: URL, generation, runners, last error")
def _status(magics: NbentoMagics, args: list[str]) -> dict[str, Any] | None:
    parse_command("status", args)
    server = magics.server
    captured = ", ".join(c.label for c in magics.state.ordered()) or "none"
    print(f"service {magics.state.service_name}: {magics.state.folder}\ncaptured: {captured}")
    if server is None or not server.running:
        print("server: not running (start it with %nbento serve)")
        return None
    status = server.status()
    if status is None:
        print(f"server: {server.url} is not answering; log: {server.log_path}")
        return None
    runners = ", ".join(
        f"{name} {info.get('tag')} ({'loaded' if info.get('loaded') else 'loading'})"
        for name, info in (status.get("runners") or {}).items()
    ) or "none"
    took = status.get("last_reload_ms")
    reload = "no reload since it started" if took is None else f"last reload took {human_ms(took)}"
    print(f"server: {server.url} pid {status.get('pid')}, generation {status.get('generation')}, "
          f"{reload}\nrunners: {runners}")
    if status.get("last_error"):
        print("last reload failed, still serving the previous version:\n  "
              + magics.describe_error(status["last_error"]), file=sys.stderr)
    return None


@command("show", "print the generated service module")
def _show(magics: NbentoMagics, args: list[str]) -> None:
    parse_command("show", args)
    written = magics.state.write()
    print(written.module_path.read_text())


@command("call", "API JSON  send a request to the running server")
def _call(magics: NbentoMagics, args: list[str]) -> Any:
    ns = parse_command("call", args)
    server = magics.server
    if server is None or not server.running:
        raise CommandArgsError("no server is running; start one with %nbento serve")
    try:
        payload = json.loads(ns.json)
    except json.JSONDecodeError as exc:
        raise CommandArgsError(f"the request body is not JSON ({exc.msg} at column {exc.colno}): {ns.json}") from None
    from jupyter_ext.actions.dev_servers import call_api  # Try it sends requests this way

    try:
        answer = call_api(server.url, ns.api, payload)
    except NbentoError as exc:
        raise CommandArgsError(str(exc)) from None
    body = answer["body"]
    if answer["status"] == 200:  # a golden answer: `nbento build` replays it
        record_call(magics.state.folder, ns.api, payload, body, cell_id=magics.state.running_cell_id())
    shown = json.dumps(body, indent=2) if not isinstance(body, str) else body
    print(f"POST /{ns.api} -> {answer['status']} in {answer['latency_ms']:.1f} ms\n{shown}")
    if answer["status"] >= 400:  # the cell fails, so Run All stops at a call that did
        raise CommandArgsError(f"POST /{ns.api} answered {answer['status']} (the body is above)")
    return None


@command("name", "NAME [--notebook PATH]  set the service name (default: the notebook's)")
def _name(magics: NbentoMagics, args: list[str]) -> None:
    from pathlib import Path

    from runtime.tags import validate_name

    ns = parse_command("name", args)
    name = validate_name(ns.name, "service name")
    if ns.notebook:
        path = Path(ns.notebook).expanduser().resolve()
        if not path.is_file():
            raise CommandArgsError(f"no such notebook: {path}")
        magics.state.explicit_notebook = path
    magics.state.explicit_name = name
    print(f"service {magics.state.service_name}: files go to {magics.state.folder}")


@command("build", "build a Bento from the captured service (then %nbento export k8s)")
def _build(magics: NbentoMagics, args: list[str]) -> Any:
    parse_command("build", args)
    try:
        from runtime.export.bento import build_bento
    except ImportError:
        raise CommandArgsError("building Bentos is not available in this nbento "
                               "(runtime.export.bento is missing)") from None
    written = magics.state.write()
    bento = build_bento(written.folder, progress=print)
    magics.last_bento = bento
    print(f"built Bento {bento.tag} at {bento.path}")
    return None


@command("export", "k8s [--out DIR] [--split-runners]  Kubernetes manifests for the last build")
def _export(magics: NbentoMagics, args: list[str]) -> Any:
    ns = parse_command("export", args)
    try:
        from runtime.export.k8s import write_manifests
    except ImportError:
        raise CommandArgsError("Kubernetes export is not available in this nbento "
                               "(runtime.export.k8s is missing)") from None
    bento = getattr(magics, "last_bento", None)
    if bento is None:
        raise CommandArgsError("build the service first with %nbento build")
    overrides: dict[str, Any] = {"split_runners": ns.split_runners}
    files = write_manifests(bento, ns.out, **overrides)
    print(f"wrote {len(files)} files:\n  " + "\n  ".join(str(f) for f in files))
    return None


# `%nbento panel` belongs to jupyter_ext/panel.py (the ipywidgets panel); keep this entry.
@command("panel", "show Models, Server, Try it and Export as widgets (no JupyterLab extension needed)")
def _panel(magics: NbentoMagics, args: list[str]) -> Any:
    from jupyter_ext.kernel.panel import show_panel

    return show_panel(backend_for_magics(magics), args)


def backend_for_magics(magics: NbentoMagics) -> Any:
    """The widget panel's backend in a live kernel: the `%nbento` magics' capture state and server."""
    from jupyter_ext.kernel.magics import COMMANDS
    from jupyter_ext.kernel.panel import PanelBackend

    def url() -> str | None:
        server = magics.server
        return server.url if server is not None and server.running else None

    def status() -> dict[str, Any] | None:
        server = magics.server
        if server is None or not server.running:
            return None
        data = server.status()  # a server without --reload trims its pid: the kernel knows it
        return None if data is None else {"pid": server.pid, **data}

    return PanelBackend(
        service_folder=lambda: magics.state.write().folder,
        server_url=url,
        server_status=status,
        start_server=lambda: COMMANDS["serve"][0](magics, []),
        stop_server=lambda: COMMANDS["stop"][0](magics, []),
    )


# `%nbento?` shows the magic's docstring: complete it with every kind and command (those
# registered above, so it cannot drift from `%nbento help`).
NbentoMagics.nbento.__doc__ = (
    inspect.cleandoc(NbentoMagics.nbento.__doc__ or "") + "\n\n" + NbentoMagics.help_text() + "\n"
)
