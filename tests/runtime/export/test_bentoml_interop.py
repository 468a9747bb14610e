"""The Bento as a BentoML/Yatai team gets it: real BentoML 1.4.39 tools (in their own venv,
see bentoml_peer.py) list, get, import, export and containerize it and `bentoml serve` answers
exactly as `nbento serve` does, batching included; nbento reads it back; the files carry no
path of the building machine; archives with path tricks are refused."""

from __future__ import annotations

import ast
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import yaml

from runtime.cli import main
from runtime.errors import NbentoError
from runtime.export.bento import build_bento
from runtime.export.bento_archive import export_bento, import_bento
from runtime.export.bento_store import BENTO_FILE, Bento, get_bento, list_bentos
from runtime.export.bentoml_service import render_bentoml_module
from runtime.export.requirements import strip_front_end
from runtime.service.definition import load_service
from runtime.store.info import ModelSignature
from runtime.store.model_store import ModelStore
from tests.runtime.bento_fixtures import (
    REPO,
    copy_example,
    save_minilm_models,
    save_support_classifier,
)
from tests.runtime.export.bentoml_peer import bentoml_serving, bentoml_tools, clean_env
from tests.runtime.serving_support import free_port, metric_value

REQUESTS = [
    {"texts": ["I was charged twice for my subscription"]},
    {"texts": ["the app crashes when I open settings", "where is my parcel?"]},
    {"texts": ["reset my password please", "refund the double charge", "tracking number?"]},
]

ECHO_SERVICE = '''\
import bentoml


@bentoml.service
class Echo:
    @bentoml.api
    def echo(self, text: str) -> str:
        return text
'''


@pytest.fixture
def support_bento(tmp_path: Path, nbento_home: Path) -> Bento:
    save_support_classifier()
    return build_bento(copy_example("support_tickets.ipynb", tmp_path / "nb"))


# ------------------------------------------------------------------ fast checks (no BentoML)


