"""Which credential the Jupyter proxy passes on to an nbento server (`api_authorization`)."""

from __future__ import annotations

from jupyter_ext.server.proxy import api_authorization

OWN = {"Authorization": "Bearer from-jupyters-environment"}


def test_the_jupyter_servers_own_api_token_wins() -> None:
    assert api_authorization("Bearer typed-in-docs", "jupyter-token", OWN) == OWN


def test_a_bearer_token_from_the_docs_authorize_button_is_passed_on() -> None:
    assert api_authorization("Bearer typed-in-docs", "jupyter-token", {}) == {
        "Authorization": "Bearer typed-in-docs"}
    assert api_authorization("bearer  typed-in-docs ", None, {}) == {
        "Authorization": "Bearer typed-in-docs"}


def test_jupyters_own_credential_never_reaches_the_server() -> None:
    assert api_authorization("token jupyter-token", "jupyter-token", {}) == {}
    assert api_authorization("Bearer jupyter-token", "jupyter-token", {}) == {}
    assert api_authorization("Basic dXNlcjpwYXNz", "jupyter-token", {}) == {}
    assert api_authorization("", "jupyter-token", {}) == {}
    assert api_authorization("Bearer ", "jupyter-token", {}) == {}
