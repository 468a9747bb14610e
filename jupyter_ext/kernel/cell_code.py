"""Rewriting a model cell's code before the kernel runs it: its last expression (the model
object) is assigned to a name the magic then saves, instead of being shown."""

from __future__ import annotations

import ast


def assign_last_expression(body: str, target: str) -> str:
    """Rewrite the cell so its last expression is assigned to `target` instead of shown."""
    try:
        tree = ast.parse(body)
    except SyntaxError:
        return body  # the kernel reports it in its own words
    if not tree.body or not isinstance(tree.body[-1], ast.Expr):
        return body
    last = tree.body[-1]
    lines = body.splitlines(keepends=True)
    start, end = last.lineno - 1, (last.end_lineno or last.lineno) - 1
    segment = ast.get_source_segment(body, last) or ""
    prefix = lines[start][: last.col_offset]
    return "".join([*lines[:start], f"{prefix}{target} = ({segment})\n", *lines[end + 1 :]])
