"""Refuse to put secrets into a Bento: key and credential files by name, and token-looking
literals in the text that would ship (the captured code first of all).

A Bento is handed to another team and baked into images that end up in registries, so a
leaked key there is hard to take back. A build that finds one fails with the file and line;
the fix is to read the value from the environment (a Kubernetes `secretKeyRef`) instead.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# File names that hold credentials whatever their content.
SECRET_FILE_PATTERNS = (
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
    ".netrc",
    ".pgpass",
    ".pypirc",
    ".npmrc",
    ".git-credentials",
    "credentials.json",
    "service-account*.json",
)
# Templates that document variables without values are fine to ship.
_ALLOWED_FILES = (".env.example", ".env.sample", ".env.template")

# (description, pattern). Patterns are specific enough to keep false alarms rare.
TOKEN_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("private key block", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    ("AWS access key id", re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b")),
    (
        "AWS secret access key",
        re.compile(r"(?i)aws_?secret_?access_?key\s*[:=]\s*['\"]?[A-Za-z0-9/+=]{40}\b"),
    ),
    ("API key (sk-...)", re.compile(r"\bsk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_-]{20,}")),
    ("GitHub token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})")),
    ("GitLab token", re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}")),
    ("Slack token", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}")),
    ("Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    ("Hugging Face token", re.compile(r"\bhf_[A-Za-z0-9]{30,}\b")),
    ("Stripe key", re.compile(r"\b(?:sk|rk)_live_[A-Za-z0-9]{20,}")),
    (
        "hard-coded credential",
        re.compile(
            r"(?i)\b[A-Za-z_]*(?:password|passwd|pwd|secret|api_?key|access_?token|auth_?token"
            r"|secret_?key|private_?key|client_?secret)[A-Za-z_]*['\"]?\s*[:=]\s*"
            r"[rbuf]?(['\"])(?!\s*\1)(?![$<{%])[^'\"\n]{4,}\1"
        ),
    ),
)


@dataclass(frozen=True)
class SecretFinding:
    """One secret that would ship; never carries the secret itself. For a module generated
    from a notebook, `cell` and `cell_line` say where the user edits it."""

    path: str  # as the user knows it (relative to the source folder)
    line: int | None
    kind: str
    origin: str | None = None  # e.g. "notebook cell 1a2b" when the cell's number is unknown
    cell: str | None = None  # "notebook cell 3 (preprocess)"
    cell_line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        if self.cell:
            return f"{self.cell} line {self.cell_line}: {self.kind} (generated {where})"
        origin = f" (from {self.origin})" if self.origin else ""
        return f"{where}: {self.kind}{origin}"


@dataclass(frozen=True)
class CellMap:
    """Captured cells of a generated module, from its service.yaml `cells` list: cell id ->
    (label, cell line of the first module line after the cell's marker comment)."""

    cells: dict[str, tuple[str, int]] = field(default_factory=dict)

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any] | None) -> CellMap | None:
        entries = (manifest or {}).get("cells")
        if not isinstance(entries, list):
            return None
        cells = {}
        for entry in entries:
            if not isinstance(entry, dict) or "cell_id" not in entry:
                continue
            index = entry.get("index")
            where = f"cell {index + 1}" if isinstance(index, int) else f"cell {entry['cell_id']}"
            what = f"{entry.get('kind')} {entry['name']}" if entry.get("name") else entry.get("kind")
            first = entry.get("first_line")
            cells[str(entry["cell_id"])] = (
                f"notebook {where} ({what})", first if isinstance(first, int) else 1
            )
        return cls(cells)


def is_secret_file(name: str) -> bool:
    """True for file names that hold credentials (`.env`, `*.pem`, `id_rsa`, ...)."""
    base = name.rsplit("/", 1)[-1]
    if base in _ALLOWED_FILES:
        return False
    return any(fnmatch.fnmatchcase(base, pattern) for pattern in SECRET_FILE_PATTERNS)


# The generated service module marks where each captured cell starts.
_CELL_MARKER = re.compile(r"^# ---- .*\(cell (\S+)\) ----$")


def scan_text(text: str, shown_path: str, cells: CellMap | None = None) -> list[SecretFinding]:
    """Token-looking literals in `text`, one finding per line; in a module generated from a
    notebook, each finding also names the captured cell it came from and, with the module's
    `cells` map, the notebook cell number and the line within that cell."""
    findings: list[SecretFinding] = []
    cell: str | None = None
    marker_line = 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        marker = _CELL_MARKER.match(line)
        if marker:
            cell, marker_line = marker.group(1), lineno
            continue
        for kind, pattern in TOKEN_PATTERNS:
            if pattern.search(line):
                known = cells.cells.get(cell) if cells is not None and cell else None
                if known is not None:
                    label, first = known
                    findings.append(SecretFinding(
                        shown_path, lineno, kind, cell=label,
                        cell_line=lineno - marker_line - 1 + first,
                    ))
                else:
                    origin = f"notebook cell {cell}" if cell else None
                    findings.append(SecretFinding(shown_path, lineno, kind, origin))
                break
    return findings


def scan_file(path: Path, shown_path: str, cells: CellMap | None = None) -> list[SecretFinding]:
    """Findings for one file that would ship: its name, then (for text) its content."""
    if is_secret_file(shown_path):
        return [SecretFinding(shown_path, None, "credential file (never shipped in a Bento)")]
    try:
        data = path.read_bytes()
    except OSError:
        return []
    if b"\0" in data[:8192]:
        return []  # binary: not captured code
    return scan_text(data.decode("utf-8", errors="replace"), shown_path, cells)
