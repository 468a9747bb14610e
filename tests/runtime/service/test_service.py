"""`@api`, `load_service`: what a service module turns into, and how import errors read."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from runtime.errors import ServiceLoadError
from runtime.service.definition import ApiSpec, ServiceImportError, api, as_source, load_service
from runtime.service.handles import ModelHandle
from runtime.service.sources import ServiceSource
from tests.runtime.serving_support import write_service

BASIC = """
from runtime import api, runner

classifier = runner("support_classifier:latest")
embedder = runner("minilm:20260101-000000-000000-00001", name="embed")
CALLS = []

@api
def classify(texts: list[str]) -> dict:
    return {"n": len(texts)}

@api(name="classify-async", batchable=True, max_batch_size=8, max_latency_ms=5)
async def classify_async(texts: list[str]) -> list[int]:
    return [len(t) for t in texts]

def helper(x):
    return x

api(helper, name="echo")
"""


def test_folder_service_collects_apis_and_handles(tmp_path: Path) -> None:
    write_service(tmp_path / "tickets", BASIC)
    service = load_service(tmp_path / "tickets")
    assert service.name == "tickets"  # folder name, since the file is service.py
    assert set(service.apis) == {"classify", "classify-async", "echo"}
    spec = service.apis["classify-async"]
    assert spec.is_async and spec.batchable
    assert (spec.max_batch_size, spec.max_latency_ms) == (8, 5)
    assert spec.route == "/classify-async"
    assert not service.apis["classify"].is_async
    assert set(service.runners) == {"support_classifier", "embed"}
    assert isinstance(service.runners["embed"], ModelHandle)
    assert service.runners["embed"].tag.startswith("minilm:")
    assert len(service.source_sha256) == 64
    assert service.apis["classify"].func(["a", "b"]) == {"n": 2}


def test_each_load_is_a_fresh_module(tmp_path: Path) -> None:
    path = write_service(tmp_path, BASIC, name="svc.py")
    first = load_service(path)
    first.module.CALLS.append(1)
    path.write_text(path.read_text().replace('{"n": len(texts)}', '{"n": -1}'))
    second = load_service(path)
    assert second.module is not first.module
    assert second.module.CALLS == []
    assert second.apis["classify"].func(["x"]) == {"n": -1}  # new code, same second, no .pyc
    assert first.apis["classify"].func(["x"]) == {"n": 1}
    assert second.source_sha256 != first.source_sha256
    assert second.name == "svc"


def test_service_name_global_and_dotted_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "mypkg"
    write_service(pkg, "", name="__init__.py")
    write_service(pkg, BASIC + '\nSERVICE_NAME = "support_tickets"\n', name="ticket_api.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    service = load_service("mypkg.ticket_api")
    assert service.name == "support_tickets"
    assert service.module.__name__ == "mypkg.ticket_api"
    source = as_source("mypkg.ticket_api")
    assert load_service(source).module is not service.module
    monkeypatch.delitem(sys.modules, "mypkg.ticket_api", raising=False)


def test_service_source_object_is_accepted(tmp_path: Path) -> None:
    path = write_service(tmp_path, BASIC, name="anything.py")
    service = load_service(ServiceSource(path=path, watch=[path]))
    assert service.source.path == path
    assert "classify" in service.apis


def test_import_error_points_at_user_line(tmp_path: Path) -> None:
    path = write_service(tmp_path, "from runtime import api\n\nx = 1\nraise RuntimeError('no db')\n")
    with pytest.raises(ServiceImportError) as info:
        load_service(path)
    err = info.value
    assert err.file == str(path)
    assert err.line == 4
    assert err.message == "RuntimeError: no db"
    assert f"{path}:4: RuntimeError: no db" == str(err)
    assert err.as_status() == {"message": "RuntimeError: no db", "file": str(path), "line": 4}


def test_error_in_imported_helper_points_at_helper(tmp_path: Path) -> None:
    write_service(tmp_path, "def boom():\n    return 1 / 0\n", name="helper_mod_xyz.py")
    path = write_service(tmp_path, "import helper_mod_xyz\nhelper_mod_xyz.boom()\n", name="svc.py")
    with pytest.raises(ServiceImportError) as info:
        load_service(path)
    # the deepest frame in the service file is the call site
    assert (info.value.file, info.value.line) == (str(path), 2)
    assert "ZeroDivisionError" in info.value.message
    sys.modules.pop("helper_mod_xyz", None)


def test_syntax_error_has_file_and_line(tmp_path: Path) -> None:
    path = write_service(tmp_path, "from runtime import api\n\ndef f(:\n    pass\n")
    with pytest.raises(ServiceImportError) as info:
        load_service(path)
    assert info.value.line == 3
    assert info.value.message.startswith("SyntaxError:")


def test_module_without_api_is_refused(tmp_path: Path) -> None:
    path = write_service(tmp_path, "x = 1\n")
    with pytest.raises(ServiceLoadError, match="defines no API"):
        load_service(path)


def test_two_models_under_one_runner_name_are_refused(tmp_path: Path) -> None:
    code = BASIC + '\nother = runner("other_model:latest", name="embed")\n'
    path = write_service(tmp_path, code)
    with pytest.raises(ServiceLoadError, match="runner name 'embed' is used for two models"):
        load_service(path)


def test_api_call_forms_return_the_function() -> None:
    def f(x: int) -> int:
        return x

    assert api(f) is f
    spec = f.__nbento_api__  # type: ignore[attr-defined]
    assert isinstance(spec, ApiSpec) and spec.name == "f" and not spec.batchable
    assert api(name="g")(f) is f
    with pytest.raises(ValueError, match="URL path"):
        api(f, name="a/b")
    with pytest.raises(ValueError, match="'metrics' is taken by the server"):
        api(f, name="metrics")
    with pytest.raises(ValueError, match="reserved"):
        api(f, name="_runner")
    with pytest.raises(ValueError, match="max_batch_size"):
        api(f, max_batch_size=0)


def test_only_runner_names_known_runners(tmp_path: Path) -> None:
    write_service(tmp_path / "svc", BASIC)
    service = load_service(tmp_path / "svc")
    assert set(service.only_runner("embed").runners) == {"embed"}
    with pytest.raises(ServiceLoadError, match=r"no runner 'nope'.*embed, support_classifier"):
        service.only_runner("nope")
