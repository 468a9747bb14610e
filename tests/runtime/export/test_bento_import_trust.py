"""`nbento bentos import` of a Bento from another machine: its pickled models are not trusted
until someone says so (`--trust`, or `nbento models trust`), and sparse archive members are
refused."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

import runtime
from runtime.cli import main
from runtime.errors import NbentoError, UntrustedModel
from runtime.export.bento import build_bento
from runtime.export.bento_archive import import_bento
from runtime.store.model_store import ModelStore
from tests.runtime.bento_fixtures import write_toy_service
from tests.runtime.store_fixtures import Doubler

SERVICE = '''\
from runtime import api, runner

SERVICE_NAME = "pickled"
doubler = runner("pickled_doubler:latest")


@api
def double(rows: list[float]) -> list[float]:
    return doubler.predict(rows)
'''


@pytest.fixture
def archive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A .bento whose model is a cloudpickle, exported by 'another machine' (another home)."""
    monkeypatch.setenv("NBENTO_HOME", str(tmp_path / "elsewhere"))
    runtime.save_model("pickled_doubler", Doubler(3), signatures={"predict": {"batchable": True}})
    bento = build_bento(write_toy_service(tmp_path / "svc", SERVICE), replay=False)
    out = tmp_path / "pickled.bento"
    assert main(["bentos", "export", str(bento.tag), str(out)]) == 0
    monkeypatch.setenv("NBENTO_HOME", str(tmp_path / "here"))  # this machine: no trust records
    return out


def test_a_pickled_model_from_another_machine_is_not_trusted_until_asked(
    archive: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bentos", "import", str(archive)]) == 0
    err = capsys.readouterr().err
    assert "not trusted: pickled_doubler:" in err and "--trust" in err
    bento_models = ModelStore(_bentos_models())
    (model,) = bento_models.list_models()
    with pytest.raises(UntrustedModel):
        bento_models.load(model.tag)


def test_trust_on_import_makes_it_load(archive: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bentos", "import", str(archive), "--trust"]) == 0
    assert "trusted pickled_doubler:" in capsys.readouterr().out
    bento_models = ModelStore(_bentos_models())
    (model,) = bento_models.list_models()
    assert bento_models.load(model.tag) == Doubler(3)


def test_a_sparse_member_is_refused(tmp_path: Path) -> None:
    sparse = tarfile.TarInfo("./models/x/1/weights.bin")
    sparse.type = tarfile.GNUTYPE_SPARSE
    sparse.size = 0
    path = tmp_path / "sparse.bento"
    with tarfile.open(path, "w:xz", format=tarfile.GNU_FORMAT) as tar:
        tar.addfile(sparse, io.BytesIO(b""))
    with pytest.raises(NbentoError, match="sparse file"):
        import_bento(path)


def _bentos_models() -> Path:
    (folder,) = (runtime.store.default_store().root.parent / "bentos" / "pickled").iterdir()
    return folder / "models"


def test_a_bento_built_here_serves_its_pickles_from_a_custom_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The golden replay serves the Bento with NBENTO_HOME=BENTO: the models this machine saved
    (into a home other than ~/.nbento) must stay trusted there, or the build cannot replay."""
    from runtime.export.golden import Golden, write_goldens

    monkeypatch.setenv("NBENTO_HOME", str(tmp_path / "custom-home"))
    monkeypatch.delenv("NBENTO_TRUST_DIR", raising=False)
    runtime.save_model("pickled_doubler", Doubler(3), signatures={"predict": {"batchable": True}})
    folder = write_toy_service(tmp_path / "svc", SERVICE)
    write_goldens(folder / "golden.jsonl", [Golden.model_validate({
        "api": "double", "request": {"rows": [1.0, 2.0]}, "answer": [3.0, 6.0],
        "source": "sample", "cell_id": "c1", "recorded_at": "2026-11-29T20:00:00Z",
    })])
    bento = build_bento(folder)  # replays against the served Bento: its pickle loads
    assert (bento.path / "golden" / "golden.jsonl").is_file()