def _texts(root: Path) -> Iterator[tuple[str, str]]:
    """(where, text) for every file of the Bento, and for every member of zip files in it
    (the nbento wheel, skops models), decoded leniently."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        rel = path.relative_to(root).as_posix()
        yield rel, data.decode("utf-8", "replace")
        if zipfile.is_zipfile(io.BytesIO(data)):
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                for name in zf.namelist():
                    yield f"{rel}!{name}", zf.read(name).decode("utf-8", "replace")


def test_no_path_of_the_building_machine_in_the_bento(
    support_bento: Bento, tmp_path: Path, nbento_home: Path
) -> None:
    forbidden = {str(Path.home()), str(REPO), str(tmp_path), str(nbento_home), os.getcwd()}
    forbidden = {f for f in forbidden if len(f) > 1}
    hits = [
        (where, bad) for where, text in _texts(support_bento.path) for bad in forbidden
        if bad in text
    ]
    assert hits == []
    info = yaml.safe_load((support_bento.path / BENTO_FILE).read_text())
    assert info["source"]["origin"] == "support_tickets.ipynb"  # provenance stays, relative


def test_bento_yaml_carries_both_schemas_and_old_files_still_read(support_bento: Bento) -> None:
    raw = yaml.safe_load((support_bento.path / BENTO_FILE).read_text())
    assert raw["spec"] == 2
    assert raw["service"] == "support_tickets_bentoml:SupportTickets"
    assert raw["nbento_service"] == "support_tickets"
    assert [m["tag"] for m in raw["services"][0]["models"]] == [m["tag"] for m in raw["models"]]
    assert raw["image"]["build_include"] == ["support_tickets_bentoml.py"]
    module = (support_bento.path / "src" / "support_tickets_bentoml.py").read_text()
    assert f"bentoml.models.BentoModel({raw['models'][0]['tag']!r})" in module
    # the example's constrained parameter is read from the service module, constraints included
    assert "async def classify(self, texts: _nbento.hint('classify', 'texts')) -> dict:" in module
    assert "threads=" in module

    # A bento.yaml written before spec 2 (nbento's keys under their old names) still reads.
    old = support_bento.info.model_dump(mode="json", exclude={"bentoml"})
    (support_bento.path / BENTO_FILE).write_text(yaml.safe_dump(old))
    again = Bento.read(support_bento.path)
    assert again.info.service == "support_tickets" and again.info.bentoml is None
    assert [a.name for a in again.info.apis] == ["classify"]

    # A Bento BentoML built is not nbento's: said plainly.
    foreign = {"spec": 2, "name": "echo", "version": "abc", "service": "echo:Echo"}
    (support_bento.path / BENTO_FILE).write_text(yaml.safe_dump(foreign))
    with pytest.raises(NbentoError, match="a BentoML Bento, not one nbento built"):
        Bento.read(support_bento.path)


def test_model_yaml_has_both_schemas_and_reads_either_shape(support_bento: Bento) -> None:
    tag = support_bento.info.models[0].tag
    name, _, version = tag.partition(":")
    raw = yaml.safe_load((support_bento.path / "models" / name / version / "model.yaml").read_text())
    assert raw["api_version"] == "v1"
    assert raw["context"]["framework_name"] == "scikit-learn"
    assert raw["signatures"]["predict"]["batch_dim"] == [0, 0]
    # nbento reads the Bento's models/ as its own store
    assert str(ModelStore(support_bento.path / "models").get(tag).tag) == tag
    assert ModelSignature.model_validate({"batchable": True, "batch_dim": 1}).batch_dim == 1
    assert ModelSignature.model_validate({"batchable": True, "batch_dim": [1, 1]}).batch_dim == 1
    with pytest.raises(ValueError, match="same dimension"):
        ModelSignature.model_validate({"batchable": True, "batch_dim": [1, 0]})


def test_archive_round_trip_and_cli(
    support_bento: Bento, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = tmp_path / "support.bento"
    assert main(["bentos", "export", str(support_bento.tag), str(archive)]) == 0
    with tarfile.open(archive, "r:xz") as tar:
        names = tar.getnames()
        assert all(n == "." or n.startswith("./") for n in names)
        assert "./bento.yaml" in names and "./src/support_tickets_bentoml.py" in names
        model = support_bento.info.models[0].tag.replace(":", "/")
        assert f"./models/{model}/model.yaml" in names
        assert {m.uid for m in tar.getmembers()} == {0}
    with pytest.raises(NbentoError, match="exists"):
        export_bento(str(support_bento.tag), archive)
    with pytest.raises(NbentoError, match="already in"):
        import_bento(archive)
    assert main(["bentos", "delete", str(support_bento.tag)]) == 0
    assert main(["bentos", "import", str(archive)]) == 0
    assert "imported Bento support_tickets:" in capsys.readouterr().out
    back = get_bento(str(support_bento.tag))
    assert back.info == support_bento.info


def _tar(path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:xz") as tar:
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("../evil.txt", "points outside the Bento"),
        ("/etc/evil.txt", "points outside the Bento"),
        ("./src/../../evil.txt", "points outside the Bento"),
        ("symlink", "link or device"),
    ],
)
def test_archive_with_path_tricks_is_refused(
    support_bento: Bento, tmp_path: Path, entry: str, message: str
) -> None:
    good = (support_bento.path / BENTO_FILE).read_bytes()
    if entry == "symlink":
        link = tarfile.TarInfo("./src/link")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        bad: tuple[tarfile.TarInfo, bytes | None] = (link, None)
    else:
        bad = _file(entry, b"x")
    archive = _tar(tmp_path / "bad.bento", [_file("./bento.yaml", good), bad])
    main(["bentos", "delete", str(support_bento.tag)])
    with pytest.raises(NbentoError, match=message):
        import_bento(archive)
    assert not (tmp_path / "evil.txt").exists()
    assert list((support_bento.path.parent).iterdir()) == []  # nothing half-imported


def test_archive_with_a_damaged_model_is_refused(support_bento: Bento, tmp_path: Path) -> None:
    archive = export_bento(str(support_bento.tag), tmp_path / "ok.bento")
    with tarfile.open(archive, "r:xz") as tar:
        entries = [
            (m, tar.extractfile(m).read() if m.isfile() else None)  # type: ignore[union-attr]
            for m in tar.getmembers()
        ]
    damaged = []
    for info, data in entries:
        if info.name.endswith("model.skops"):
            data = b"not the model"
            info.size = len(data)
        damaged.append((info, data))
    main(["bentos", "delete", str(support_bento.tag)])
    with pytest.raises(NbentoError, match="does not match the checksum"):
        import_bento(_tar(tmp_path / "damaged.bento", damaged))


# ------------------------------------------------------------------- real BentoML 1.4.39


def _run(bin_dir: Path, *args: str, home: Path, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [str(bin_dir / args[0]), *args[1:]], cwd=cwd, env=clean_env(BENTOML_HOME=str(home)),
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


_CONTAINERFILE = """\
import json, sys
from pathlib import Path
import bentoml
from bentoml._internal.container import construct_containerfile
with construct_containerfile(bentoml.get(sys.argv[1]), enable_buildkit=False) as (ctx, file):
    files = sorted(p.relative_to(ctx).as_posix() for p in Path(ctx).rglob("*") if p.is_file())
    print(json.dumps({"files": files, "dockerfile": Path(file).read_text()}))
