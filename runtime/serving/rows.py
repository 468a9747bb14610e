"""Rows along `batch_dim` for the server: the logic lives in `runtime.rows` (the kernel's model
handles use it too); this name stays importable for the serving modules and older imports."""

from __future__ import annotations

from runtime.errors import BatchInputError, BatchOutputError
from runtime.rows import RowCall, join_outputs, plan_call, split_output

__all__ = [
    "BatchInputError",
    "BatchOutputError",
    "RowCall",
    "join_outputs",
    "plan_call",
    "split_output",
]
