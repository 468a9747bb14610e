"""Objects and subprocess entry points for the store tests.

They live in an importable module (not in a test file) so that cloudpickle stores the class by
reference and a fresh `python -m tests.runtime.store_fixtures ...` process can load it back.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from runtime.store.artifacts import ArtifactReader, ArtifactWriter

REPO = Path(__file__).resolve().parents[2]


class Doubler:
    """A custom model class: no framework, saved with cloudpickle."""

    def __init__(self, factor: int = 2) -> None:
        self.factor = factor

    def predict(self, rows: list[float]) -> list[float]:
        return [self.factor * r for r in rows]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Doubler) and other.factor == self.factor

    def __hash__(self) -> int:
        return hash(self.factor)


class SlowPayload:
    """Saved by `SlowSerializer`, which pauses between its two files (to be killed there)."""

    def __init__(self, marker: str, pause_s: float) -> None:
        self.marker = marker
        self.pause_s = pause_s


class SlowSerializer:
    name = "slow-test"
    framework = "nbento"

    def matches(self, obj: Any) -> bool:
        return isinstance(obj, SlowPayload)

    def save(self, obj: SlowPayload, artifacts: ArtifactWriter) -> dict[str, Any]:
        with artifacts.open("part1.bin") as f:
            f.write(b"x" * 1_000_000)
        Path(obj.marker).write_text("first file written")
        time.sleep(obj.pause_s)
        with artifacts.open("part2.bin") as f:
            f.write(b"y" * 1_000)
        return {}

    def load(self, artifacts: ArtifactReader, info: Any, **options: Any) -> Any:
        return artifacts.verified_path("part1.bin").stat().st_size


def _main(argv: list[str]) -> int:
    """`save-doubler NAME GO_FILE`: wait for GO_FILE, then save (concurrency test);
    `save-slow NAME MARKER PAUSE`: a save that pauses mid-write (SIGKILL test)."""
    from runtime import register_serializer, save_model
    from tests.runtime import store_fixtures as fixtures  # not __main__: pickled by reference

    command, name = argv[0], argv[1]
    if command == "save-doubler":
        go = Path(argv[2])
        deadline = time.monotonic() + 30
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.001)
        model = save_model(name, fixtures.Doubler(3), signatures=["predict"])
        print(model.tag, flush=True)
        return 0
    if command == "save-slow":
        register_serializer(fixtures.SlowSerializer())
        save_model(name, fixtures.SlowPayload(argv[2], float(argv[3])), signatures=[])
        return 0
    print(f"unknown command {command!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