"""


@pytest.mark.slow
def test_bentoml_tools_accept_the_bento(support_bento: Bento, tmp_path: Path) -> None:
    tools = bentoml_tools()
    home = tmp_path / "bentoml-home"
    echo = tmp_path / "echo"
    echo.mkdir()
    (echo / "echo_service.py").write_text(ECHO_SERVICE)
    (echo / "bentofile.yaml").write_text('service: "echo_service:Echo"\ninclude: ["echo_service.py"]\n')
    _run(tools, "bentoml", "build", ".", home=home, cwd=echo)

    archive = export_bento(str(support_bento.tag), tmp_path / "support.bento")
    _run(tools, "bentoml", "import", str(archive.resolve()), home=home)
    listed = {b["tag"].split(":")[0] for b in json.loads(_run(tools, "bentoml", "list", "-o", "json", home=home))}
    assert listed == {"echo", "support_tickets"}  # one store, both Bentos still list
    got = json.loads(_run(tools, "bentoml", "get", str(support_bento.tag), "-o", "json", home=home))
    assert got["service"] == "support_tickets_bentoml:SupportTickets"
    assert [m["tag"] for m in got["models"]] == [m.tag for m in support_bento.info.models]
    models = json.loads(_run(tools, "bentoml", "models", "list", "-o", "json", home=home))
    assert [m["tag"] for m in models] == [m.tag for m in support_bento.info.models]

    out = _run(tools, "python", "-c", _CONTAINERFILE, str(support_bento.tag), home=home)
    context = json.loads(out.strip().splitlines()[-1])
    model_dir = support_bento.info.models[0].tag.replace(":", "/")
    assert f"models/{model_dir}/model.yaml" in context["files"]
    assert "env/docker/entrypoint.sh" in context["files"]
    dockerfile = context["dockerfile"]
    assert "COPY --chown=bentoml:bentoml ./src/support_tickets_bentoml.py" in dockerfile
    assert "pip install -r $BENTO_PATH/env/python/requirements.txt" in dockerfile
    assert "bentoml==1.4.39" in dockerfile

    # BentoML's export of the imported Bento comes back into nbento unchanged.
    back = tmp_path / "back.bento"
    _run(tools, "bentoml", "export", str(support_bento.tag), str(back), home=home)
    main(["bentos", "delete", str(support_bento.tag)])
    assert import_bento(back).info == support_bento.info


def _start(argv: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> subprocess.Popen[bytes]:
    with log.open("wb") as fh:
        return subprocess.Popen(argv, env=env, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server exited:\n{log.read_text()[-4000:]}"
        try:
            if httpx.post(f"http://127.0.0.1:{port}/classify", json=REQUESTS[0], timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"port {port} not answering in {timeout}s:\n{log.read_text()[-4000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@pytest.mark.slow
def test_bentoml_serve_answers_like_nbento_serve(support_bento: Bento, tmp_path: Path) -> None:
    tools = bentoml_tools()
    serving = bentoml_serving(support_bento.path)
    home = tmp_path / "bentoml-home"
    _run(tools, "bentoml", "import", str(export_bento(str(support_bento.tag), tmp_path / "s.bento")), home=home)

    bml_port, nb_port = free_port(), free_port()
    bml = _start(
        [str(serving / "bentoml"), "serve", str(support_bento.tag), "--host", "127.0.0.1",
         "--port", str(bml_port)],
        clean_env(BENTOML_HOME=str(home)), tmp_path / "bentoml.log",
    )
    nb = _start(
        [sys.executable, "-m", "runtime", "serve", str(support_bento.path / support_bento.info.entry_point),
         "--port", str(nb_port)],
        {**os.environ, "NBENTO_HOME": str(support_bento.path),
         "NBENTO_CONFIG": str(support_bento.path / "config.yaml")},
        tmp_path / "nbento.log",
    )
    try:
        _wait_ready(nb_port, nb, tmp_path / "nbento.log")
        _wait_ready(bml_port, bml, tmp_path / "bentoml.log")
        for body in REQUESTS:
            a = httpx.post(f"http://127.0.0.1:{bml_port}/classify", json=body, timeout=30)
            b = httpx.post(f"http://127.0.0.1:{nb_port}/classify", json=body, timeout=30)
            assert (a.status_code, a.content) == (b.status_code, b.content) == (200, b.content)
            assert a.headers["content-type"] == b.headers["content-type"]

        # Concurrent requests under bentoml serve are batched by nbento's batcher.
        def batches() -> tuple[float, float]:
            text = httpx.get(f"http://127.0.0.1:{bml_port}/metrics", timeout=10).text
            labels = {"runner": "support_classifier", "method": "predict_proba"}
            return (metric_value(text, "nbento_runner_batch_size_count", labels),
                    metric_value(text, "nbento_runner_batch_size_sum", labels))

        count0, rows0 = batches()
        body = {"texts": ["my card was charged twice"]}
        with ThreadPoolExecutor(max_workers=48) as pool:
            answers = list(pool.map(
                lambda _: httpx.post(f"http://127.0.0.1:{bml_port}/classify", json=body, timeout=60),
                range(96),
            ))
        assert {r.status_code for r in answers} == {200}
        count, rows = batches()
        assert rows - rows0 == 96  # every row went through nbento's runner
        assert count - count0 < 96  # ... in fewer batches than requests
    finally:
        _stop(bml)
        _stop(nb)


def test_the_serving_wheel_carries_no_front_end(tmp_path: Path) -> None:
    wheel = tmp_path / "nbento-0.1.0-py3-none-any.whl"
    kept = ["runtime/__init__.py", "nbento-0.1.0.dist-info/METADATA"]
    front = [
        "nbento-0.1.0.data/data/share/jupyter/labextensions/nbento/package.json",
        "nbento-0.1.0.data/data/etc/jupyter/jupyter_server_config.d/nbento.json",
    ]
    record = "".join(f"{name},sha256=x,1\n" for name in [*kept, *front])
    with zipfile.ZipFile(wheel, "w") as zf:
        for name in [*kept, *front]:
            zf.writestr(name, "{}")
        zf.writestr("nbento-0.1.0.dist-info/RECORD", record)
    assert sorted(strip_front_end(wheel)) == sorted(front)
    with zipfile.ZipFile(wheel) as zf:
        assert sorted(zf.namelist()) == sorted([*kept, "nbento-0.1.0.dist-info/RECORD"])
        assert zf.read("nbento-0.1.0.dist-info/RECORD").decode().splitlines() == [
            f"{name},sha256=x,1" for name in kept
        ]
    assert strip_front_end(wheel) == []  # nothing left to take out


@pytest.mark.slow
def test_yatai_pod_command_serves_the_bento_folder_with_its_config(
    support_bento: Bento, tmp_path: Path
) -> None:
    """What Yatai runs in the pod, on the Bento folder itself (its own models/), outside a
    container: `sh -c "./env/docker/entrypoint.sh bentoml serve . --production"` with PORT set.
    The Bento's config.yaml applies (max_batch_size 8 instead of the built 32)."""
    serving = bentoml_serving(support_bento.path)
    config_file = support_bento.path / "config.yaml"
    config = yaml.safe_load(config_file.read_text()) or {}  # what the build's file wrote
    config.setdefault("runners", {})["support_classifier"] = {
        "batching": {"max_batch_size": 8, "max_latency_ms": 50.0}
    }
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    env = clean_env(PORT=str(port), BENTOML_HOME=str(tmp_path / "bentoml-home"),
                    PATH=f"{serving}:{os.environ['PATH']}")
    env.pop("NBENTO_HOME", None)
    env.pop("NBENTO_CONFIG", None)
    log = tmp_path / "yatai.log"
    pod = _start(["sh", "-c", "./env/docker/entrypoint.sh bentoml serve . --production"], env, log,
                 cwd=support_bento.path)
    try:
        _wait_ready(port, pod, log)
        assert httpx.get(f"http://127.0.0.1:{port}/livez", timeout=5).status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
        body = {"texts": ["a double charge", "the app crashes", "where is my parcel"]}
        with ThreadPoolExecutor(max_workers=48) as pool:
            answers = list(pool.map(
                lambda _: httpx.post(f"http://127.0.0.1:{port}/classify", json=body, timeout=60),
                range(96),
            ))
        assert {r.status_code for r in answers} == {200}
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        labels = {"runner": "support_classifier", "method": "predict_proba"}
        batches = metric_value(text, "nbento_runner_batch_size_count", labels)
        assert metric_value(text, "nbento_runner_batch_size_sum", labels) >= 96 * 3
        assert metric_value(text, "nbento_runner_batch_size_bucket", {**labels, "le": "8.0"}) == batches
        assert batches < 96 * 3  # batched, and never past 8 rows
    finally:
        _stop(pod)


