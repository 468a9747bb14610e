"""Which names the captured cells use but never define: the service would fail at import or at
the first request, although the kernel (where an uncaptured training cell defined them) is fine.

The analysis is deliberately simple and errs towards silence: a name counts as defined if it is
bound anywhere in the captured code (any scope), imported, or a builtin.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from jupyter_ext.capture.cell_args import split_magic
from jupyter_ext.capture.cells import CapturedCell, NotebookCell

_ALWAYS = frozenset(dir(builtins)) | {"__name__", "__file__", "__doc__", "__builtins__"}


class _Names(ast.NodeVisitor):
    def __init__(self) -> None:
        self.bound: set[str] = set()
        self.loaded: dict[str, int] = {}  # name -> first line (1-based) that reads it

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self.loaded.setdefault(node.id, node.lineno)
        else:
            self.bound.add(node.id)

    def _function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        if not isinstance(node, ast.Lambda):
            self.bound.add(node.name)
        args = node.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is not None:
                self.bound.add(arg.arg)
        self.generic_visit(node)

    visit_FunctionDef = _function
    visit_AsyncFunctionDef = _function
    visit_Lambda = _function

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.bound.add(node.name)
        self.generic_visit(node)

    def _import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "*":
                continue
            self.bound.add(alias.asname or alias.name.split(".")[0])

    visit_Import = _import
    visit_ImportFrom = _import

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.name:
            self.bound.add(node.name)
        self.generic_visit(node)

    def visit_Global(self, node: ast.Global) -> None:
        self.bound.update(node.names)

    def visit_MatchAs(self, node: ast.MatchAs) -> None:
        if node.name:
            self.bound.add(node.name)
        self.generic_visit(node)

    def visit_MatchStar(self, node: ast.MatchStar) -> None:
        if node.name:
            self.bound.add(node.name)

    def visit_MatchMapping(self, node: ast.MatchMapping) -> None:
        if node.rest:
            self.bound.add(node.rest)
        self.generic_visit(node)


def names_of(source: str) -> tuple[set[str], dict[str, int]]:
    """(names bound anywhere, names read with their first line) of Python source."""
    visitor = _Names()
    visitor.visit(ast.parse(source))
    return visitor.bound, visitor.loaded


def top_level_definitions(source: str) -> set[str]:
    """Names a notebook cell binds at module level (what another cell could be relying on)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            found.update(a.asname or a.name.split(".")[0] for a in node.names if a.name != "*")
        else:
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and not isinstance(sub.ctx, ast.Load):
                    found.add(sub.id)
    return found


def free_names(sources: list[str]) -> dict[str, tuple[int, int]]:
    """Names read but never bound across `sources` -> (index of the first source reading it,
    line in that source). Sources that do not parse are skipped (reported elsewhere)."""
    bound: set[str] = set(_ALWAYS)
    reads: dict[str, tuple[int, int]] = {}
    for index, source in enumerate(sources):
        try:
            b, loaded = names_of(source)
        except SyntaxError:
            continue
        bound |= b
        for name, line in loaded.items():
            reads.setdefault(name, (index, line))
    return {name: where for name, where in reads.items() if name not in bound}


@dataclass(frozen=True)
class FreeName:
    """A name the service reads that no captured cell binds, and the cells that define it."""

    name: str
    cell: CapturedCell
    line: int
    defined_in: list[NotebookCell]

    @property
    def message(self) -> str:
        where = (
            "; defined in " + ", ".join(f"cell {c.index + 1} (id {c.cell_id})" for c in self.defined_in)
            + ", which is not captured: capture it with %%nbento preprocess or move the definition"
            if self.defined_in
            else "; no cell of the notebook defines it"
        )
        return (f"{self.cell.label} line {self.line + self.cell.line_offset} uses {self.name!r}, "
                f"which no captured cell defines{where}")

    def manifest_entry(self) -> dict[str, Any]:
        """How service.yaml records it, so `nbento build` can refuse without Jupyter."""
        return {
            "name": self.name,
            "cell_id": self.cell.cell_id,
            "line": self.line + self.cell.line_offset,
            "defined_in": [c.cell_id for c in self.defined_in],
            "message": self.message,
        }


def find_free_names(cells: Sequence[CapturedCell], others: Sequence[NotebookCell]) -> list[FreeName]:
    """Names the service code reads that no captured cell binds, with the uncaptured cells
    (model/training cells included) that define them."""
    code = [c for c in cells if c.kind != "model"]
    found = free_names([c.source for c in code])
    defining = [*others, *(NotebookCell(c.index or 0, c.cell_id, c.source) for c in cells if c.kind == "model")]
    report = []
    for name, (index, line) in sorted(found.items(), key=lambda kv: kv[1]):
        definers = [c for c in defining if name in top_level_definitions(_strip_magic(c.source))]
        report.append(FreeName(name, code[index], line, definers))
    return report


def _strip_magic(source: str) -> str:
    magic = split_magic(source)
    return magic[1] if magic is not None else source
