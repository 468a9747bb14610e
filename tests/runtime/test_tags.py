"""Tags and the naming rule; versions unique and time-ordered, across processes too."""

from __future__ import annotations

import subprocess
import sys

import pytest

from runtime.errors import InvalidName
from runtime.tags import Tag, new_version, validate_name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("clf", Tag("clf", None)),
        ("clf:latest", Tag("clf", None)),
        ("clf:20260101-000000-000001-00042", Tag("clf", "20260101-000000-000001-00042")),
        ("my_model.v2-x", Tag("my_model.v2-x", None)),
    ],
)
def test_parse_accepts_the_three_forms(text: str, expected: Tag) -> None:
    assert Tag.parse(text) == expected
    assert Tag.parse(expected) is expected


@pytest.mark.parametrize("bad", ["../x", "A B", "", "x" * 300, "a/b", "-x", "a..b", "Clf"])
def test_bad_names_are_refused_with_the_rule(bad: str) -> None:
    with pytest.raises(InvalidName, match=r"must match \[a-z0-9\]"):
        validate_name(bad)


@pytest.mark.parametrize("bad", ["", "clf:../../etc", "clf:A", ":v1"])
def test_bad_tags_are_refused(bad: str) -> None:
    with pytest.raises(InvalidName):
        Tag.parse(bad)


def test_long_names_are_shortened_in_the_message() -> None:
    with pytest.raises(InvalidName) as info:
        validate_name("x" * 300)
    assert len(str(info.value)) < 200


def test_str_never_hides_latest() -> None:
    assert str(Tag("clf")) == "clf:latest"
    assert str(Tag("clf", "v1")) == "clf:v1"


def test_versions_are_unique_and_ordered_within_a_process() -> None:
    versions = [new_version() for _ in range(2000)]
    assert len(set(versions)) == len(versions)
    assert versions == sorted(versions)
    assert all(validate_name(v, "version") == v for v in versions[:5])


def test_versions_from_two_processes_differ() -> None:
    code = "from runtime.tags import new_version; print(new_version())"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert len(set(outs)) == 2 and all(outs)
