"""`nbento serve` without a server: `--set` on top of a config file, what SRC names (a Bento
folder or tag), and `--print-settings`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from runtime.errors import NbentoError
from runtime.service.definition import api
from runtime.serving.host import api_batching
from runtime.settings import ServerConfig, resolve_settings
from tests.runtime.serving_models import save_scaler
from tests.runtime.serving_support import REPO

SERVICE = """
from runtime import api, runner

scaler = runner("scaler:latest", batching={"predict": {"max_batch_size": 8, "max_latency_ms": 4}})


@api(batchable=True, max_batch_size=8)
def double(xs: list[float]) -> list[float]:
    return list(scaler.predict(xs))
"""


def test_set_overrides_config_file_and_keeps_explicit_keys(tmp_path: Path) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text("port: 4000\nrunners:\n  clf:\n    workers: 2\n")
    config = resolve_settings(
        path,
        flags={"host": "0.0.0.0"},
        set_items=[
            "runners.clf.batching.max_batch_size=16", "access_log=false", "apis.sq.max_latency_ms=3"
        ],
    )
    assert (config.port, config.host, config.access_log) == (4000, "0.0.0.0", False)
    clf = config.runner("clf")
    assert clf.workers == 2 and clf.batching.max_batch_size == 16
    assert clf.batching.model_fields_set == {"max_batch_size"}  # others still come from code


def test_api_batching_code_then_config() -> None:
    def sq(rows: list[int]) -> list[int]:
        return rows

    api(sq, batchable=True, max_batch_size=8, max_latency_ms=20)
    spec = sq.__nbento_api__  # type: ignore[attr-defined]
    plain = api_batching(spec, resolve_settings())
    assert (plain.max_batch_size, plain.max_latency_ms) == (8, 20)
    tuned = api_batching(spec, resolve_settings(set_items=["apis.sq.max_latency_ms=3"]))
    assert (tuned.max_batch_size, tuned.max_latency_ms) == (8, 3)


def _print_settings(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    child = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "runtime", "serve", *args, "--print-settings"],
        capture_output=True, text=True, env=child, cwd=str(REPO), timeout=120,
    )


def test_print_settings_shows_the_effective_settings_and_exits_0(tmp_path: Path) -> None:
    save_scaler("scaler")
    folder = tmp_path / "svc"
    folder.mkdir()
    (folder / "service.py").write_text(SERVICE)
    config = tmp_path / "serve.yaml"
    config.write_text("runners:\n  scaler:\n    batching: {max_batch_size: 64}\napis:\n  double: {max_batch_size: 64}\n")
    done = _print_settings(
        str(folder), "--config", str(config), "--port", "4100", "--set", "apis.double.max_latency_ms=2",
        env={"NBENTO_RUNNERS__SCALER__WORKERS": "1"},
    )
    assert done.returncode == 0, done.stderr
    assert "# sources, later winning: defaults; code; file " in done.stdout
    assert "env NBENTO_RUNNERS__SCALER__WORKERS; flags --port; --set apis.double.max_latency_ms=2" in done.stdout
    view = yaml.safe_load(done.stdout)
    ServerConfig.model_validate(view)  # it is itself a valid settings file
    assert view["port"] == 4100
    scaler = view["runners"]["scaler"]
    assert scaler["workers"] == 1
    # the file's runner-wide 64 beats the code's per-method 8; the code's latency stays
    assert scaler["methods"] == {
        "predict": {"enabled": True, "max_batch_size": 64, "max_latency_ms": 4.0, "max_queue_rows": 2048}
    }
    assert view["apis"]["double"]["max_batch_size"] == 64
    assert view["apis"]["double"]["max_latency_ms"] == 2


def test_print_settings_reports_a_bad_setting_as_a_user_error(tmp_path: Path) -> None:
    save_scaler("scaler")
    folder = tmp_path / "svc"
    folder.mkdir()
    (folder / "service.py").write_text(SERVICE)
    done = _print_settings(str(folder), env={"NBENTO_API_THREADS": "lots"})
    assert done.returncode == 1
    assert "NBENTO_API_THREADS: Input should be a valid integer" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_batching_in_code_names_runner_and_method(tmp_path: Path) -> None:
    save_scaler("scaler")
    folder = tmp_path / "svc"
    folder.mkdir()
    (folder / "service.py").write_text(SERVICE.replace('"max_batch_size": 8,', '"max_batch_size": 0,'))
    done = _print_settings(str(folder))
    assert done.returncode == 1
    assert (
        "invalid batching settings for runner 'scaler', method 'predict': max_batch_size: "
        "Input should be greater than or equal to 1"
    ) in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_target_unpacks_a_bento(tmp_path: Path) -> None:
    from runtime.cli.serve import serve_target

    assert serve_target("pkg.service").bento is None
    bento = tmp_path / "b"
    (bento / "src").mkdir(parents=True)
    with pytest.raises(NbentoError, match="cannot read"):
        (bento / "bento.yaml").write_text("name: [")
        serve_target(str(bento))
    with pytest.raises(NbentoError, match="no Bento 'nothing'"):
        serve_target("nothing:latest")
