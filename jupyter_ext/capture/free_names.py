"""Which names the captured cells use but never define: the service would fail at import or at
the first request, although the kernel (where an uncaptured training cell defined them) is fine.

The analysis is deliberately simple and errs towards silence: a name counts as defined if it is
bound anywhere in the captured code (any scope), imported, or a builtin.
"""

from __future__ import annotations

import ast
import builtins

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
