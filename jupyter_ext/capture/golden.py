"""Recording golden answers in the kernel: every `%nbento call` and every sample call an API
cell makes (its top-level expressions, e.g. `classify(["I was charged twice"])`), with the
answer, into `.nbento/<service>/golden.jsonl`. `nbento build` replays them against the built
Bento and refuses it when an answer differs (`runtime.export.golden`).

A sample call is recorded as the request the server would get (its arguments mapped to the
API's parameters, as JSON) and the answer encoded by the server's own encoder
(`ApiSchema.encode`), so the replay compares like with like.

    with SampleCalls(shell, cell) as samples:      # around running the api cell's code
        shell.run_cell(body)
    samples.save(folder)                           # after the module was written
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from jupyter_ext.capture.cells import CapturedCell, api_function
from jupyter_ext.capture.render import sample_statements
from runtime.export.golden import GOLDEN_FILE, Golden, record_goldens, utc_now
from runtime.service.definition import ApiSpec
from runtime.service.schema import ApiSchema
from runtime.service.sources import SERVICE_MODULE

RECORDER = "_nbento_sample_"


class Unrecordable(Exception):
    """A sample call whose request or answer has no JSON form (a file, an image...)."""


class _WrapSampleCalls(ast.NodeTransformer):
    """`classify(x)` in a top-level expression -> `_nbento_sample_(classify)(x)`: the same
    call, through a recorder. Locations are kept, so tracebacks show the user's lines."""

    def __init__(self, function: str) -> None:
        self.function = function

    def visit_Module(self, node: ast.Module) -> ast.Module:
        for statement in sample_statements(node):
            calls = [
                sub for sub in ast.walk(statement)
                if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name)
                and sub.func.id == self.function
            ]
            for call in calls:
                recorder = ast.Name(id=RECORDER, ctx=ast.Load())
                call.func = ast.copy_location(
                    ast.Call(func=ast.copy_location(recorder, call.func), args=[call.func],
                             keywords=[]),
                    call.func,
                )
        return ast.fix_missing_locations(node)


class SampleCalls:
    """Records the sample calls of one api cell while it runs in `shell` (an IPython shell)."""

    def __init__(self, shell: Any, cell: CapturedCell) -> None:
        self.shell = shell
        self.cell = cell
        self.function = api_function(cell)
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any], Any]] = []
        self._transformer = _WrapSampleCalls(self.function)

    def __enter__(self) -> SampleCalls:
        self.shell.user_ns[RECORDER] = self._wrap
        self.shell.ast_transformers.append(self._transformer)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._transformer in self.shell.ast_transformers:
            self.shell.ast_transformers.remove(self._transformer)
        self.shell.user_ns.pop(RECORDER, None)

    def _wrap(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(func):
            async def call_async(*args: Any, **kwargs: Any) -> Any:
                result = await func(*args, **kwargs)
                self.calls.append((args, kwargs, result))
                return result

            return call_async

        def call(*args: Any, **kwargs: Any) -> Any:
            result = func(*args, **kwargs)
            self.calls.append((args, kwargs, result))
            return result

        return call

    def save(self, folder: Path) -> list[str]:
        """Replace this cell's recorded samples with the calls just made; returns one note per
        call that could not be recorded (what it was and why)."""
        func = self.shell.user_ns.get(self.function)
        goldens: list[Golden] = []
        skipped: list[str] = []
        if callable(func):
            spec = ApiSpec(name=str(self.cell.name), func=func,
                           is_async=inspect.iscoroutinefunction(func),
                           batchable=bool(self.cell.options.get("batchable", False)))
            try:
                schema = ApiSchema(spec)
            except TypeError as exc:
                return [f"{self.cell.label}: sample calls not recorded ({exc})"]
            sha = module_sha256(folder)
            for args, kwargs, result in self.calls:
                try:
                    goldens.append(sample_golden(schema, args, kwargs, result,
                                                 cell_id=self.cell.cell_id, module_sha256=sha))
                except Unrecordable as exc:
                    skipped.append(f"{self.cell.label}: a sample call of {self.function} is not "
                                   f"recorded as a golden answer: {exc}")
        record_goldens(folder / GOLDEN_FILE, goldens, replace_samples_of=self.cell.cell_id)
        return skipped


def sample_golden(
    schema: ApiSchema, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any, *,
    cell_id: str | None = None, module_sha256: str | None = None,
) -> Golden:
    """The golden of one kernel call: the request body the server would decode into these
    arguments, and the answer as the server would encode `result`."""
    request = request_body(schema, args, kwargs)
    try:
        payload, media = ApiSchema.encode(result)
    except Exception as exc:  # the server would answer 500 for it as well
        raise Unrecordable(f"the answer cannot be encoded ({exc})") from None
    answer: Any
    if media == "application/json":
        answer = json.loads(payload)
    elif media.startswith("text/"):
        answer = payload.decode("utf-8")
    else:
        answer = {"sha256": hashlib.sha256(payload).hexdigest()}
    return Golden(
        api=schema.spec.name, request=request, answer=answer, media_type=media, source="sample",
        cell_id=cell_id, recorded_at=utc_now(), module_sha256=module_sha256,
    )


def request_body(schema: ApiSchema, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The JSON body that makes the server call the API with these arguments: the bare value
    or `{"param": value}` for one parameter (as the server reads it), an object otherwise."""
    try:
        bound = inspect.signature(schema.spec.func).bind(*args, **kwargs)
    except TypeError as exc:
        raise Unrecordable(f"the arguments do not fit the function ({exc})") from None
    values: dict[str, Any] = {}
    for param in schema.params:
        if param.name not in bound.arguments:
            continue  # the server applies the default too
        if param.kind in ("image", "file"):
            raise Unrecordable(f"parameter {param.name!r} takes a file, which has no JSON form")
        values[param.name] = _json_value(bound.arguments[param.name], param.name)
    single = schema.single
    if single is None:
        return values
    if single.name not in values:
        raise Unrecordable(f"the call leaves {single.name!r} to its default; pass it")
    if schema.wrapped_model is not None or single.kind == "ndarray":
        return {single.name: values[single.name]}
    return values[single.name]


def _json_value(value: Any, name: str) -> Any:
    if isinstance(value, str):
        return value
    try:
        payload, media = ApiSchema.encode(value)  # the server's own encoder: arrays -> lists
    except Exception as exc:
        raise Unrecordable(f"argument {name!r} has no JSON form ({exc})") from None
    if media != "application/json":
        raise Unrecordable(f"argument {name!r} ({type(value).__name__}) has no JSON form")
    return json.loads(payload)


def module_sha256(folder: Path) -> str | None:
    try:
        return hashlib.sha256((folder / SERVICE_MODULE).read_bytes()).hexdigest()
    except OSError:
        return None


def record_call(folder: Path, api: str, request: Any, answer: Any, *, cell_id: str | None) -> None:
    """Record what `%nbento call` got back (a 200 answer) as a golden answer."""
    golden = Golden(
        api=api, request=request, answer=answer, media_type=None, source="call",
        cell_id=cell_id, recorded_at=utc_now(), module_sha256=module_sha256(folder),
    )
    record_goldens(folder / GOLDEN_FILE, [golden])
