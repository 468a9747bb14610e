"""Models for the runner tests. They live in an importable module so cloudpickle stores them by
reference and a worker process (`python -m runtime.serving.workers`) loads them back."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import numpy as np


class Doubler:
    """`predict` doubles each row (list or array); `pair` returns (doubled, row index);
    `describe` and `slow_describe` are not batchable; `predict` raises on the row "boom"."""

    def __init__(self, load_log: str | None = None) -> None:
        self.load_log = load_log
        self._lock = threading.Lock()
        self._active = 0
        self.max_active = 0

    def __getstate__(self) -> dict[str, Any]:
        return {"load_log": self.load_log}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.load_log = state["load_log"]
        self._lock = threading.Lock()
        self._active = 0
        self.max_active = 0
        if self.load_log:
            with open(self.load_log, "a") as f:
                f.write(f"{os.getpid()}\n")

    def predict(self, rows: Any, scale: int = 2) -> Any:
        if isinstance(rows, np.ndarray):
            return rows * scale
        if "boom" in rows:
            raise ValueError("Doubler cannot double 'boom'")
        return [row * scale for row in rows]

    def pair(self, rows: Any) -> Any:
        return (self.predict(rows), np.arange(len(rows)))

    def describe(self) -> str:
        return "doubler"

    def crash(self) -> None:
        os._exit(3)  # a segfault in native code, as far as the runner can tell

    def slow_describe(self) -> int:
        with self._lock:
            self._active += 1
            self.max_active = max(self.max_active, self._active)
        time.sleep(0.03)
        with self._lock:
            self._active -= 1
        return self.max_active


SIGNATURES = {
    "predict": {"batchable": True},
    "pair": {"batchable": True},
    "describe": {},
    "slow_describe": {},
    "crash": {},
}
