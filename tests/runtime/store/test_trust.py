"""The pickle trust gate: models from outside that run code on load are refused until trusted;
what this machine saved, and formats that run no code, load as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from runtime import store
from runtime.errors import NbentoError, UntrustedModel
from runtime.store import ModelStore
from runtime.store.trust import (
    TRUST_DIR_ENV,
    TRUSTED_STORE_ENV,
    is_trusted,
    trust_dir,
    trust_model,
    untrusted_models,
)
from tests.runtime.store.trust_fixtures import array_tar, pickle_tar
from tests.runtime.store_fixtures import Doubler


def test_imported_pickle_is_refused_and_never_unpickled(tmp_path: Path) -> None:
    tripwire = tmp_path / "pwned.txt"
    model = store.import_model(pickle_tar(tmp_path / "gift.tar", tripwire))

    with pytest.raises(UntrustedModel) as refused:
        store.load(str(model.tag))

    message = str(refused.value)
    for hint in (
        "runs code from its files", "unpickling", f"nbento models trust {model.tag}",
        "nbento models import FILE --trust", "trust=True",
    ):
        assert hint in message
    assert not tripwire.exists()
    # its model.yaml says `code_on_load: false`; the gate asked the serializer instead
    assert model.info.code_on_load is False
    assert [m.tag for m, _ in untrusted_models(store.default_store())] == [model.tag]


def test_trust_for_one_call_then_for_good(tmp_path: Path) -> None:
    tripwire = tmp_path / "pwned.txt"
    model = store.import_model(pickle_tar(tmp_path / "gift.tar", tripwire))

    store.load(str(model.tag), trust=True)  # this call only
    assert tripwire.read_text() == "code from the pickle ran"
    tripwire.unlink()
    with pytest.raises(UntrustedModel):
        store.load(str(model.tag))

    record = trust_model(store.get(str(model.tag)), "reviewed in a test")
    assert record.parent == trust_dir() and "reviewed in a test" in record.read_text()
    store.load(str(model.tag))
    assert tripwire.exists()


def test_import_with_trust(tmp_path: Path) -> None:
    tripwire = tmp_path / "pwned.txt"
    model = store.import_model(pickle_tar(tmp_path / "gift.tar", tripwire), trust=True)
    assert is_trusted(model)
    store.load(str(model.tag))
    assert tripwire.exists()


def test_saved_here_loads_because_the_save_recorded_it(nbento_home: Path) -> None:
    model = store.save_model("doubler", Doubler(3))
    assert store.load("doubler") == Doubler(3)
    record = nbento_home / "trust" / model.yaml_sha256
    assert record.is_file() and str(model.tag) in record.read_text()

    record.unlink()  # the record, not where the files are, is what makes it trusted
    with pytest.raises(UntrustedModel):
        store.load("doubler")


def test_export_then_import_on_another_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = store.save_model("doubler", Doubler(5))
    archive = store.export_model(model.tag, tmp_path)
    monkeypatch.setenv("NBENTO_HOME", str(tmp_path / "other-machine"))

    imported = store.import_model(archive)

    assert imported.yaml_sha256 == model.yaml_sha256  # same bytes, other registry
    with pytest.raises(UntrustedModel, match="cloudpickle"):
        store.load(str(model.tag))


def test_formats_without_code_load_untrusted(tmp_path: Path) -> None:
    model = store.import_model(array_tar(tmp_path / "v.tar", {"dot": {}}))
    assert not is_trusted(model)
    # `dot` is no inference method either: the attack is the same as `tofile`'s
    with pytest.raises(UntrustedModel, match="declares signatures dot"):
        store.load(str(model.tag))

    plain = store.import_model(array_tar(tmp_path / "p.tar", {}, name="plain"))
    np.testing.assert_array_equal(store.load(str(plain.tag)), np.arange(6.0).reshape(3, 2))
    allowed = store.import_model(array_tar(tmp_path / "e.tar", {"transform": {}}, name="ok"))
    assert store.load(str(allowed.tag)).shape == (3, 2)


def test_imported_array_declaring_tofile_is_refused(tmp_path: Path) -> None:
    """The issue's attack: a plain NumPy model whose signatures list `tofile`."""
    model = store.import_model(array_tar(tmp_path / "v.tar", {"tofile": {}}))

    with pytest.raises(UntrustedModel) as refused:
        store.load(str(model.tag))
    assert "declares signatures tofile" in str(refused.value)
    assert "runs code" not in str(refused.value)  # the array itself would be harmless
    assert isinstance(store.load(str(model.tag), trust=True), np.ndarray)


