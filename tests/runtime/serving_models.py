"""Model classes for the serving tests. They live in an importable module so cloudpickle stores
them by reference and the server subprocess (run with the repo on PYTHONPATH) loads them back.

`Scaler` can be told to sleep while loading (to watch `/readyz` stay 503), to sleep per batch
(to fill a queue), to append a line to a file each time it is loaded (to count loads
across hot reloads), and to fail to load (a broken model version)."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np


class Scaler:
    """`predict(rows)` multiplies every row by `factor`; one output row per input row."""

    def __init__(
        self, factor: float = 2.0, *, load_delay_s: float = 0.0, batch_delay_s: float = 0.0,
        load_log: str | None = None, fail_load: str | None = None,
    ) -> None:
        self.factor = factor
        self.fail_load = fail_load
        self.load_delay_s = load_delay_s
        self.batch_delay_s = batch_delay_s
        self.load_log = load_log

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if state.get("fail_load"):
            raise RuntimeError(state["fail_load"])
        if self.load_log:
            with open(self.load_log, "a") as f:
                f.write(f"{os.getpid()}\n")
        if self.load_delay_s:
            time.sleep(self.load_delay_s)

    def predict(self, rows: Any) -> Any:
        if self.batch_delay_s:
            time.sleep(self.batch_delay_s)
        if isinstance(rows, np.ndarray):
            return rows * self.factor
        return [self._scale(r) for r in rows]

    def _scale(self, row: Any) -> Any:
        if isinstance(row, list):
            return [self.factor * x for x in row]
        return self.factor * row

    def describe(self) -> str:
        return f"scaler x{self.factor}"


def save_scaler(name: str = "scaler", **options: Any) -> str:
    """Save a `Scaler` with a batchable `predict` and a plain `describe`; returns the tag."""
    from runtime import save_model

    model = save_model(
        name, Scaler(**options),
        signatures={"predict": {"batchable": True, "batch_dim": 0}, "describe": {}},
    )
    return str(model.tag)
