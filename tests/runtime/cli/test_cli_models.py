"""`nbento models ...` as a user runs it: a real subprocess, exit codes, tables and JSON."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from runtime import store
from tests.runtime.store_fixtures import REPO, Doubler


def _nbento(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("nbento", path=str(Path(sys.executable).parent))
    command = [exe] if exe else [sys.executable, "-m", "runtime"]
    return subprocess.run(
        [*command, *args],
        env={**os.environ, "NBENTO_HOME": str(home), "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_list_json_with_two_models(nbento_home: Path) -> None:
    first = store.save_model("doubler", Doubler(), signatures={"predict": {"batchable": True}})
    second = store.save_model("vectors", np.ones((4, 2), dtype=np.float32))

    result = _nbento("models", "list", "--json", home=nbento_home)

    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["tag"] for r in rows] == [str(first.tag), str(second.tag)]
    for row in rows:
        assert {"name", "version", "signatures", "size_bytes", "creation_time"} <= set(row)
    assert rows[0]["signatures"]["predict"]["batchable"] is True
    assert rows[1]["size_bytes"] == second.info.size_bytes > 32
    assert rows[1]["creation_time"].endswith("Z")


def test_list_table_for_people(nbento_home: Path) -> None:
    model = store.save_model("doubler", Doubler(), signatures={"predict": {"batchable": True}})

    result = _nbento("models", "list", home=nbento_home)

    assert result.returncode == 0
    header, row = result.stdout.splitlines()
    assert header.split()[:2] == ["TAG", "SERIALIZER"]
    assert row.split()[:3] == [str(model.tag), "cloudpickle", "predict*"]
    empty = _nbento("models", "list", "nothing", home=nbento_home)
    assert empty.returncode == 0 and "no models" in empty.stdout


def test_get_prints_model_yaml_and_json(nbento_home: Path) -> None:
    model = store.save_model("doubler", Doubler(), labels={"team": "ml"})

    text = _nbento("models", "get", "doubler", home=nbento_home)
    as_json = _nbento("models", "get", str(model.tag), "--json", home=nbento_home)

    assert text.returncode == 0 and f"version: {model.tag.version}" in text.stdout
    assert json.loads(as_json.stdout)["labels"] == {"team": "ml"}


def test_user_errors_exit_1_with_a_suggestion(nbento_home: Path) -> None:
    store.save_model("classifier", Doubler())

    missing = _nbento("models", "get", "clasifier", home=nbento_home)
    bad_name = _nbento("models", "delete", "../x", home=nbento_home)

    assert missing.returncode == 1
    assert "error: no model 'clasifier'" in missing.stderr and "'classifier'" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert bad_name.returncode == 1 and "invalid model name" in bad_name.stderr


def test_usage_errors_exit_2(nbento_home: Path) -> None:
    assert _nbento("models", home=nbento_home).returncode == 2
    assert _nbento("models", "export", "x", home=nbento_home).returncode == 2
    assert _nbento("models", "frobnicate", home=nbento_home).returncode == 2


def test_export_import_delete_through_the_cli(nbento_home: Path, tmp_path: Path) -> None:
    model = store.save_model("doubler", Doubler(7), signatures=["predict"])
    other = tmp_path / "other"

    exported = _nbento("models", "export", "doubler", str(tmp_path), "--json", home=nbento_home)
    archive = json.loads(exported.stdout)["path"]
    imported = _nbento("models", "import", archive, "--json", home=other)
    listed = _nbento("models", "list", "--json", home=other)
    deleted = _nbento("models", "delete", "doubler", home=other)

    assert exported.returncode == 0 and Path(archive).is_file()
    assert imported.returncode == 0 and json.loads(imported.stdout)["tag"] == str(model.tag)
    assert [r["tag"] for r in json.loads(listed.stdout)] == [str(model.tag)]
    assert deleted.returncode == 0 and f"deleted {model.tag}" in deleted.stdout
    assert json.loads(_nbento("models", "list", "--json", home=other).stdout) == []
    assert store.load("doubler") == Doubler(7)  # the source store is untouched