@pytest.mark.parametrize("bad", ["__class__", "_private", "os.system", "tofile()", "a-b"])
def test_signature_names_checked_on_every_read(tmp_path: Path, bad: str) -> None:
    with pytest.raises(NbentoError, match="invalid signature name"):
        store.import_model(array_tar(tmp_path / "bad.tar", {bad: {}}))
    assert store.list_models() == []

    # a version edited on disk is refused when read, whoever reads it
    model = store.save_model("vec", np.ones(3), signatures=["dot"])
    yaml_path = model.path / "model.yaml"
    yaml_path.write_text(yaml_path.read_text().replace("dot:", f"'{bad}':"))
    with pytest.raises(NbentoError, match="invalid signature name"):
        store.get(str(model.tag))


def test_a_bento_home_carries_no_trust(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Bento folder from elsewhere with a forged `trust/` record: NBENTO_HOME=BENTO never
    reads it; the user's own registry (~/.nbento/trust) decides."""
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    bento = tmp_path / "bento"
    (bento / "bento.yaml").parent.mkdir()
    (bento / "bento.yaml").write_text("name: gift\n")
    monkeypatch.setenv("NBENTO_HOME", str(bento))
    tripwire = tmp_path / "pwned.txt"
    model = store.import_model(pickle_tar(tmp_path / "gift.tar", tripwire))
    forged = bento / "trust" / model.yaml_sha256
    forged.parent.mkdir()
    forged.write_text("gift\nforged\n")

    assert trust_dir() == tmp_path / "user" / ".nbento" / "trust"
    with pytest.raises(UntrustedModel):
        store.load(str(model.tag))
    assert not tripwire.exists()

    trust_model(model, "the user's own decision")  # recorded in ~/.nbento/trust
    assert (tmp_path / "user" / ".nbento" / "trust" / model.yaml_sha256).is_file()
    store.load(str(model.tag))
    assert tripwire.exists()


def test_trusted_store_env_trusts_that_store_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tripwire = tmp_path / "pwned.txt"
    model = store.import_model(pickle_tar(tmp_path / "gift.tar", tripwire))
    monkeypatch.setenv(TRUSTED_STORE_ENV, str(tmp_path / "elsewhere"))
    with pytest.raises(UntrustedModel):
        store.load(str(model.tag))
    monkeypatch.setenv(TRUSTED_STORE_ENV, str(model.store.root))
    store.load(str(model.tag))
    assert tripwire.exists()


def test_trust_dir_env_moves_the_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TRUST_DIR_ENV, str(tmp_path / "registry"))
    model = store.save_model("doubler", Doubler())
    assert (tmp_path / "registry" / model.yaml_sha256).is_file()
    monkeypatch.setenv(TRUST_DIR_ENV, str(tmp_path / "empty-registry"))
    with pytest.raises(UntrustedModel):
        store.load("doubler")


def test_versions_saved_before_the_gate_still_load(tmp_path: Path, nbento_home: Path) -> None:
    """A home whose registry does not exist yet (saved by an older nbento) adopts what is
    there once; an import into such a home is not adopted."""
    import shutil

    legacy = store.save_model("doubler", Doubler(7))
    shutil.rmtree(nbento_home / "trust")
    tripwire = tmp_path / "pwned.txt"
    imported = store.import_model(pickle_tar(tmp_path / "gift.tar", tripwire))

    assert store.load(str(legacy.tag)) == Doubler(7)
    with pytest.raises(UntrustedModel):
        store.load(str(imported.tag))
    assert not tripwire.exists()


def test_a_store_outside_the_home_uses_the_home_registry(tmp_path: Path) -> None:
    """A Bento's `models/` built here holds byte-identical model.yaml files: trusted here."""
    model = store.save_model("doubler", Doubler(4))
    copy = ModelStore(tmp_path / "bento-models")
    archive = store.export_model(model.tag, tmp_path)
    store.import_model(archive, store=copy)
    assert copy.load(str(model.tag)) == Doubler(4)


def test_a_bento_store_from_elsewhere_is_reported_then_trusted_whole(tmp_path: Path) -> None:
    """What `nbento bentos import` calls on a Bento's `models/`: list what would be refused,
    and with --trust record every version."""
    from runtime.store.trust import trust_store

    bento_models = ModelStore(tmp_path / "bento" / "models")
    tripwire = tmp_path / "pwned.txt"
    gift = store.import_model(pickle_tar(tmp_path / "g.tar", tripwire), store=bento_models)
    plain = store.import_model(array_tar(tmp_path / "p.tar", {"predict": {}}), store=bento_models)

    report = untrusted_models(bento_models)
    assert [(m.tag, "runs code" in reasons[0]) for m, reasons in report] == [(gift.tag, True)]
    assert not is_trusted(plain)  # not trusted, but nothing to refuse about it

    added = trust_store(bento_models, "bento imported with --trust")
    assert [m.tag for m in added] == [gift.tag]
    assert untrusted_models(bento_models) == []
    bento_models.load(str(gift.tag))
    assert tripwire.exists()
