"""Torch models for the layout tests, in an importable module so the torch serializer stores
them by reference (cloudpickle) and a worker process loads them back."""

from __future__ import annotations

import os
import time
from typing import Any

import torch


class ThreadReporter(torch.nn.Module):
    """`forward` is a small linear layer; `layout` answers, per row, the torch threads and the
    process id of whoever computed it; `slow` sleeps 50 ms per batch (keeps calls in flight)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, rows: torch.Tensor) -> torch.Tensor:
        return self.linear(rows)

    def layout(self, rows: list[Any]) -> list[list[int]]:
        return [[torch.get_num_threads(), os.getpid()] for _ in rows]

    def draw(self, rows: list[Any]) -> list[list[float]]:
        """Per row: the process id, a NumPy draw and a torch draw from the global generators."""
        import numpy as np

        return [[os.getpid(), float(np.random.random()), float(torch.rand(1))] for _ in rows]

    def slow(self, rows: list[float]) -> list[float]:
        time.sleep(0.05)
        return [2 * row for row in rows]


SIGNATURES = {
    "forward": {"batchable": True},
    "layout": {"batchable": True},
    "slow": {"batchable": True},
    "draw": {"batchable": True},
}