def test_entrypoint_runs_nbento_with_options_and_any_other_command(
    support_bento: Bento, tmp_path: Path
) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "nbento").write_text('#!/bin/sh\necho "nbento $*|$NBENTO_HOME|$NBENTO_CONFIG"\n')
    (fake / "nbento").chmod(0o755)
    script = support_bento.path / "env/docker/entrypoint.sh"
    root = support_bento.path

    def run(*args: str, **env: str) -> str:
        full = {"PATH": f"{fake}:/usr/bin:/bin", **env}
        return subprocess.run([str(script), *args], env=full, capture_output=True, text=True,
                              check=True, timeout=30).stdout.strip()

    served = f"nbento serve {root}/src --host 0.0.0.0 --port"
    assert run() == f"{served} 3000|{root}|{root}/config.yaml"
    assert run("--port", "8080", PORT="3001") == f"{served} 3001 --port 8080|{root}|{root}/config.yaml"
    assert run("sh", "-c", 'echo "$BENTOML_PORT"', PORT="3002") == "3002"


TYPED_SERVICE = '''\
from typing import Literal, Optional

import numpy as np
from pydantic import BaseModel

from runtime import api

SERVICE_NAME = "typed-svc"


class Ticket(BaseModel):
    text: str


@api
def triage(tickets: list[Ticket], top: Optional[int] = None, mode: Literal["fast", "full"] = "fast",
           weights: np.ndarray | None = None) -> dict[str, list[float]]:
    """Rank "tickets" \\\\ by priority."""
    return {"scores": [0.0 for _ in tickets][:top]}
'''


