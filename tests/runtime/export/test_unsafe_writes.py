"""Writes never follow a symbolic link out of the folder they belong to: manifests written
into an output folder holding a planted link, a `.bento` whose temp name is a planted link,
and the atomic write every capture and golden file goes through."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime.atomic import UnsafeWrite, atomic_write_text
from runtime.export.bento import build_bento
from runtime.export.bento_archive import export_bento
from runtime.export.k8s import render_manifests, write_manifests
from runtime.export.k8s_options import K8sOptions
from tests.runtime.bento_fixtures import save_toy_model, write_toy_service


def test_atomic_write_refuses_links_out_of_its_root(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("keep me")
    (root / "linked.txt").symlink_to(victim)
    (root / "linked_dir").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafeWrite, match=r"linked\.txt.*outside .*remove the link"):
        atomic_write_text(root / "linked.txt", "pwned", root=root)
    with pytest.raises(UnsafeWrite, match="folder"):
        atomic_write_text(root / "linked_dir" / "new" / "x.txt", "pwned", root=root)
    assert victim.read_text() == "keep me" and sorted(os.listdir(outside)) == ["victim.txt"]
    # a link that stays inside the root is replaced by the file, not written through
    (root / "real.txt").write_text("target")
    (root / "inner.txt").symlink_to(root / "real.txt")
    atomic_write_text(root / "inner.txt", "new", root=root)
    assert (root / "real.txt").read_text() == "target"
    assert not (root / "inner.txt").is_symlink() and (root / "inner.txt").read_text() == "new"


def test_manifests_are_not_written_through_a_planted_link(tmp_path: Path) -> None:
    save_toy_model()
    bento = build_bento(write_toy_service(tmp_path / "svc"))
    out, victim = tmp_path / "k8s", tmp_path / "bashrc"
    victim.write_text("# my shell settings\n")
    out.mkdir()
    first = next(iter(render_manifests(bento, K8sOptions())))
    (out / first).symlink_to(victim)
    with pytest.raises(UnsafeWrite, match=first):
        write_manifests(bento, out)
    assert victim.read_text() == "# my shell settings\n"
    (out / first).unlink()
    written = write_manifests(bento, out)  # a clean folder is written as before
    assert written and all(p.is_file() and not p.is_symlink() for p in written)


def test_a_bento_archive_never_writes_through_a_planted_temp_link(tmp_path: Path) -> None:
    save_toy_model()
    bento = build_bento(write_toy_service(tmp_path / "svc"))
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    out = tmp_path / "dist" / "toy.bento"
    out.parent.mkdir()
    (out.parent / f".{out.name}.partial").symlink_to(victim)  # the old fixed temp name
    assert export_bento(str(bento.tag), out) == out
    assert victim.read_text() == "keep me" and out.stat().st_size > 0
    assert oct(out.stat().st_mode & 0o777) == oct(0o644)
