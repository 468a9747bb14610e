"""The one settings resolver: defaults < code < file < `NBENTO_*` env < flags < `--set`, each
source a layer of its own (runtime/settings.py, docs/settings.md)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from runtime.errors import NbentoError
from runtime.settings import ServerConfig, parse_set_items, resolve_settings

CODE = {"*": {"max_batch_size": 8, "max_latency_ms": 3}}


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "serve.yaml"
    path.write_text(
        "port: 4000\n"
        "runners:\n  clf:\n    workers: 2\n    batching: {max_batch_size: 64}\n"
        "apis:\n  embed: {max_batch_size: 64}\n"
    )
    return path


def test_file_beats_code_only_for_the_keys_it_writes(config_file: Path) -> None:
    config = resolve_settings(config_file)
    batching = config.runner("clf").method_batching("predict", CODE)
    assert (batching.max_batch_size, batching.max_latency_ms) == (64, 3)  # latency from code
    api = config.api_batching("embed", {"max_batch_size": 8, "max_latency_ms": None})
    assert (api.max_batch_size, api.max_latency_ms) == (64, 10)  # None in code: the default
    assert config.runner("other").method_batching("predict", CODE).max_batch_size == 8
    assert (config.port, config.runner("clf").workers) == (4000, 2)


def test_nbento_config_names_the_file(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBENTO_CONFIG", str(config_file))
    assert resolve_settings().port == 4000
    assert resolve_settings(default_file=config_file).sources == [f"file {config_file}"]


def test_env_beats_file_and_set_beats_env(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NBENTO_RUNNERS__CLF__BATCHING__MAX_BATCH_SIZE", "16")
    monkeypatch.setenv("NBENTO_APIS__EMBED__MAX_BATCH_SIZE", "16")
    monkeypatch.setenv("NBENTO_MAX_BODY_BYTES", "1024")
    monkeypatch.setenv("NBENTO_PORT", "4001")
    config = resolve_settings(config_file)
    assert config.runner("clf").method_batching("predict", CODE).max_batch_size == 16
    assert config.api_batching("embed").max_batch_size == 16
    assert (config.max_body_bytes, config.port, config.runner("clf").workers) == (1024, 4001, 2)

    top = resolve_settings(
        config_file,
        flags={"port": 4002, "host": None},
        set_items=["runners.clf.batching.max_batch_size=4", "apis.embed.max_batch_size=4"],
    )
    assert top.runner("clf").method_batching("predict", CODE).max_batch_size == 4
    assert top.api_batching("embed").max_batch_size == 4
    assert (top.port, top.host) == (4002, "127.0.0.1")
    assert top.sources == [
        f"file {config_file}",
        "env NBENTO_APIS__EMBED__MAX_BATCH_SIZE, NBENTO_MAX_BODY_BYTES, NBENTO_PORT, "
        "NBENTO_RUNNERS__CLF__BATCHING__MAX_BATCH_SIZE",
        "flags --port",
        "--set runners.clf.batching.max_batch_size=4 apis.embed.max_batch_size=4",
    ]


def test_a_later_layer_beats_a_more_specific_key_of_an_earlier_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text("runners:\n  clf:\n    methods:\n      predict: {max_batch_size: 64}\n")
    code = {"predict": {"max_batch_size": 2}}
    assert resolve_settings(path).runner("clf").method_batching("predict", code).max_batch_size == 64
    monkeypatch.setenv("NBENTO_RUNNERS__CLF__BATCHING__MAX_BATCH_SIZE", "16")
    config = resolve_settings(path)
    assert config.runner("clf").method_batching("predict", code).max_batch_size == 16
    # Within one layer the method's own block still wins over its runner's.
    same = ServerConfig.model_validate(
        {"runners": {"clf": {"batching": {"max_batch_size": 16}, "methods": {"predict": {"max_batch_size": 64}}}}}
    )
    assert same.runner("clf").method_batching("predict", code).max_batch_size == 64
    # One flattened file (what a Bento ships) resolves like the layers did.
    flat = ServerConfig.model_validate(config.flattened())
    assert flat.runner("clf").method_batching("predict", code).max_batch_size == 16


def test_env_names_match_runner_and_api_names_ignoring_case(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NBENTO_APIS__EMBEDTEXTS__MAX_LATENCY_MS", "2")
    monkeypatch.setenv("NBENTO_RUNNER_MAP", '{"clf": "http://127.0.0.1:3101"}')
    config = resolve_settings()
    assert config.api_batching("embedTexts").max_latency_ms == 2
    assert config.runner_map == {"clf": "http://127.0.0.1:3101"}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("NBENTO_PORT", "high", "NBENTO_PORT: Input should be a valid integer"),
        (
            "NBENTO_RUNNERS__CLF__BATCHING__MAX_BATCH",
            "3",
            "NBENTO_RUNNERS__CLF__BATCHING__MAX_BATCH: Extra inputs are not permitted",
        ),
        ("NBENTO_RUNNER_MAP", "{nope", "NBENTO_RUNNER_MAP must be JSON like"),
        ("NBENTO_APIS", "{nope", 'a whole group is JSON, e.g. NBENTO_APIS='),
    ],
)
def test_bad_env_is_a_readable_error(
    name: str, value: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(NbentoError, match=message):
        resolve_settings()


def test_an_env_name_that_is_no_setting_is_reported(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NBENTO_MAX_BODY_BYTE", "1")
    with caplog.at_level(logging.WARNING, logger="nbento.settings"):
        config = resolve_settings()
    assert "NBENTO_MAX_BODY_BYTE names no setting" in caplog.text
    assert "NBENTO_MAX_BODY_BYTES" in caplog.text  # the list of real names
    assert config.sources == []


@pytest.mark.parametrize("name", ["NBENTO_TRUST_DIR", "NBENTO_TRUSTED_STORE", "NBENTO_API_TOKEN"])
def test_variables_read_elsewhere_are_not_reported(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The image sets NBENTO_TRUSTED_STORE and golden replay NBENTO_TRUST_DIR: neither is a
    server setting, and neither may print a warning at every start."""
    monkeypatch.setenv(name, str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="nbento.settings"):
        resolve_settings()
    assert "names no setting" not in caplog.text


def test_env_layer_can_be_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBENTO_API_THREADS", "3")
    monkeypatch.setenv("NBENTO_RUNNER_MAP", "")  # empty: unset
    assert resolve_settings().api_threads == 3
    assert resolve_settings().sources == ["env NBENTO_API_THREADS"]
    assert resolve_settings(env_layer=False).api_threads == 128


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("port", "KEY=VALUE"),
        ("port=high", "port: Input should be a valid integer"),
        ("nonsense=1", "nonsense: Extra inputs are not permitted"),
        ("port.x=1", "'port' is a value"),
        ("runners.clf.batching.max_batch_size=0", "greater than or equal to 1"),
    ],
)
def test_bad_set_is_a_readable_error(item: str, message: str) -> None:
    with pytest.raises(NbentoError, match=message):
        resolve_settings(set_items=["port=3001", item])


def test_set_items_nest_and_parse_yaml() -> None:
    assert parse_set_items(["runners.a.workers=2", "access_log=false", "runners.a.isolation=process"]) == {
        "runners": {"a": {"workers": 2, "isolation": "process"}},
        "access_log": False,
    }


def test_bad_code_batching_names_the_method() -> None:
    with pytest.raises(NbentoError, match="for runner 'clf', method 'predict': max_batch_size"):
        ServerConfig().runner("clf").method_batching("predict", {"predict": {"max_batch_size": 0}})
