"""Rows along `batch_dim`: the one registry of row containers and the row logic both the
server's batcher and the kernel's model handles use, so a call behaves the same in both.

    from runtime.rows import plan_call, split_output, join_outputs, register_rows
"""

from __future__ import annotations

from runtime.errors import BatchInputError, BatchOutputError
from runtime.rows.calls import RowCall, call_in_rows, freeze, plan_call
from runtime.rows.kind import RowKind
from runtime.rows.outputs import join_outputs, split_output
from runtime.rows.registry import kind_of, register_rows, unregister_rows

__all__ = [
    "BatchInputError",
    "BatchOutputError",
    "RowCall",
    "RowKind",
    "call_in_rows",
    "freeze",
    "join_outputs",
    "kind_of",
    "plan_call",
    "register_rows",
    "split_output",
    "unregister_rows",
]