def test_generated_bentoml_api_keeps_the_signature(tmp_path: Path) -> None:
    (tmp_path / "typed_svc.py").write_text(TYPED_SERVICE)
    service = load_service(tmp_path / "typed_svc.py")
    source = render_bentoml_module(service, "typed_svc.py", {"clf": "clf:v1"}, api_threads=6)
    tree = ast.parse(source)
    (cls,) = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    assert cls.name == "TypedSvc"
    (method,) = [n for n in cls.body if isinstance(n, ast.AsyncFunctionDef) and n.name == "triage"]
    assert ast.unparse(method.args) == (
        "self, tickets: list[_svc.Ticket], top: int | None=None, "
        "mode: typing.Literal['fast', 'full']='fast', weights: numpy.ndarray | None=None"
    )
    assert ast.unparse(method.returns) == "dict[str, list[float]]"  # type: ignore[arg-type]
    assert ast.get_docstring(method) == 'Rank "tickets" \\ by priority.'
    assert "threads=6" in source
    assert "model_clf = bentoml.models.BentoModel('clf:v1')" in source
    assert "import numpy\nimport typing\n" in source


def test_a_foreign_bento_in_the_store_does_not_hide_the_others(
    support_bento: Bento, nbento_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    foreign = nbento_home / "bentos" / "echo" / "abc123"
    foreign.mkdir(parents=True)
    (foreign / BENTO_FILE).write_text(
        yaml.safe_dump({"spec": 2, "name": "echo", "version": "abc123", "service": "echo:Echo"})
    )
    assert [str(b.tag) for b in list_bentos()] == [str(support_bento.tag)]
    assert "skipping echo/abc123: " in caplog.text and "not one nbento built" in caplog.text


@pytest.mark.slow
@pytest.mark.minilm
def test_bentoml_tools_accept_the_minilm_bento(tmp_path: Path, nbento_home: Path) -> None:
    """The MiniLM example (a sentence-transformers model folder plus a scikit-learn head):
    BentoML imports, lists and describes it, and its containerize context carries both models.
    (Not served here: its pinned CPU torch comes from an index this machine cannot reach.)"""
    save_minilm_models()
    bento = build_bento(copy_example("support_tickets_minilm.ipynb", tmp_path / "nb"))
    tools = bentoml_tools()
    home = tmp_path / "bentoml-home"
    _run(tools, "bentoml", "import", str(export_bento(str(bento.tag), tmp_path / "m.bento").resolve()),
         home=home)
    tags = sorted(m.tag for m in bento.info.models)
    listed = json.loads(_run(tools, "bentoml", "list", "-o", "json", home=home))
    assert [b["tag"] for b in listed] == [str(bento.tag)]
    got = json.loads(_run(tools, "bentoml", "get", str(bento.tag), "-o", "json", home=home))
    assert sorted(m["tag"] for m in got["models"]) == tags
    models = json.loads(_run(tools, "bentoml", "models", "list", "-o", "json", home=home))
    assert sorted(m["tag"] for m in models) == tags
    out = _run(tools, "python", "-c", _CONTAINERFILE, str(bento.tag), home=home)
    files = json.loads(out.strip().splitlines()[-1])["files"]
    for tag in tags:
        assert f"models/{tag.replace(':', '/')}/model.yaml" in files
