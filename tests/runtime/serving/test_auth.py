"""`runtime.serving.auth` without a server: where the token comes from, what counts as a local
name, and which requests the guard refuses (the same checks over real HTTP are in
test_security_http.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.errors import Forbidden, NbentoError, Unauthorized
from runtime.serving.auth import HttpGuard, api_token, auth_headers, host_name, is_loopback
from runtime.settings import ServerConfig


def test_the_token_comes_from_the_variable_or_a_file(tmp_path: Path) -> None:
    assert api_token({}) is None and auth_headers({}) == {}
    assert api_token({"NBENTO_API_TOKEN": " abc \n"}) == "abc"
    secret = tmp_path / "token"
    secret.write_text("from-file\n")
    assert api_token({"NBENTO_API_TOKEN_FILE": str(secret)}) == "from-file"
    assert auth_headers({"NBENTO_API_TOKEN_FILE": str(secret)}) == {
        "Authorization": "Bearer from-file"
    }
    with pytest.raises(NbentoError, match="set one of them"):
        api_token({"NBENTO_API_TOKEN": "a", "NBENTO_API_TOKEN_FILE": str(secret)})
    with pytest.raises(NbentoError, match="set but empty"):
        api_token({"NBENTO_API_TOKEN": "  "})
    secret.write_text("\n")
    with pytest.raises(NbentoError, match="file is empty"):
        api_token({"NBENTO_API_TOKEN_FILE": str(secret)})
    with pytest.raises(NbentoError, match="cannot read"):
        api_token({"NBENTO_API_TOKEN_FILE": str(tmp_path / "nope")})


@pytest.mark.parametrize(
    ("value", "name", "local"),
    [
        ("localhost", "localhost", True),
        ("localhost:3000", "localhost", True),
        ("127.0.0.1:80", "127.0.0.1", True),
        ("127.9.8.7", "127.9.8.7", True),
        ("[::1]:3000", "::1", True),
        ("[::1]", "::1", True),
        ("LOCALHOST", "localhost", True),
        ("localhost.evil.example", "localhost.evil.example", False),
        ("127.0.0.1.nip.io", "127.0.0.1.nip.io", False),
        ("0.0.0.0", "0.0.0.0", False),
        ("10.1.2.3:3000", "10.1.2.3", False),
        ("[fe80::1]:80", "fe80::1", False),
    ],
)
def test_local_names(value: str, name: str, local: bool) -> None:
    assert host_name(value) == name
    assert is_loopback(name) is local


def scope(path: str = "/classify", **headers: str) -> dict[str, object]:
    return {
        "path": path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }


def test_the_guard_on_a_container_bind_checks_only_the_token() -> None:
    config = ServerConfig.model_validate({"host": "0.0.0.0"})
    guard = HttpGuard.for_server(config, {"NBENTO_API_TOKEN": "t0k"})
    assert guard.refusal(scope(Host="api.example.com", Authorization="Bearer t0k")) is None
    assert guard.refusal(scope(Origin="https://any.example", Authorization="bearer t0k")) is None
    assert isinstance(guard.refusal(scope(Host="api.example.com")), Unauthorized)
    assert guard.refusal(scope(Authorization="Bearer t0k ")) is None
    assert isinstance(guard.refusal(scope(Authorization="Bearer t0")), Unauthorized)
    assert guard.refusal(scope("/readyz", Host="10.0.0.5:3000")) is None
    assert isinstance(guard.refusal(scope("/metrics")), Unauthorized)


def test_the_guard_on_a_loopback_bind_refuses_foreign_sites() -> None:
    guard = HttpGuard.for_server(ServerConfig.model_validate({}), {})
    assert guard.refusal(scope(Host="127.0.0.1:3000", Origin="http://localhost:8888")) is None
    assert isinstance(guard.refusal(scope(Host="rebind.evil.example")), Forbidden)
    assert isinstance(guard.refusal(scope(Host="localhost", Origin="null")), Forbidden)
    assert isinstance(guard.refusal(scope()), Forbidden)  # no Host at all
    assert guard.refusal(scope("/livez", Host="rebind.evil.example")) is None
