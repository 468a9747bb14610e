"""Times as the notebook side writes them (the widget, `%nbento status`), the same rule as the
JupyterLab panel's `formatMs` in labextension/src/format.ts."""

from __future__ import annotations

import pytest

from jupyter_ext.kernel.durations import human_ms
from jupyter_ext.kernel.panel import reload_text


@pytest.mark.parametrize(("ms", "text"), [
    (None, "-"), (0.42, "0.4 ms"), (3.21, "3.2 ms"), (120.4, "120 ms"), (999.4, "999 ms"),
    (1430.0, "1.4 s"), (65_000.0, "65.0 s"),
])
def test_human_ms(ms: float | None, text: str) -> None:
    assert human_ms(ms) == text


def test_reload_text_says_what_is_true() -> None:
    assert reload_text({}) == "not loaded yet"
    assert reload_text({"loaded_at": "2026-11-29T23:10:04.123+00:00", "last_reload_ms": None}) == (
        "loaded 23:10:04, no reload since the start"
    )
    assert reload_text({"loaded_at": "2026-11-29T23:10:04+00:00", "last_reload_ms": 83.6}) == (
        "loaded 23:10:04 (reload took 84 ms)"
    )


def test_the_panel_and_the_widget_use_one_rule() -> None:
    from pathlib import Path

    source = (Path(__file__).resolve().parents[3] / "labextension" / "src" / "format.ts").read_text()
    # the same thresholds in both writers: below 10 ms one decimal, below 1 s whole ms, then s
    assert "ms < 10" in source and "ms < 1000" in source and "(ms / 1000).toFixed(1)" in source
    assert "'KiB', 'MiB', 'GiB'" in source
