"""The serving benchmark's tables and its sections in bench/RESULTS.md.

Only the "## Serving" section (or the burner run's own section) is rewritten; other sections
(other engineers' benchmarks) are kept byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SECTION = "## Serving"
BURNER_SECTION = "## Serving with a CPU burner"
RESULTS_HEADER = "# nbento benchmark results\n\nEach section is written by its benchmark script with `--record`.\n"


@dataclass
class Row:
    server: str                     # "nbento", "FastAPI", "LitServe 0.2.19", "the limit", ...
    setting: str                    # "off", "10 ms/32", "batch 32", ...
    scenario: str = "minilm"        # "minilm" (the main table) or "light"
    ok_rps: float | None = None     # items/s for the in-process rows
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    non2xx: int | None = None
    non2xx_by_status: dict[int, int] | None = None
    socket_errors: int | None = None
    mean_batch: float | None = None
    cpu_cores: float | None = None
    cpu_ms_per_ok: float | None = None  # server CPU per OK request (in-process rows: per item)
    other_cores: float | None = None  # CPU used by everything else on the machine meanwhile
    peak_rss_mib: float | None = None  # the server's whole process tree, summed RSS, sampled
    peak_pss_mib: float | None = None  # the same, PSS (shared pages counted once)
    start_s: float | None = None      # start to first 200 answer
    load1: float | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)


def _f(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def table(rows: list[Row], refs: dict[str, float | None]) -> str:
    """One Markdown table; a "vs NAME" column per reference (OK req/s / the reference's)."""
    names = list(refs)
    head = ("| server | batching | OK req/s | " + " | ".join(f"vs {n}" for n in names)
            + " | p50 ms | p95 ms | p99 ms | non-2xx | socket err | mean batch | server CPU cores "
            "| CPU ms per OK | other CPU cores | peak RSS MiB | peak PSS MiB | start s | load1 |")
    lines = [head, "|" + "---|" * (16 + len(names))]
    for r in rows:
        ratios = " | ".join(
            f"{r.ok_rps / ref:.2f}x" if r.ok_rps is not None and ref else "—" for ref in refs.values()
        )
        ok = _f(r.ok_rps)
        if r.error:
            ok = f"failed: {r.error[:160]}"
        non2xx = _f(r.non2xx)
        if r.non2xx and r.non2xx_by_status:
            non2xx += " (" + ", ".join(f"{s}: {n}" for s, n in sorted(r.non2xx_by_status.items())) + ")"
        lines.append(
            f"| {r.server} | {r.setting} | {ok} | {ratios} | {_f(r.p50)} | {_f(r.p95)} | {_f(r.p99)} "
            f"| {non2xx} | {_f(r.socket_errors)} | {_f(r.mean_batch)} | {_f(r.cpu_cores, 2)} "
            f"| {_f(r.cpu_ms_per_ok, 2)} | {_f(r.other_cores, 2)} | {_f(r.peak_rss_mib, 0)} "
            f"| {_f(r.peak_pss_mib, 0)} | {_f(r.start_s)} | {_f(r.load1, 2)} |"
        )
    notes = [f"- {r.server} {r.setting}: {note}" for r in rows for note in r.notes]
    if notes:
        lines += ["", "Notes:", *notes]
    return "\n".join(lines)


def _verdict(title: str, checks: dict[str, bool]) -> str:
    verdict = "MET" if all(checks.values()) else "MISSED"
    parts = "; ".join(f"{text} — {'ok' if ok else 'missed'}" for text, ok in checks.items())
    return f"**{title}: {verdict}.** {parts}."


def target_verdict(rows: list[Row], refs: dict[str, float | None],
                   light_refs: dict[str, float | None]) -> str:
    """Issue 12's targets for nbento at its defaults, stated as met or missed with the numbers."""
    out = []
    row = next((r for r in rows if r.server == "nbento" and r.scenario == "minilm"
                and r.setting.startswith("defaults")), None)
    lit, limit = refs.get("LitServe"), refs.get("limit")
    if row is None or row.error or row.ok_rps is None or not lit or not limit:
        out.append("**Target (MiniLM, nbento at its defaults): not measured** (the nbento defaults "
                   "row, a LitServe row and the limit are all needed).")
    else:
        out.append(_verdict("Target (MiniLM, nbento at its defaults)", {
            f"{row.ok_rps:.1f} OK req/s = {row.ok_rps / lit:.2f}x LitServe's best {lit:.1f} (need ≥ 1.15x)":
                row.ok_rps >= 1.15 * lit,
            f"= {row.ok_rps / limit:.2f}x the limit {limit:.1f} (need ≥ 0.85x)": row.ok_rps >= 0.85 * limit,
            f"p95 {_f(row.p95, 0)} ms (need ≤ 220)": row.p95 is not None and row.p95 <= 220,
            f"errors {row.non2xx} non-2xx + {row.socket_errors} socket (need 0)":
                row.non2xx == 0 and row.socket_errors == 0,
            f"peak RSS {_f(row.peak_rss_mib, 0)} MiB (need ≤ 900)":
                row.peak_rss_mib is not None and row.peak_rss_mib <= 900,
            f"start to first answer {_f(row.start_s)} s (need ≤ 6)":
                row.start_s is not None and row.start_s <= 6,
        }))
    light = next((r for r in rows if r.server == "nbento" and r.scenario == "light"), None)
    lit, plain = light_refs.get("LitServe"), light_refs.get("FastAPI")
    if light is None or light.error or light.ok_rps is None or not lit or not plain:
        out.append("**Target (light, TF-IDF + LogisticRegression): not measured** (the nbento, "
                   "LitServe and FastAPI light rows are all needed).")
    else:
        out.append(_verdict("Target (light, TF-IDF + LogisticRegression)", {
            f"nbento {light.ok_rps:.1f} OK req/s = {light.ok_rps / lit:.2f}x LitServe {lit:.1f} (need ≥ 1x)":
                light.ok_rps >= lit,
            f"= {light.ok_rps / plain:.2f}x plain FastAPI {plain:.1f} (need ≥ 0.8x)":
                light.ok_rps >= 0.8 * plain,
            f"errors {light.non2xx} non-2xx + {light.socket_errors} socket (need 0)":
                light.non2xx == 0 and light.socket_errors == 0,
        }))
    return "\n\n".join(out)


def write_section(path: Path, body: str, section: str = SECTION) -> None:
    """Replace (or append) `section` ("## Serving", or the burner run's own section) of
    RESULTS.md, leaving the rest alone."""
    text = path.read_text() if path.exists() else RESULTS_HEADER
    block = f"{section}\n\n{body.strip()}\n"
    start = text.find(f"\n{section}\n")
    if start == -1 and text.startswith(f"{section}\n"):
        start = 0
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + block
    else:
        begin = start + 1 if text[start] == "\n" else start
        nxt = text.find("\n## ", begin + len(section))
        rest = text[nxt + 1:] if nxt != -1 else ""
        text = text[:begin] + block + ("\n" + rest if rest else "")
    path.write_text(text)
