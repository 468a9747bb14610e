"""Models the service code loads from the store itself (`load("NAME:latest")`,
`get("NAME:latest").load()`), not through a `runner(...)` handle. The Bento must carry them
like the runners' models, pinned to the version `latest` means at build time; a tag only known
when the code runs cannot be pinned, so the build refuses it with the cell and the fix.

    loads = find_model_loads(module_text)   # [ModelLoad(tag='tfidf:latest', line=14, ...)]
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import BuildError
from runtime.export.secret_scan import CellMap

# Where nbento's store functions can be imported from, and the names that read the store.
_MODULES = ("nbento", "runtime", "runtime.store", "runtime.store.model_store")
_STORE_READS = ("load", "get")


@dataclass(frozen=True)
class ModelLoad:
    """One store read in the code: its tag when the code spells it as a literal (or as a
    module-level constant), else None; `call` is the call as written, for messages."""

    tag: str | None
    line: int
    call: str


def find_model_loads(text: str) -> list[ModelLoad]:
    """Every call of nbento's `load` / `get` in `text` (a module's source), in line order."""
    tree = ast.parse(text)
    functions, modules = _bound_names(tree)
    constants = _string_constants(tree)
    found: list[ModelLoad] = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not _is_store_read(node.func, functions, modules):
            continue
        arg = node.args[0] if node.args else next(
            (k.value for k in node.keywords if k.arg == "tag"), None
        )
        tag: str | None = None
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            tag = arg.value
        elif isinstance(arg, ast.Name):
            tag = constants.get(arg.id)
        found.append(ModelLoad(tag, node.lineno, ast.unparse(node)))
    return sorted(found, key=lambda load: load.line)


def _bound_names(tree: ast.Module) -> tuple[set[str], set[str]]:
    """Names bound to nbento's store reads (`from nbento import load as load_model`) and to
    the modules that hold them (`import nbento as nb`)."""
    functions: set[str] = set()
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in _MODULES and node.level == 0:
            functions.update(a.asname or a.name for a in node.names if a.name in _STORE_READS)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in _MODULES:
                    # `import runtime.store` binds `runtime`; the dotted path is matched below
                    modules.add(alias.asname or alias.name)
    return functions, modules


def _is_store_read(func: ast.expr, functions: set[str], modules: set[str]) -> bool:
    if isinstance(func, ast.Name):
        return func.id in functions
    if isinstance(func, ast.Attribute) and func.attr in _STORE_READS:
        owner = _dotted(func.value)
        return owner is not None and (owner in modules or owner in _MODULES)
    return False


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base is not None else None
    return None


def _string_constants(tree: ast.Module) -> dict[str, str]:
    """Names bound exactly once in the module, by a top-level `TAG = "tfidf:latest"`."""
    stores: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            stores[node.id] = stores.get(node.id, 0) + 1
    constants: dict[str, str] = {}
    for stmt in tree.body:
        if (
            isinstance(stmt, ast.Assign)
            and len(stmt.targets) == 1
            and isinstance(stmt.targets[0], ast.Name)
            and stores.get(stmt.targets[0].id) == 1
            and isinstance(stmt.value, ast.Constant)
            and isinstance(stmt.value.value, str)
        ):
            constants[stmt.targets[0].id] = stmt.value.value
    return constants


_CELL_MARKER = re.compile(r"^# ---- .*\(cell (\S+)\) ----$")


@dataclass(frozen=True)
class ShippedLoad:
    """A store read in a file that ships, with where the user wrote it."""

    load: ModelLoad
    where: str  # "notebook cell 3 (preprocess) line 2" or "helpers.py line 7"


def shipped_loads(files: Mapping[Path, str], cells: CellMap | None) -> list[ShippedLoad]:
    """The store reads of every `.py` file that ships (`files`: path -> path in src/). A read
    whose tag is not a literal raises `BuildError`, naming each such call and the fix."""
    found: list[ShippedLoad] = []
    for path, rel in sorted(files.items(), key=lambda item: item[1]):
        if path.suffix != ".py":
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        try:
            loads = find_model_loads(text)
        except SyntaxError:
            continue  # the service itself imported, so this file is not part of it
        for load in loads:
            found.append(ShippedLoad(load, _where(text, rel, load.line, cells)))
    unpinnable = [s for s in found if s.load.tag is None]
    if unpinnable:
        lines = "\n".join(f"  {s.where}: {s.load.call}" for s in unpinnable)
        raise BuildError(
            "refusing to build: the service loads a model from the store by a tag that is only "
            "known when the code runs, so the Bento cannot carry that model:\n"
            f"{lines}\nWrite the tag as a literal (load(\"NAME:latest\") or "
            "load(\"NAME:VERSION\")), or use a model handle in a preprocess cell: "
            "runner(\"NAME:latest\"); both are pinned into the Bento when it is built"
        )
    return found


def _where(text: str, rel: str, line: int, cells: CellMap | None) -> str:
    """`line` of a shipped file as the user knows it: a notebook cell and its line when the
    file is a generated module whose manifest lists its cells."""
    lines = text.splitlines()
    for number in range(min(line, len(lines)), 0, -1):
        marker = _CELL_MARKER.match(lines[number - 1])
        if marker is None:
            continue
        known = cells.cells.get(marker.group(1)) if cells is not None else None
        if known is None:
            return f"{rel} line {line} (notebook cell {marker.group(1)})"
        label, first = known
        return f"{label} line {line - number - 1 + first}"
    return f"{rel} line {line}"
