"""How the notebook side writes a duration, the same way the JupyterLab panel does
(labextension/src/format.ts `formatMs`): `3.2 ms` below 10 ms, `120 ms` below a second, `1.4 s`
above. Sizes have their one writer too: `runtime.store.artifacts.human_size` (KiB, MiB)."""

from __future__ import annotations


def human_ms(ms: float | None) -> str:
    """`human_ms(3.21)` -> '3.2 ms', `human_ms(120.4)` -> '120 ms', `human_ms(1430)` -> '1.4 s'."""
    if ms is None:
        return "-"
    if ms < 10:
        return f"{ms:.1f} ms"
    if ms < 1000:
        return f"{ms:.0f} ms"
    return f"{ms / 1000:.1f} s"
