"""`nbento serve` flags that need no server: `--set` on top of a config file."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.cli.serve import apply_settings
from runtime.errors import NbentoError
from runtime.service.definition import api
from runtime.serving.host import api_batching
from runtime.settings import load_config


def test_set_overrides_config_file_and_keeps_explicit_keys(tmp_path: Path) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text("port: 4000\nrunners:\n  clf:\n    workers: 2\n")
    config = apply_settings(
        load_config(path, host="0.0.0.0"),
        ["runners.clf.batching.max_batch_size=16", "access_log=false", "apis.sq.max_latency_ms=3"],
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
    plain = api_batching(spec, load_config())
    assert (plain.max_batch_size, plain.max_latency_ms) == (8, 20)
    tuned = api_batching(spec, apply_settings(load_config(), ["apis.sq.max_latency_ms=3"]))
    assert (tuned.max_batch_size, tuned.max_latency_ms) == (8, 3)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("port", "KEY=VALUE"),
        ("port=high", "port: Input should be a valid integer"),
        ("nonsense=1", "nonsense: Extra inputs are not permitted"),
        ("port.x=1", "'port' is a value"),
    ],
)
def test_bad_set_is_a_readable_error(item: str, message: str) -> None:
    config = apply_settings(load_config(), ["port=3001"])
    with pytest.raises(NbentoError, match=message):
        apply_settings(config, [item])
