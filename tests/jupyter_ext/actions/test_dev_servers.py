"""What Try it prefills (example bodies from JSON schemas) and how reload errors are worded."""

from __future__ import annotations

import pytest

from jupyter_ext.actions.dev_servers import example_for, plain_reload_error
from jupyter_ext.actions.export_job import ExportOptions
from runtime.errors import NbentoError


def test_examples_follow_the_schema() -> None:
    components = {"Ticket": {"type": "object", "properties": {
        "text": {"type": "string"}, "priority": {"type": "integer", "default": 3},
        "tags": {"type": "array", "items": {"type": "string"}},
        "due": {"anyOf": [{"type": "null"}, {"type": "number"}]},
    }}}
    assert example_for({"$ref": "#/components/schemas/Ticket"}, components) == {
        "text": "text", "priority": 3, "tags": ["text"], "due": 0.0,
    }
    assert example_for({"type": "array", "items": {"type": "string"}}, {}) == ["text"]
    assert example_for({"type": "boolean", "examples": [True]}, {}) is True


def test_reload_errors_read_as_a_sentence() -> None:
    assert plain_reload_error(None) is None
    text = plain_reload_error({"message": "NameError: name 'x' is not defined",
                               "file": "/nb/.nbento/svc/service.py", "line": 12})
    assert text is not None
    assert text.startswith("The last code change did not load (service.py, line 12): NameError")
    assert "previous version" in text


def test_export_options_refuse_what_they_do_not_know() -> None:
    assert ExportOptions.from_json({"image": " repo/app:1 "}).image == "repo/app:1"
    for bad, needle in [({"gpu": 1}, "unknown export options: gpu"),
                        ({"split_runners": "no"}, "split_runners must be true or false"),
                        ({"image": "-x"}, "image must look like"), ({"image": 3}, "image must be a string")]:
        with pytest.raises(NbentoError, match=needle):
            ExportOptions.from_json(bad)
