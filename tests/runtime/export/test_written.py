"""Re-exporting into the same folder: files the previous export wrote and the new layout lacks
are removed (so `kubectl apply -f DIR/` cannot deploy a stale runner), and nothing else is."""

from __future__ import annotations

from pathlib import Path

from runtime.export.bento import build_bento
from runtime.export.k8s import write_manifests
from runtime.export.written import RECORD_NAME, read_record, write_files
from tests.runtime.bento_fixtures import save_toy_model, write_toy_service
from tests.runtime.export.test_k8s import TWO_RUNNERS


def test_rewrite_removes_only_files_it_wrote_before(tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    write_files(out, {"api.yaml": "a: 1\n", "runner-x.yaml": "r: 1\n", "edited.yaml": "e: 1\n"})
    (out / "notes.yaml").write_text("mine\n")  # the user's own file
    (out / "edited.yaml").write_text("e: 2  # changed by hand\n")

    result = write_files(out, {"api.yaml": "a: 2\n"})

    assert sorted(p.name for p in out.iterdir()) == [RECORD_NAME, "api.yaml", "edited.yaml", "notes.yaml"]
    assert [p.name for p in result.removed] == ["runner-x.yaml"]
    assert [p.name for p in result.kept] == ["edited.yaml"]
    assert (out / "api.yaml").read_text() == "a: 2\n"
    assert set(read_record(out)) == {"api.yaml"}


def test_a_crafted_record_cannot_delete_outside_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "k8s"
    out.mkdir()
    victim = tmp_path / "victim.yaml"
    victim.write_text("keep\n")
    import hashlib

    digest = hashlib.sha256(b"keep\n").hexdigest()
    (out / RECORD_NAME).write_text(f"{digest}  ../victim.yaml\n{digest}  {victim}\n")
    write_files(out, {"api.yaml": "a\n"})
    assert victim.read_text() == "keep\n"


def test_export_without_split_runners_drops_the_old_runner_files(tmp_path: Path) -> None:
    save_toy_model()
    bento = build_bento(write_toy_service(tmp_path / "svc", TWO_RUNNERS))
    out = tmp_path / "m"
    split = {p.name for p in write_manifests(bento, out, split_runners=True)}
    assert any(name.startswith("runner-") for name in split)
    plain = {p.name for p in write_manifests(bento, out, split_runners=False)}
    on_disk = {p.name for p in out.iterdir() if p.name != RECORD_NAME}
    assert on_disk == plain
    assert not any(name.startswith("runner-") for name in on_disk)
