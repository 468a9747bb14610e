"""The error model's rules, on the classes themselves: every error class lives in
runtime/errors.py with one code and one status, old import paths still work, every class turns
into a valid `ErrorBody`, and a runner's error body turns back into the same class.
(Over real HTTP, against both servers: tests/runtime/serving/test_error_body.py.)"""

from __future__ import annotations

import ast
import importlib
import inspect
import logging
from pathlib import Path

import httpx
import pytest

from runtime import errors
from runtime.errors import (
    ERROR_CLASSES,
    HttpError,
    MethodNotAllowed,
    NbentoError,
    QueueFull,
    RemoteCallError,
    RequestError,
    ServiceImportError,
    SignatureError,
    UndeclaredMethod,
    ValidationFailed,
    status_for,
)
from runtime.serving.error_body import ErrorBody, error_response
from runtime.serving.remote import remote_error

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"
STATUSES = {400, 401, 403, 404, 405, 408, 413, 415, 422, 500, 503}
LOG = logging.getLogger("tests.errors")


def defined_here() -> list[type[NbentoError]]:
    return [
        cls for cls in vars(errors).values()
        if inspect.isclass(cls) and issubclass(cls, NbentoError) and cls.__module__ == errors.__name__
    ]


def sample(cls: type[NbentoError]) -> NbentoError:
    """An instance of `cls` as the code raising it would build one."""
    if cls is MethodNotAllowed:
        return cls("/x takes POST, not GET", "POST")
    if cls is HttpError:
        return cls(409, "already there")
    if cls is ServiceImportError:
        return cls("boom", "service.py", 3)
    return cls(f"a {cls.__name__} happened")


def test_every_error_class_is_registered_under_its_own_code() -> None:
    classes = defined_here()
    registered = [cls for cls in classes if cls is not NbentoError]
    assert sorted(ERROR_CLASSES.values(), key=lambda c: c.__name__) == sorted(
        registered, key=lambda c: c.__name__
    )
    codes = [cls.code for cls in registered]
    assert len(codes) == len(set(codes)), codes
    assert NbentoError.code == RemoteCallError.code == "internal_error"
    for cls in classes:
        assert cls is HttpError or sample(cls).http_status() in STATUSES, cls
        assert (cls.status == 500) != cls.public or cls is HttpError, cls  # 500s hide messages


def test_no_error_class_is_defined_outside_runtime_errors() -> None:
    names = {cls.__name__ for cls in defined_here()} | {"Exception", "ValueError", "RuntimeError"}
    elsewhere = []
    for path in RUNTIME.rglob("*.py"):
        if path == RUNTIME / "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases}
                # `_Private` exceptions are control flow inside one module, never raised out of it
                if (bases & names or node.name.endswith("Error")) and not node.name.startswith("_"):
                    elsewhere.append(f"{path.relative_to(RUNTIME)}: {node.name}")
    assert elsewhere == []


@pytest.mark.parametrize(("module", "name"), [
    ("runtime.serving.batching", "QueueFull"),
    ("runtime.serving.batching", "RunnerClosed"),
    ("runtime.serving.batching", "RequestTooLarge"),
    ("runtime.serving.rows", "BatchInputError"),
    ("runtime.serving.rows", "BatchOutputError"),
    ("runtime.serving.wire", "WireError"),
    ("runtime.serving.workers", "WorkerError"),
    ("runtime.serving.workers", "RemoteCallError"),
    ("runtime.serving.runners", "RunnerNotAvailable"),
    ("runtime.serving.remote", "RunnerUnreachable"),
    ("runtime.service.schema", "RequestError"),
    ("runtime.service.definition", "ServiceImportError"),
    ("runtime.export.containerize", "ContainerEngineUnavailable"),
    ("runtime.export.containerize", "ImageBuildFailed"),
])
def test_old_import_paths_give_the_same_class(module: str, name: str) -> None:
    assert getattr(importlib.import_module(module), name) is getattr(errors, name)


@pytest.mark.parametrize("cls", sorted(ERROR_CLASSES.values(), key=lambda c: c.__name__), ids=str)
def test_each_class_answers_with_a_valid_body_and_comes_back_from_a_runner(
    cls: type[NbentoError], caplog: pytest.LogCaptureFixture
) -> None:
    exc = sample(cls)
    answer = error_response(exc, where="runner 'r' method 'm'", log=LOG, internals=True)
    detail = ErrorBody.model_validate_json(answer.content).error
    assert answer.status == status_for(exc) and detail.type == cls.code
    assert detail.message == str(exc)  # a runner shows its messages to the API server
    assert (detail.id is None) == cls.public
    if detail.id:
        assert f"error {detail.id} in runner 'r' method 'm'" in caplog.text
    if cls.retry_after is not None or issubclass(cls, QueueFull):
        assert int(answer.headers["Retry-After"]) >= 1

    rebuilt = remote_error("r", httpx.Response(answer.status, headers=answer.headers, content=answer.content))
    if issubclass(cls, RequestError):  # the API server's request to the runner was refused
        assert type(rebuilt) is RemoteCallError and rebuilt.http_status() == 500
    elif cls is UndeclaredMethod:  # the runner's 404 is the API server's own bug: as in one process
        assert type(rebuilt) is SignatureError and status_for(rebuilt) == 500
    else:
        assert type(rebuilt) is cls and str(exc) in str(rebuilt)
        assert status_for(rebuilt) == status_for(exc)


def test_a_500_hides_its_message_unless_asked() -> None:
    answer = error_response(ValueError("db password is hunter2"), where="API 'x'", log=LOG)
    detail = ErrorBody.model_validate_json(answer.content).error
    assert answer.status == 500 and detail.type == "internal_error"
    assert "hunter2" not in answer.content.decode() and detail.id and detail.id in detail.message
    try:
        raise ValueError("hunter2")
    except ValueError as exc:
        shown = error_response(exc, where="API 'x'", log=LOG, internals=True, traceback=True)
    detail = ErrorBody.model_validate_json(shown.content).error
    assert detail.message == "ValueError: hunter2"
    assert 'raise ValueError("hunter2")' in (detail.traceback or "")


def test_a_422_lists_every_field_and_names_the_first() -> None:
    exc = ValidationFailed.listing([("order.qty", "not an integer"), (None, "body too short")])
    detail = ErrorBody.model_validate_json(error_response(exc, where="-", log=LOG).content).error
    assert (detail.field, detail.message) == ("order.qty", "order.qty: not an integer; body too short")
    assert [f.field for f in detail.fields] == ["order.qty", None]


def test_a_body_that_is_not_ours_becomes_a_remote_call_error() -> None:
    rebuilt = remote_error("r", httpx.Response(502, text="<html>bad gateway</html>"))
    assert isinstance(rebuilt, RemoteCallError) and "HTTP 502" in str(rebuilt) and "bad gateway" in str(rebuilt)
