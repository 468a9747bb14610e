"""The model store on real files, with real subprocesses for concurrency and crashes."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from runtime import store
from runtime.errors import ChecksumMismatch, InvalidName, ModelNotFound, NbentoError, SignatureError
from runtime.store.model_store import ModelStore
from tests.runtime.store_fixtures import REPO, Doubler

FIELDS = {
    "name",
    "version",
    "module",
    "serializer",
    "framework",
    "python_version",
    "labels",
    "metadata",
    "signatures",
    "creation_time",
    "size_bytes",
    "files",
    "provenance",
}


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4))
    return X, (X[:, 0] + X[:, 1] > 0).astype(int)


def _subprocess_env(home: Path) -> dict[str, str]:
    return {**os.environ, "NBENTO_HOME": str(home), "PYTHONPATH": str(REPO)}


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size)
        for p in sorted(root.rglob("*"))
    }


def test_sklearn_pipeline_round_trips_with_skops_and_full_metadata(nbento_home: Path) -> None:
    X, y = _data()
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)

    model = store.save_model(
        "support_classifier",
        pipe,
        signatures={"predict_proba": {"batchable": True, "batch_dim": 0}},
        labels={"team": "support"},
        metadata={"accuracy": 0.93},
        provenance={"notebook": "nb.ipynb", "cell_id": "abc"},
    )

    loaded = store.load("support_classifier")
    np.testing.assert_array_equal(loaded.predict_proba(X), pipe.predict_proba(X))
    raw = yaml.safe_load((model.path / "model.yaml").read_text())
    assert set(raw) >= FIELDS
    assert raw["serializer"] == "sklearn" and raw["options"]["format"] == "skops"
    assert raw["framework"]["name"] == "scikit-learn" and raw["framework"]["version"]
    assert raw["provenance"] == {"notebook": "nb.ipynb", "cell_id": "abc"}
    assert raw["creation_time"].endswith("Z")
    assert set(raw["files"]) == {"model.skops"}
    assert raw["size_bytes"] == (model.path / "model.skops").stat().st_size
    assert model.path == nbento_home / "models" / "support_classifier" / model.tag.version


def test_estimator_skops_cannot_trust_falls_back_to_joblib() -> None:
    X, y = _data()
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)

    model = store.save_model("forest", forest)

    assert model.info.options["format"] == "joblib"
    assert "sklearn.tree._tree.Tree" in model.info.options["skops_untrusted_types"]
    np.testing.assert_array_equal(store.load("forest").predict(X), forest.predict(X))


@pytest.mark.parametrize(
    "array",
    [
        np.arange(24, dtype=np.float32).reshape(4, 6),
        np.asfortranarray(np.arange(24, dtype=np.int64).reshape(4, 6)),
        np.arange(40, dtype=np.float64).reshape(5, 8)[:, ::3],
        np.zeros((0, 3)),
        np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]),
    ],
    ids=["c-order", "fortran", "strided", "empty", "structured"],
)
def test_ndarray_round_trips_and_maps(array: np.ndarray) -> None:
    model = store.save_model("vectors", array)

    loaded = store.load(model.tag)
    mapped = store.load(model.tag, mmap_mode="r")
    direct = np.load(model.path / "array.npy", mmap_mode="r")

    for result in (loaded, mapped, direct):
        assert result.dtype == array.dtype and result.shape == array.shape
        np.testing.assert_array_equal(result, array)
    assert isinstance(mapped, np.memmap)
    assert model.info.serializer == "numpy"


def test_custom_class_round_trips_in_a_fresh_process(nbento_home: Path) -> None:
    model = store.save_model("doubler", Doubler(5), signatures=["predict"])
    assert store.load("doubler") == Doubler(5)
    assert model.info.serializer == "cloudpickle"

    out = subprocess.run(
        [sys.executable, "-c", "from runtime import load; print(load('doubler').predict([1, 2]))"],
        env=_subprocess_env(nbento_home),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "[5, 10]"


def test_signatures_persist_and_are_validated() -> None:
    X, y = _data()
    clf = LogisticRegression().fit(X, y)

    store.save_model("clf", clf, signatures={"predict": {"batchable": True, "batch_dim": 0}})
    listed = store.save_model("clf2", clf, signatures=["predict", "decision_function"])
    default = store.save_model("clf3", clf)

    sig = store.get("clf").info.signatures
    assert list(sig) == ["predict"] and sig["predict"].batchable and sig["predict"].batch_dim == 0
    assert set(store.get(listed.tag).info.signatures) == {"predict", "decision_function"}
    assert not store.get(listed.tag).info.signatures["predict"].batchable
    assert {"predict", "predict_proba"} <= set(store.get(default.tag).info.signatures)
    with pytest.raises(SignatureError, match=r"no method 'predikt'.*predict"):
        store.save_model("clf4", clf, signatures=["predikt"])
    with pytest.raises(SignatureError, match="invalid signature for 'predict'"):
        store.save_model("clf4", clf, signatures={"predict": {"batchable": "sometimes"}})
    assert store.list_models("clf4") == []


def test_latest_is_the_newest_version() -> None:
    tags = [store.save_model("counter", Doubler(i)).tag for i in range(3)]

    assert len({t.version for t in tags}) == 3
    assert [t.version for t in tags] == sorted(t.version for t in tags)  # type: ignore[type-var]
    assert store.get("counter").tag == tags[-1]
    assert store.get("counter:latest").tag == tags[-1]
    assert store.load("counter") == Doubler(2)
    assert store.load(str(tags[0])) == Doubler(0)
    assert [m.tag for m in store.list_models("counter")] == tags


def test_two_processes_saving_one_name_at_once_leave_two_versions(
    nbento_home: Path, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.runtime.store_fixtures", "save-doubler", "shared", go],
            env=_subprocess_env(nbento_home),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    time.sleep(1.5)  # both interpreters imported and waiting for the go file
    go.write_text("go")
    results = [p.communicate(timeout=60) for p in procs]

    assert [p.returncode for p in procs] == [0, 0], results
    printed = sorted(out.strip() for out, _ in results)
    models = store.list_models("shared")
    assert sorted(str(m.tag) for m in models) == printed and len(set(printed)) == 2
    assert all(m.load() == Doubler(3) for m in models)


def test_save_killed_mid_write_leaves_no_visible_version(nbento_home: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.runtime.store_fixtures", "save-slow", "victim", marker, "60"],
        env=_subprocess_env(nbento_home),
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists(), "the slow save never reached its first file"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()

    name_dir = nbento_home / "models" / "victim"
    leftovers = [p.name for p in name_dir.iterdir()]
    assert leftovers and all(n.startswith(".tmp-") for n in leftovers)  # the half-written save
    assert store.list_models() == []
    with pytest.raises(ModelNotFound):
        store.get("victim")

    model = store.save_model("victim", Doubler(1))
    assert [m.tag for m in store.list_models()] == [model.tag]
    assert store.load("victim") == Doubler(1)


@pytest.mark.parametrize("kind", ["array", "array-mmap", "pickle", "truncated", "missing"])
def test_tampered_artifact_is_refused_naming_the_file(kind: str) -> None:
    obj = Doubler(2) if kind == "pickle" else np.arange(1000, dtype=np.float64)
    model = store.save_model("tampered", obj)
    artifact = model.path / ("model.pkl" if kind == "pickle" else "array.npy")
    data = bytearray(artifact.read_bytes())
    if kind == "truncated":
        artifact.write_bytes(bytes(data[:-8]))
    elif kind == "missing":
        artifact.unlink()
    else:
        data[-3] ^= 0xFF
        artifact.write_bytes(bytes(data))

    with pytest.raises(ChecksumMismatch, match=artifact.name):
        store.load("tampered", **({"mmap_mode": "r"} if kind == "array-mmap" else {}))


def test_loading_never_writes_to_the_store(nbento_home: Path) -> None:
    X, y = _data()
    store.save_model("pipe", make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y))
    store.save_model("arr", np.ones(10))
    store.save_model("obj", Doubler())
    before = _tree(nbento_home)

    for tag in ("pipe", "arr", "obj"):
        store.load(tag)
    store.load("arr", mmap_mode="r")
    store.list_models()

    assert _tree(nbento_home) == before


def test_reading_an_empty_or_missing_store_creates_nothing(tmp_path: Path) -> None:
    empty = ModelStore(tmp_path / "absent" / "models")
    assert empty.list_models() == []
    with pytest.raises(ModelNotFound, match="store is empty"):
        empty.get("x")
    assert not (tmp_path / "absent").exists()


@pytest.mark.parametrize("bad", ["../x", "A B", "", "x" * 300, "a/b", ".hidden", "Upper"])
def test_bad_names_are_refused_with_the_rule(bad: str) -> None:
    with pytest.raises(InvalidName, match=r"must match \[a-z0-9\]"):
        store.save_model(bad, Doubler())
    assert store.list_models() == []


def test_model_not_found_says_what_exists() -> None:
    store.save_model("classifier", Doubler())
    with pytest.raises(ModelNotFound, match=r"no model 'clasifier'.*did you mean 'classifier'"):
        store.get("clasifier")
    with pytest.raises(ModelNotFound, match="has no version '20200101-000000-000000-00001'"):
        store.get("classifier:20200101-000000-000000-00001")


def test_delete_removes_one_version_and_latest_moves_back(nbento_home: Path) -> None:
    first = store.save_model("dm", Doubler(1))
    second = store.save_model("dm", Doubler(2))

    assert store.delete("dm").tag == second.tag
    assert store.get("dm").tag == first.tag
    store.delete(first.tag)
    assert not (nbento_home / "models" / "dm").exists()
    with pytest.raises(ModelNotFound):
        store.delete("dm")


def test_metadata_must_be_plain_data() -> None:
    with pytest.raises(NbentoError, match="metadata must hold only"):
        store.save_model("meta", Doubler(), metadata={"when": object()})
    with pytest.raises(NbentoError, match="labels must map strings"):
        store.save_model("meta", Doubler(), labels={"n": 1})  # type: ignore[dict-item]


def test_export_then_import_into_another_home_round_trips(
    nbento_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, y = _data()
    pipe = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    model = store.save_model("exported", pipe, signatures={"predict": {"batchable": True}})
    tar_path = store.export_model("exported", tmp_path)

    other = tmp_path / "other-home"
    monkeypatch.setenv("NBENTO_HOME", str(other))
    imported = store.import_model(tar_path)

    assert imported.tag == model.tag and imported.info == model.info
    assert imported.path == other / "models" / "exported" / str(model.tag.version)
    np.testing.assert_array_equal(store.load("exported").predict(X), pipe.predict(X))
    assert store.import_model(tar_path).tag == model.tag  # importing again is a no-op


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _valid_members(tmp_path: Path) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    model = store.save_model("evil", Doubler())
    prefix = f"evil/{model.tag.version}"
    return [
        (tarfile.TarInfo(f"{prefix}/{rel}"), (model.path / rel).read_bytes())
        for rel in ["model.yaml", "model.pkl"]
    ]


@pytest.mark.parametrize("trick", ["dotdot", "absolute", "symlink", "hardlink", "extra", "mixed"])
def test_import_refuses_path_tricks(tmp_path: Path, trick: str) -> None:
    members = _valid_members(tmp_path)
    version = members[0][0].name.split("/")[1]
    if trick == "dotdot":
        members.append((tarfile.TarInfo(f"evil/{version}/../../../escaped"), b"x"))
    elif trick == "absolute":
        members.append((tarfile.TarInfo(f"/tmp/evil/{version}/abs"), b"x"))
    elif trick in ("symlink", "hardlink"):
        link = tarfile.TarInfo(f"evil/{version}/link")
        link.type = tarfile.SYMTYPE if trick == "symlink" else tarfile.LNKTYPE
        link.linkname = "/etc/passwd"
        members.append((link, None))
    elif trick == "extra":
        members.append((tarfile.TarInfo(f"evil/{version}/unlisted.bin"), b"x"))
    else:
        members.append((tarfile.TarInfo("other/20200101-000000-000000-00001/model.yaml"), b"x"))
    archive = _tar(tmp_path / "evil.tar", members)
    store.delete("evil")

    with pytest.raises(NbentoError, match="refusing to import"):
        store.import_model(archive)
    assert store.list_models() == []
    assert not (tmp_path / "escaped").exists()


def test_import_checks_sha256_and_never_unpickles(tmp_path: Path) -> None:
    members = _valid_members(tmp_path)
    store.delete("evil")
    canary = tmp_path / "unpickled"

    class Boom:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {canary}",))

    import pickle

    members[1] = (members[1][0], pickle.dumps(Boom()))
    archive = _tar(tmp_path / "boom.tar", members)

    with pytest.raises(ChecksumMismatch, match=r"model\.pkl"):
        store.import_model(archive)
    assert not canary.exists()
    assert store.list_models() == []


def test_import_of_a_non_tar_is_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_text("not a tar")
    with pytest.raises(NbentoError, match="not a readable tar"):
        store.import_model(junk)
    with pytest.raises(NbentoError, match="no such file"):
        store.import_model(tmp_path / "absent.tar")


def test_export_refuses_a_damaged_model(tmp_path: Path) -> None:
    model = store.save_model("damaged", Doubler())
    (model.path / "model.pkl").write_bytes(b"changed")
    with pytest.raises(ChecksumMismatch, match=r"model\.pkl"):
        store.export_model("damaged", tmp_path / "out.tar")
    assert list(tmp_path.glob("*.tar")) == [] and list(tmp_path.glob(".*tmp*")) == []


def test_saves_remove_temp_folders_left_by_old_crashes(nbento_home: Path) -> None:
    name_dir = nbento_home / "models" / "crashy"
    old, recent = name_dir / ".tmp-old-crash", name_dir / ".tmp-in-flight"
    for folder in (old, recent):
        folder.mkdir(parents=True)
        (folder / "part").write_bytes(b"x")
    two_days_ago = time.time() - 2 * 86400
    os.utime(old, (two_days_ago, two_days_ago))

    store.save_model("crashy", Doubler())

    assert not old.exists() and recent.exists()


def test_an_unwritable_store_is_a_clear_error(nbento_home: Path) -> None:
    (nbento_home / "models").write_text("not a folder")
    with pytest.raises(NbentoError, match="cannot save model 'blocked'"):
        store.save_model("blocked", Doubler())
    with pytest.raises(NbentoError, match="provenance must look like"):
        store.save_model("blocked", Doubler(), provenance={"cell_id": ["not", "text"]})


def test_array_save_killed_while_writing_leaves_nothing_visible(nbento_home: Path) -> None:
    """SIGKILL lands while the 200 MB array is being written: the watcher kills as soon as
    any folder of the save holds its first file, long before the write, hash and fsync of
    200 MB are done and the folder is renamed into place."""
    code = (
        "import numpy as np; from runtime import save_model; "
        "save_model('big', np.full(50_000_000, 7, dtype=np.float32))"  # 200 MB
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env=_subprocess_env(nbento_home))
    name_dir = nbento_home / "models" / "big"
    writing: list[Path] = []  # the save's files seen just before the kill
    try:
        deadline = time.monotonic() + 60
        while not writing and proc.poll() is None and time.monotonic() < deadline:
            if name_dir.is_dir():
                writing = [f for folder in name_dir.iterdir() for f in folder.iterdir()]
            if not writing:
                time.sleep(0.001)
        if writing:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()

    assert writing, f"the save finished (exit {proc.returncode}) before its first file was seen"
    assert proc.returncode == -signal.SIGKILL  # killed mid-save, not finished
    assert [p.name for p in name_dir.iterdir() if not p.name.startswith(".tmp-")] == []
    assert store.list_models("big") == []  # nothing half-written is visible
    with pytest.raises(ModelNotFound):
        store.get("big")
    store.save_model("big", np.arange(3))
    np.testing.assert_array_equal(store.load("big"), np.arange(3))


def test_get_reads_metadata_only() -> None:
    model = store.save_model("lazy", Doubler(), labels={"stage": "dev"})
    (model.path / "model.pkl").write_bytes(b"garbage that would fail to unpickle")

    again = store.get("lazy")

    assert again.info.labels == {"stage": "dev"} and again.tag == model.tag
    with pytest.raises(ChecksumMismatch):
        again.load()
