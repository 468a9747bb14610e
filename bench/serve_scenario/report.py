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


@dataclass(frozen=True)
class AtLeastTimes:
    """OK req/s at least `times` the reference `ref` (another server's best, or the limit)."""

    ref: str
    text: str       # formatted with ok, ratio, ref; "(need ≥ Nx)" is appended
    times: float

    def check(self, row: Row, refs: dict[str, float | None]) -> tuple[str, bool]:
        ok, ref = row.ok_rps, refs[self.ref]
        assert ok is not None and ref  # Target.verdict checked both
        text = self.text.format(ok=ok, ratio=ok / ref, ref=ref)
        return f"{text} (need ≥ {self.times:g}x)", ok >= self.times * ref


@dataclass(frozen=True)
class AtMost:
    """A row field at most `limit`; a field that was not measured misses."""

    field: str      # a Row attribute
    text: str       # formatted with the value, e.g. "p95 {} ms"; "(need ≤ N)" is appended
    limit: float
    digits: int = 1

    def check(self, row: Row, refs: dict[str, float | None]) -> tuple[str, bool]:
        value = getattr(row, self.field)
        text = self.text.format(_f(value, self.digits))
        return f"{text} (need ≤ {self.limit:g})", value is not None and value <= self.limit


@dataclass(frozen=True)
class NoErrors:
    """No non-2xx answer and no socket error."""

    def check(self, row: Row, refs: dict[str, float | None]) -> tuple[str, bool]:
        return (f"errors {row.non2xx} non-2xx + {row.socket_errors} socket (need 0)",
                row.non2xx == 0 and row.socket_errors == 0)


@dataclass(frozen=True)
class Target:
    """One of issue 12's targets: the nbento row it judges, the references it needs, its checks."""

    title: str
    scenario: str                   # "minilm" or "light": which table's row and references
    setting_prefix: str             # the judged nbento row's setting starts with this
    needs: str                      # said when the row or a reference is missing
    checks: tuple[AtLeastTimes | AtMost | NoErrors, ...]

    def verdict(self, rows: list[Row], refs: dict[str, float | None]) -> str:
        row = next((r for r in rows if r.server == "nbento" and r.scenario == self.scenario
                    and r.setting.startswith(self.setting_prefix)), None)
        wanted = {c.ref for c in self.checks if isinstance(c, AtLeastTimes)}
        if row is None or row.error or row.ok_rps is None or not all(refs.get(n) for n in wanted):
            return f"**{self.title}: not measured** ({self.needs})."
        results = [check.check(row, refs) for check in self.checks]
        verdict = "MET" if all(ok for _, ok in results) else "MISSED"
        parts = "; ".join(f"{text} — {'ok' if ok else 'missed'}" for text, ok in results)
        return f"**{self.title}: {verdict}.** {parts}."


# Issue 12's targets: one row per target, one entry per measure and its threshold.
TARGETS = (
    Target("Target (MiniLM, nbento at its defaults)", "minilm", "defaults",
           "the nbento defaults row, a LitServe row and the limit are all needed", (
               AtLeastTimes("LitServe", "{ok:.1f} OK req/s = {ratio:.2f}x LitServe's best {ref:.1f}", 1.15),
               AtLeastTimes("limit", "= {ratio:.2f}x the limit {ref:.1f}", 0.85),
               AtMost("p95", "p95 {} ms", 220, digits=0),
               NoErrors(),
               AtMost("peak_rss_mib", "peak RSS {} MiB", 900, digits=0),
               AtMost("start_s", "start to first answer {} s", 6),
           )),
    Target("Target (light, TF-IDF + LogisticRegression)", "light", "",
           "the nbento, LitServe and FastAPI light rows are all needed", (
               AtLeastTimes("LitServe", "nbento {ok:.1f} OK req/s = {ratio:.2f}x LitServe {ref:.1f}", 1),
               AtLeastTimes("FastAPI", "= {ratio:.2f}x plain FastAPI {ref:.1f}", 0.8),
               NoErrors(),
           )),
)


def target_verdict(rows: list[Row], refs: dict[str, float | None],
                   light_refs: dict[str, float | None]) -> str:
    """Issue 12's targets (`TARGETS`) for nbento at its defaults, stated as met or missed with
    the numbers."""
    by_scenario = {"minilm": refs, "light": light_refs}
    return "\n\n".join(target.verdict(rows, by_scenario[target.scenario]) for target in TARGETS)


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
