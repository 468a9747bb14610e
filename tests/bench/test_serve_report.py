"""bench/serve_scenario/report.py: the serving section of RESULTS.md is rewritten in place
without touching other engineers' sections, and the issue's target is judged correctly."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "serve_scenario"))

from report import Row, table, target_verdict, write_section


def test_section_created_then_replaced_keeping_other_sections(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    write_section(path, "first run")
    assert path.read_text().startswith("# nbento benchmark results")
    path.write_text(path.read_text() + "\n## Store\n\nstore numbers\n")
    path.write_text("# top\n\n## Batcher\n\nb\n\n" + path.read_text().split("\n", 1)[1])

    write_section(path, "second run\n\n### detail")

    text = path.read_text()
    assert "first run" not in text
    assert text.count("## Serving") == 1
    assert "second run\n\n### detail\n" in text
    assert "## Store\n\nstore numbers\n" in text
    assert "## Batcher\n\nb\n" in text


def _nbento(ok_rps: float, non2xx: int = 0, p95: float = 120.0) -> Row:
    return Row("nbento", "10 ms/32", ok_rps=ok_rps, p50=50.0, p95=p95, p99=p95,
               non2xx=non2xx, socket_errors=0)


@pytest.mark.parametrize(
    ("row", "verdict"),
    [
        (_nbento(400.0), "MET"),
        (_nbento(390.0), "MISSED"),  # 78% of 500
        (_nbento(450.0, non2xx=1), "MISSED"),
        (_nbento(450.0, p95=300.0), "MISSED"),
    ],
)
def test_target_verdict(row: Row, verdict: str) -> None:
    assert f"**Target (nbento at 10 ms/32): {verdict}.**" in target_verdict([row], {"32": 500.0})


def test_failed_row_is_not_measured_and_table_shows_the_reason() -> None:
    row = Row("nbento", "10 ms/32", error="server exited with 1")
    assert "not measured" in target_verdict([row], {"32": 500.0})
    assert "failed: server exited with 1" in table([row], {"32": 500.0})
