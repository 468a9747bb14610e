"""`build_bento` and the bento store: the folder a platform team gets, what it pins, what it
refuses to ship, and the `nbento build` / `nbento bentos` commands."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
import yaml

from runtime.cli import main
from runtime.errors import BuildError, NbentoError
from runtime.export.bento import build_bento
from runtime.export.bento_store import BENTO_FILE, Bento, get_bento, list_bentos
from runtime.store.model_store import ModelStore
from tests.conftest import require_module
from tests.runtime.bento_fixtures import (
    copy_example,
    save_minilm_models,
    save_support_classifier,
    save_toy_model,
    write_toy_service,
)

PIN = re.compile(r"^[a-z0-9][a-z0-9._-]*==[0-9][^\s]*(  # .*)?$")


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    save_toy_model()
    return write_toy_service(tmp_path / "svc")


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_build_writes_the_bento_tree(toy: Path, nbento_home: Path) -> None:
    model = runtime_get("toy_clf")
    bento = build_bento(toy, labels={"team": "support"})
    assert bento.path.parent == nbento_home / "bentos" / "toy"
    files = _files(bento.path)
    version = model.tag.version
    expected = {
        "bento.yaml",
        "README.md",
        "config.yaml",
        "apis/openapi.yaml",
        "env/docker/Dockerfile",
        "env/python/requirements.txt",
        "src/service.py",
        "src/helpers.py",  # imported by service.py
        "src/toy_bentoml.py",  # the same APIs as a BentoML service
        "env/docker/entrypoint.sh",
        f"models/toy_clf/{version}/model.yaml",
        f"models/toy_clf/{version}/model.skops",
    }
    assert expected <= files
    wheels = [f for f in files if f.startswith("env/python/wheels/")]
    assert len(wheels) == 1 and wheels[0].endswith("-py3-none-any.whl")
    # Only what the service needs: scratch files and data stay behind unless included.
    assert files - expected - set(wheels) == set()

    info = yaml.safe_load((bento.path / BENTO_FILE).read_text())
    assert info["nbento_service"] == "toy"
    assert info["spec"] == 2 and info["service"] == "toy_bentoml:Toy"
    assert info["entry_point"] == "src"
    assert info["labels"] == {"team": "support"}
    assert info["nbento_version"] == metadata.version("nbento")
    assert info["python_version"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert info["nbento_apis"][0]["name"] == "classify"
    assert info["nbento_apis"][0]["input_schema"] == {
        "type": "object",
        "properties": {"texts": {"items": {"type": "string"}, "type": "array"}},
        "required": ["texts"],
        "additionalProperties": False,
    }
    runner = info["nbento_runners"][0]
    assert runner["model_tag"] == str(model.tag)
    assert runner["methods"]["predict"]["batchable"] is True
    assert runner["methods"]["predict"]["batching"]["max_batch_size"] == 32
    assert info["models"][0]["tag"] == str(model.tag)
    openapi = yaml.safe_load((bento.path / "apis/openapi.yaml").read_text())
    assert "/classify" in openapi["paths"] and "/readyz" in openapi["paths"]


def runtime_get(tag: str):  # type: ignore[no-untyped-def]
    from runtime.store.model_store import get

    return get(tag)


def test_latest_is_resolved_and_never_ships(toy: Path) -> None:
    save_toy_model()  # a second version: latest must mean this newest one
    newest = runtime_get("toy_clf:latest")
    bento = build_bento(toy)
    for rel in ("bento.yaml", "config.yaml", "README.md", "env/docker/Dockerfile"):
        assert ":latest" not in (bento.path / rel).read_text(), rel
    for model_yaml in (bento.path / "models").rglob("model.yaml"):
        assert ":latest" not in model_yaml.read_text()
    info = yaml.safe_load((bento.path / BENTO_FILE).read_text())
    tags = [info["nbento_runners"][0]["model_tag"], *(m["tag"] for m in info["models"])]
    assert tags == [str(newest.tag)] * 2
    # Exactly the pinned version is in the Bento's store, so `latest` in the code can only
    # mean that version when the Bento is NBENTO_HOME.
    store = ModelStore(bento.path / "models")
    assert [str(m.tag) for m in store.list_models()] == [str(newest.tag)]
    clf = store.load(str(newest.tag))
    assert list(clf.predict([[12.0, 6.0], [1.0, 0.0]])) == [1, 0]


def test_models_keep_their_checksums(toy: Path) -> None:
    bento = build_bento(toy)
    model_dir = next((bento.path / "models" / "toy_clf").iterdir())
    info = yaml.safe_load((model_dir / "model.yaml").read_text())
    import hashlib

    for rel, digest in info["files"].items():
        assert hashlib.sha256((model_dir / rel).read_bytes()).hexdigest() == digest


def test_requirements_are_pinned_to_this_environment(toy: Path) -> None:
    bento = build_bento(toy)
    text = (bento.path / "env/python/requirements.txt").read_text()
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith(("#", "--"))]
    pins = {}
    for line in lines:
        if line.startswith("../env/python/wheels/"):
            continue
        assert PIN.match(line), line
        name, _, rest = line.partition("==")
        pins[name] = rest.split()[0]
    # imported by the code, the model's framework and its file format; nothing else, so the
    # file co-installs with bentoml (nbento's own dependencies come from its wheel's metadata)
    for dist in ("numpy", "scikit-learn", "skops"):
        assert pins[dist] == metadata.version(dist), dist
    assert set(pins) == {"numpy", "scikit-learn", "skops"}
    assert "nbento" not in pins  # shipped as a wheel instead
    wheel_lines = [ln for ln in lines if ln.startswith("../env/python/wheels/")]
    assert len(wheel_lines) == 1
    wheel = bento.path / "src" / wheel_lines[0]
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    assert "runtime/__init__.py" in names and "runtime/export/bento.py" in names


def test_dockerfile_orders_layers_and_passes_hadolint(toy: Path) -> None:
    bento = build_bento(
        toy, base_image="localhost/base:1", python_version="3.11", system_packages=["libgomp1"]
    )
    dockerfile = (bento.path / "env/docker/Dockerfile").read_text()
    assert "ARG BASE_IMAGE=localhost/base:1" in dockerfile
    steps = ("apt-get install", "requirements.txt", "COPY models/", "COPY src/")
    order = [dockerfile.index(s) for s in steps]
    assert order == sorted(order)
    assert "USER 1000:1000" in dockerfile and "EXPOSE 3000" in dockerfile
    assert "/readyz" in dockerfile.split("HEALTHCHECK", 1)[1]
    assert 'ENTRYPOINT ["/home/bento/env/docker/entrypoint.sh"]' in dockerfile
    assert "NBENTO_CONFIG=/home/bento/config.yaml" in dockerfile
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "hadolint"), "--format", "json", "-"],
        input=dockerfile,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout
    assert json.loads(proc.stdout or "[]") == []


def test_include_exclude_and_bentoignore(toy: Path) -> None:
    (toy / "data" / "big.parquet").write_bytes(b"x" * 10)
    (toy / ".bentoignore").write_text("# no parquet\n*.parquet\n")
    bento = build_bento(toy, include=["data/*", "notes.txt"], exclude=["notes.txt"])
    files = {f for f in _files(bento.path) if f.startswith("src/")}
    assert files == {
        "src/service.py", "src/helpers.py", "src/data/labels.csv", "src/toy_bentoml.py"
    }
    with pytest.raises(BuildError, match="matched no file"):
        build_bento(toy, include=["dat/*.csv"])


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        ('OPENAI_KEY = "sk-proj-abcdefghijklmnopqrstuvwxyz012345"', "sk-"),
        ('aws = "AKIAIOSFODNN7EXAMPLE"', "AWS access key"),
        ('TOKEN = "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB"', "GitHub token"),
        ('db_password = "hunter2hunter2"', "hard-coded credential"),
        ('KEY = """-----BEGIN RSA PRIVATE KEY-----"""', "private key"),
    ],
)
def test_secrets_in_code_fail_with_file_and_line(toy: Path, line: str, kind: str) -> None:
    code = (toy / "service.py").read_text().splitlines()
    code.insert(5, line)
    (toy / "service.py").write_text("\n".join(code) + "\n")
    with pytest.raises(BuildError) as err:
        build_bento(toy)
    assert "service.py:6" in str(err.value) and kind in str(err.value)
    assert not list_bentos()  # nothing half-built is left


def test_reading_secrets_from_the_environment_is_fine(toy: Path) -> None:
    code = (toy / "service.py").read_text()
    (toy / "service.py").write_text(
        code.replace(
            "SERVICE_NAME",
            'import os\nPASSWORD = os.environ.get("DB_PASSWORD", "")\nSERVICE_NAME',
            1,
        )
    )
    build_bento(toy)


def test_key_files_never_ship(toy: Path) -> None:
    (toy / ".env").write_text("X=1\n")
    (toy / "deploy.pem").write_text("not really a key\n")
    build_bento(toy)  # not included: fine
    with pytest.raises(BuildError, match=r"\.env: credential file"):
        build_bento(toy, include=[".env"])
    with pytest.raises(BuildError, match=r"deploy\.pem: credential file"):
        build_bento(toy, include=["*"])
    (toy / ".bentoignore").write_text(".env\n*.pem\n")
    bento = build_bento(toy, include=["*"])
    assert not (bento.path / "src/.env").exists() and not (bento.path / "src/deploy.pem").exists()


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    svc = write_toy_service(tmp_path / "svc")
    with pytest.raises(NbentoError, match="no model 'toy_clf'"):
        build_bento(svc)


def test_service_named_after_its_folder_keeps_its_name(tmp_path: Path) -> None:
    save_toy_model()
    svc = write_toy_service(
        tmp_path / "ticket_router",
        (Path(__file__).parents[1] / "bento_fixtures.py")
        .read_text()
        .split("TOY_SERVICE = '''\\\n", 1)[1]
        .split("'''", 1)[0]
        .replace('SERVICE_NAME = "toy"\n', ""),
    )
    bento = build_bento(svc)
    assert bento.info.service == bento.name == "ticket_router"
    assert bento.info.entry_point == "src/ticket_router.py"
    from runtime.service.definition import load_service

    assert load_service(bento.path / bento.info.entry_point).name == "ticket_router"


def test_output_copy_and_bento_store_commands(
    toy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "handoff"
    assert main(["build", str(toy), "--output", str(out), "--label", "team=ml"]) == 0
    printed = capsys.readouterr().out
    assert "built Bento toy:" in printed and "size:" in printed
    assert "├── models/" in printed or "├── env/" in printed
    assert (out / BENTO_FILE).is_file() and Bento.read(out).info.labels == {"team": "ml"}
    assert get_bento(str(out)).version == Bento.read(out).version

    assert main(["build", str(toy)]) == 0
    capsys.readouterr()
    assert main(["bentos", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 2 and all(item["tag"].startswith("toy:") for item in listed)
    assert main(["bentos", "get", "toy", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["tag"] == listed[-1]["tag"]  # NAME alone means the newest
    assert main(["bentos", "delete", listed[0]["tag"]]) == 0
    capsys.readouterr()
    assert [str(b.tag) for b in list_bentos()] == [listed[1]["tag"]]
    assert main(["bentos", "get", "nope"]) == 1
    assert "no Bento 'nope'" in capsys.readouterr().err
    assert main(["build", str(toy), "--output", str(out)]) == 1  # not empty
    assert "not empty" in capsys.readouterr().err


# ------------------------------------------------------------------ example notebooks


def test_build_from_the_support_tickets_notebook(tmp_path: Path) -> None:
    require_module("jupyter_ext.capture.notebook")
    model = save_support_classifier()
    notebook = copy_example("support_tickets.ipynb", tmp_path / "nb")
    bento = build_bento(notebook)
    assert bento.info.service == "support_tickets"
    assert [a.name for a in bento.info.apis] == ["classify"]
    assert [m.tag for m in bento.info.models] == [str(model.tag)]
    runner = bento.info.runners[0]
    assert runner.name == "support_classifier"
    assert {m for m, s in runner.methods.items() if s.batchable} == {"predict", "predict_proba"}
    src = {f for f in _files(bento.path) if f.startswith("src/")}
    assert src == {"src/service.py", "src/service.yaml", "src/support_tickets_bentoml.py"}
    assert ":latest" not in (bento.path / BENTO_FILE).read_text()
    reqs = (bento.path / "env/python/requirements.txt").read_text()
    assert f"scikit-learn=={metadata.version('scikit-learn')}" in reqs
    assert f"numpy=={metadata.version('numpy')}" in reqs


def test_secret_in_a_captured_cell_fails_the_build(tmp_path: Path) -> None:
    require_module("jupyter_ext.capture.notebook")
    import nbformat

    notebook = copy_example("support_tickets.ipynb", tmp_path / "nb")
    nb = nbformat.read(notebook, as_version=4)
    for number, cell in enumerate(nb.cells, 1):  # noqa: B007 - used after the loop
        if cell.cell_type == "code" and cell.source.startswith("%%nbento preprocess"):
            cell.source += '\nHF_TOKEN = "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH"\n'
            break
    else:
        pytest.fail("the example has no preprocess cell")
    nbformat.write(nb, notebook)
    line = cell.source.splitlines().index('HF_TOKEN = "hf_abcdefghijklmnopqrstuvwxyzABCDEFGH"') + 1
    with pytest.raises(BuildError) as err:
        build_bento(notebook)
    message = str(err.value)
    # Where the user edits it (notebook cell number, line in the cell), never the secret.
    expected = (
        f"refusing to build: secrets would ship in the Bento: notebook cell {number} "
        f"(preprocess) line {line}: Hugging Face token (generated service.py:"
    )
    assert message.startswith(expected), message
    assert "hf_abc" not in message
    module_line = int(message[len(expected):].split(")", 1)[0])
    generated = (notebook.parent / ".nbento" / "support_tickets" / "service.py").read_text()
    assert "hf_abcdefghij" in generated.splitlines()[module_line - 1]


@pytest.mark.minilm
def test_build_from_the_minilm_notebook(tmp_path: Path) -> None:
    """The MiniLM example: a sentence-transformers embedder plus a scikit-learn head."""
    require_module("jupyter_ext.capture.notebook")
    embedder, head = save_minilm_models()
    bento = build_bento(copy_example("support_tickets_minilm.ipynb", tmp_path / "nb"))
    assert {m.tag for m in bento.info.models} == {str(embedder.tag), str(head.tag)}
    assert {r.name for r in bento.info.runners} == {"support_embedder", "support_minilm_classifier"}
    reqs = (bento.path / "env/python/requirements.txt").read_text()
    for dist in ("sentence-transformers", "torch", "scikit-learn"):
        assert f"{dist}=={metadata.version(dist)}" in reqs, dist
    if "+cpu" in metadata.version("torch"):
        assert "--extra-index-url https://download.pytorch.org/whl/cpu" in reqs
    store = ModelStore(bento.path / "models")
    assert store.get(str(embedder.tag)).info.files == embedder.info.files


def test_pickled_models_bring_the_packages_they_refer_to(tmp_path: Path) -> None:
    """A cloudpickled estimator needs scikit-learn in the image though no shipped code imports
    it; the pickle's references are read with pickletools, never unpickled."""
    from sklearn.linear_model import LogisticRegression

    import runtime

    clf = LogisticRegression().fit([[1.0, 0.0], [12.0, 6.0]], [0, 1])
    runtime.save_model("toy_clf", clf, serializer="cloudpickle", signatures=["predict"])
    svc = write_toy_service(tmp_path / "svc")
    (svc / "helpers.py").write_text(
        "def features(texts):\n    return [[float(len(t)), 0.0] for t in texts]\n"
    )
    bento = build_bento(svc)
    reqs = (bento.path / "env/python/requirements.txt").read_text()
    assert f"scikit-learn=={metadata.version('scikit-learn')}" in reqs
    assert "skops" not in reqs


def test_guarded_import_of_a_missing_package_is_recorded_not_fatal(toy: Path) -> None:
    code = (toy / "service.py").read_text()
    guarded = "try:\n    import nbento_no_such_module\nexcept ImportError:\n    pass\n"
    (toy / "service.py").write_text(guarded + code)
    bento = build_bento(toy)
    assert bento.info.environment.unresolved_imports == ["nbento_no_such_module (service.py:2)"]
    reqs = (bento.path / "env/python/requirements.txt").read_text()
    assert "not pinned: nbento_no_such_module (service.py:2)" in reqs
