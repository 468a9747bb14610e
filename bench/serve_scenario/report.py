"""The serving benchmark's table and its section in bench/RESULTS.md.

Only the "## Serving" section is rewritten; other sections (other engineers' benchmarks) are
kept byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SECTION = "## Serving"
RESULTS_HEADER = "# nbento benchmark results\n\nEach section is written by its benchmark script with `--record`.\n"


@dataclass
class Row:
    server: str                     # "nbento", "FastAPI", "BentoML 1.4.39", "in-process ceiling"
    setting: str                    # "off", "10 ms/32", "batch 32", ...
    ceiling_key: str = "32"         # which ceiling this row is compared with
    ok_rps: float | None = None     # items/s for the ceiling rows
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    non2xx: int | None = None
    non2xx_by_status: dict[int, int] | None = None
    socket_errors: int | None = None
    mean_batch: float | None = None
    cpu_cores: float | None = None
    cpu_ms_per_ok: float | None = None  # server CPU per OK request (ceiling: per item)
    other_cores: float | None = None  # CPU used by everything else on the machine meanwhile
    load1: float | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)


def _f(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def table(rows: list[Row], ceilings: dict[str, float]) -> str:
    head = ("| server | batching | OK req/s | vs ceiling | p50 ms | p95 ms | p99 ms | non-2xx "
            "| socket err | mean batch | server CPU cores | CPU ms per OK | other CPU cores | load1 |")
    lines = [head, "|" + "---|" * 14]
    for r in rows:
        ceiling = ceilings.get(r.ceiling_key)
        ratio = f"{100 * r.ok_rps / ceiling:.0f}%" if r.ok_rps is not None and ceiling else "—"
        ok = _f(r.ok_rps)
        if r.error:
            ok = f"failed: {r.error[:160]}"
        non2xx = _f(r.non2xx)
        if r.non2xx and r.non2xx_by_status:
            non2xx += " (" + ", ".join(f"{s}: {n}" for s, n in sorted(r.non2xx_by_status.items())) + ")"
        lines.append(
            f"| {r.server} | {r.setting} | {ok} | {ratio} | {_f(r.p50)} | {_f(r.p95)} | {_f(r.p99)} "
            f"| {non2xx} | {_f(r.socket_errors)} | {_f(r.mean_batch)} | {_f(r.cpu_cores, 2)} "
            f"| {_f(r.cpu_ms_per_ok, 2)} | {_f(r.other_cores, 2)} | {_f(r.load1, 2)} |"
        )
    notes = [f"- {r.server} {r.setting}: {note}" for r in rows for note in r.notes]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines)


def target_verdict(rows: list[Row], ceilings: dict[str, float]) -> str:
    """The issue's target for nbento at 10 ms/32, stated as met or missed with the numbers."""
    row = next((r for r in rows if r.server == "nbento" and r.setting == "10 ms/32"), None)
    ceiling = ceilings.get("32")
    if row is None or row.error or row.ok_rps is None or not ceiling:
        reason = row.error[:200] if row and row.error else "row not measured in this run"
        return f"**Target (nbento at 10 ms/32 ≥ 80% of ceiling, zero errors, p95 < 300 ms): not measured** ({reason})."
    checks = {
        f"throughput {row.ok_rps:.1f} req/s = {100 * row.ok_rps / ceiling:.0f}% of ceiling {ceiling:.1f} (need ≥ 80%)":
            row.ok_rps >= 0.8 * ceiling,
        f"errors: {row.non2xx} non-2xx + {row.socket_errors} socket (need 0)":
            row.non2xx == 0 and row.socket_errors == 0,
        f"p95 {row.p95:.0f} ms (need < 300 ms)": row.p95 is not None and row.p95 < 300,
    }
    verdict = "MET" if all(checks.values()) else "MISSED"
    parts = "; ".join(f"{text} — {'ok' if ok else 'missed'}" for text, ok in checks.items())
    return f"**Target (nbento at 10 ms/32): {verdict}.** {parts}."


def write_section(path: Path, body: str) -> None:
    """Replace (or append) the "## Serving" section of RESULTS.md, leaving the rest alone."""
    text = path.read_text() if path.exists() else RESULTS_HEADER
    section = f"{SECTION}\n\n{body.strip()}\n"
    start = text.find(f"\n{SECTION}\n")
    if start == -1 and text.startswith(f"{SECTION}\n"):
        start = 0
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        begin = start + 1 if text[start] == "\n" else start
        nxt = text.find("\n## ", begin + len(SECTION))
        rest = text[nxt + 1:] if nxt != -1 else ""
        text = text[:begin] + section + ("\n" + rest if rest else "")
    path.write_text(text)
