"""bench/soak.py --record adds its run to the "## Soak" section of RESULTS.md, newest first,
and keeps the earlier runs, the section's summary and the other sections."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import soak


def test_runs_are_added_newest_first_keeping_everything_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "RESULTS.md"
    monkeypatch.setattr(soak, "RESULTS", path)
    args = argparse.Namespace(minutes=10.0, settings=["a.b=1"])
    path.write_text("# results\n\n## Serving\n\nserving numbers\n")

    soak.record("first body", args)
    text = path.read_text()
    assert text.count("## Soak") == 1 and "serving numbers" in text
    assert "--minutes 10 --set a.b=1 --record" in text and "first body" in text

    summary = "## Soak\n\nwhat the runs say\n\n"
    path.write_text(text.replace("## Soak\n\n", summary) + "\n## Hot reload\n\nreload numbers\n")
    soak.record("second body", args)
    text = path.read_text()
    assert text.count("## Soak") == 1 and text.count("### Run of") == 2
    assert text.index("what the runs say") < text.index("second body") < text.index("first body")
    assert text.index("first body") < text.index("## Hot reload")
    assert "serving numbers" in text and "reload numbers" in text
