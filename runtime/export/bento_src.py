"""What goes into a Bento's `src/`: the service module, its manifest, the local modules it
imports, and files the user asks for (`include`), minus `exclude`, `.bentoignore` and
never-ship files. Every file that would ship is scanned for secrets first.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from runtime.errors import BuildError
from runtime.export.requirements import iter_imports
from runtime.export.secret_scan import CellMap, SecretFinding, scan_file
from runtime.service.sources import SERVICE_MANIFEST, SERVICE_MODULE

IGNORE_FILE = ".bentoignore"
# Never useful in an image and often large.
DEFAULT_IGNORES = (
    "__pycache__/",
    "*.pyc",
    ".ipynb_checkpoints/",
    ".git/",
    ".venv/",
    "venv/",
    ".mypy_cache/",
    ".pytest_cache/",
    ".ruff_cache/",
    ".DS_Store",
    IGNORE_FILE,
)


@dataclass
class IgnoreRules:
    """gitignore-like patterns: `*.csv`, `data/`, `/top-only.txt`, `!keep.csv` (later wins)."""

    patterns: list[str] = field(default_factory=list)

    @classmethod
    def for_folder(cls, root: Path, exclude: Iterable[str] = ()) -> IgnoreRules:
        patterns = list(DEFAULT_IGNORES)
        ignore_file = root / IGNORE_FILE
        if ignore_file.is_file():
            for line in ignore_file.read_text().splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    patterns.append(line)
        patterns.extend(exclude)
        return cls(patterns)

    def ignored(self, rel: str) -> bool:
        parts = rel.split("/")
        result = False
        for raw in self.patterns:
            negate = raw.startswith("!")
            pattern = raw[1:] if negate else raw
            if _matches(pattern, parts):
                result = not negate
        return result


def _matches(pattern: str, parts: list[str]) -> bool:
    dir_only = pattern.endswith("/")
    pattern = pattern.rstrip("/")
    anchored = "/" in pattern  # a leading or inner slash: relative to the service folder
    pattern = pattern.lstrip("/")
    # A directory pattern matches the files below the directory, not a file of that name.
    ends = range(1, len(parts)) if dir_only else range(1, len(parts) + 1)
    for end in ends:
        if anchored:
            if fnmatch.fnmatchcase("/".join(parts[:end]), pattern):
                return True
        elif fnmatch.fnmatchcase(parts[end - 1], pattern):
            return True
    return False


def local_imports(entry: Path, root: Path) -> set[Path]:
    """Modules and packages under `root` that `entry` imports, followed transitively."""
    found: set[Path] = set()
    queue = [entry]
    while queue:
        current = queue.pop()
        names = {module.split(".")[0] for module, _ in iter_imports(current)}
        for name in sorted(names):
            for candidate in (root / f"{name}.py", root / name):
                if candidate.is_file() and candidate not in found:
                    found.add(candidate)
                    queue.append(candidate)
                elif (candidate / "__init__.py").is_file() and candidate not in found:
                    found.add(candidate)
                    queue.extend(sorted(candidate.rglob("*.py")))
    return found


def _expand(paths: Iterable[Path]) -> set[Path]:
    files: set[Path] = set()
    for path in paths:
        if path.is_dir():
            files.update(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            files.add(path)
    return files


def select_files(
    entry: Path, include: Iterable[str] = (), exclude: Iterable[str] = ()
) -> dict[Path, str]:
    """Files to ship -> their path inside `src/` (relative to the entry's folder).

    Raises `BuildError` listing every secret found (file and line), or an include pattern
    that matched nothing (a typo would otherwise ship a broken service)."""
    root = entry.parent
    chosen: set[Path] = {entry}
    manifest = root / SERVICE_MANIFEST
    if entry.name == "service.py" and manifest.is_file():
        chosen.add(manifest)
    chosen |= _expand(local_imports(entry, root))
    for pattern in include:
        matched = list(root.glob(pattern))
        if not matched:
            raise BuildError(
                f"--include {pattern!r} matched no file under {root}; patterns are relative "
                f"to the service folder (e.g. 'data/*.csv')"
            )
        chosen |= _expand(matched)
    rules = IgnoreRules.for_folder(root, exclude)
    selected: dict[Path, str] = {}
    for path in sorted(chosen):
        rel = path.resolve().relative_to(root.resolve()).as_posix()
        if path != entry and rules.ignored(rel):
            continue
        selected[path] = rel
    cells = CellMap.from_manifest(service_manifest(entry))
    findings: list[SecretFinding] = []
    for path, rel in selected.items():
        findings.extend(scan_file(path, rel, cells if path == entry else None))
    if findings:
        shown = "; ".join(str(f) for f in findings[:10])
        more = f" (and {len(findings) - 10} more)" if len(findings) > 10 else ""
        raise BuildError(
            f"refusing to build: secrets would ship in the Bento: {shown}{more}. Read them "
            f"from the environment instead (os.environ[...], a Kubernetes secretKeyRef), or "
            f"exclude the file with --exclude / {IGNORE_FILE}"
        )
    return selected


def service_manifest(entry: Path) -> dict[str, Any] | None:
    """The `service.yaml` a capture wrote next to a generated `service.py`, if any."""
    manifest = entry.parent / SERVICE_MANIFEST
    if entry.name != SERVICE_MODULE or not manifest.is_file():
        return None
    try:
        data = yaml.safe_load(manifest.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise BuildError(
            f"cannot read {manifest} ({exc}); re-run the notebook's captured cells or "
            f"`nbento build-service NOTEBOOK` to write it again"
        ) from None
    return data if isinstance(data, dict) else None


def refuse_free_names(manifest: dict[str, Any] | None, *, allow: bool) -> None:
    """Refuse a service whose captured code reads names no captured cell defines: it imports
    (or answers) with NameError in production although the kernel, which ran the uncaptured
    cell, was fine. The capture recorded them in service.yaml, with where they are defined."""
    free = [f for f in (manifest or {}).get("free_names") or [] if isinstance(f, dict)]
    if not free or allow:
        return
    shown = "\n  ".join(str(f.get("message") or f.get("name")) for f in free)
    raise BuildError(
        f"refusing to build: the captured cells use names no captured cell defines; the "
        f"service would fail with NameError in production:\n  {shown}\nCapture the cells "
        f"that define them (or move the definitions into captured cells), or build anyway "
        f"with --allow-free-names"
    )
