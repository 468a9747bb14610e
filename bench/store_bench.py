"""Model store cost against the plain calls it wraps, measured in one run on one machine.

Saves and loads a 200 MB float32 array (store vs `np.save`/`np.load`, with and without fsync,
since the store fsyncs by default) and a fitted scikit-learn Pipeline (store vs
`joblib.dump`/`joblib.load`). Prints a table; `--record` writes it to bench/RESULTS.md under
"## Model store" (other sections are left alone).

    . .venv/bin/activate && python bench/store_bench.py --record
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from runtime.store.model_store import ModelStore

RESULTS = Path(__file__).with_name("RESULTS.md")
SECTION = "## Model store"


@dataclass
class Row:
    label: str
    seconds: list[float]
    baseline: str | None = None  # label of the row this one is compared with
    megabytes: float | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best(self) -> float:
        return min(self.seconds)


def _timed(
    fn: Callable[[], Any], repeat: int, between: Callable[[], None] | None = None
) -> list[float]:
    times = []
    for _ in range(repeat):
        if between is not None:
            between()
        os.sync()  # start every run with no dirty pages left by the previous one
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _save_fsync(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, array)
        f.flush()
        os.fsync(f.fileno())


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(memoryview(array).cast("B")).hexdigest()


def _dump_fsync(path: Path, obj: Any) -> None:
    with open(path, "wb") as f:
        joblib.dump(obj, f)
        f.flush()
        os.fsync(f.fileno())


def bench_array(work: Path, megabytes: int, repeat: int) -> list[Row]:
    array = np.random.default_rng(0).random(megabytes * (1 << 20) // 4, dtype=np.float32)
    size_mb = array.nbytes / 1e6
    plain = work / "plain.npy"
    synced = ModelStore(work / "store-fsync")
    unsynced = ModelStore(work / "store-nofsync", fsync=False)

    def clear(store: ModelStore) -> Callable[[], None]:
        return lambda: shutil.rmtree(store.root, ignore_errors=True)

    rows = [
        # The floor for any sha256-checked save or load of these bytes on this CPU.
        Row("hashlib.sha256 of the bytes in memory", _timed(lambda: _sha256(array), repeat)),
        Row("np.save (no fsync)", _timed(lambda: np.save(plain, array), repeat)),
        Row("np.save + fsync", _timed(lambda: _save_fsync(plain, array), repeat)),
        Row(
            "store save (fsync, sha256)",
            _timed(lambda: synced.save_model("big", array), repeat, clear(synced)),
            "np.save + fsync",
        ),
        Row(
            "store save (fsync=False, sha256)",
            _timed(lambda: unsynced.save_model("big", array), repeat, clear(unsynced)),
            "np.save (no fsync)",
        ),
    ]
    tag = synced.save_model("big", array).tag
    rows += [
        Row("np.load", _timed(lambda: np.load(plain), repeat)),
        Row("store load (sha256 verified)", _timed(lambda: synced.load(tag), repeat), "np.load"),
        Row(
            "store load mmap_mode='r' (verified)",
            _timed(lambda: synced.load(tag, mmap_mode="r"), repeat),
            "np.load",
        ),
    ]
    loaded = synced.load(tag)
    assert np.array_equal(loaded, array), "store round trip changed the array"
    for row in rows:
        row.megabytes = size_mb
    return rows


def bench_pipeline(work: Path, repeat: int) -> list[Row]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 50))
    y = (X[:, :5].sum(axis=1) > 0).astype(int)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300)).fit(X, y)
    plain = work / "pipe.joblib"
    store = ModelStore(work / "store-pipe")
    tag = store.save_model("pipe", pipe).tag
    fmt = store.get(tag).info.options.get("format")
    pickled = ModelStore(work / "store-pickle").save_model("pipe", pipe, serializer="cloudpickle")
    rows = [
        Row("joblib.dump", _timed(lambda: joblib.dump(pipe, plain), repeat)),
        Row("joblib.dump + fsync", _timed(lambda: _dump_fsync(plain, pipe), repeat)),
        Row(
            f"store save ({fmt}, fsync)",
            _timed(lambda: store.save_model("pipe", pipe), repeat),
            "joblib.dump + fsync",
        ),
        Row("joblib.load", _timed(lambda: joblib.load(plain), repeat)),
        Row(
            f"store load ({fmt}, verified)", _timed(lambda: store.load(tag), repeat), "joblib.load"
        ),
        # The same store steps (sha256, model.yaml, fsync, rename) with a pickle format, to
        # separate the store's own cost from skops's.
        Row(
            "store save (cloudpickle, fsync)",
            _timed(
                lambda: pickled.store.save_model("pipe", pipe, serializer="cloudpickle"), repeat
            ),
            "joblib.dump + fsync",
        ),
        Row("store load (cloudpickle, verified)", _timed(pickled.load, repeat), "joblib.load"),
    ]
    assert (store.load(tag).predict(X) == pipe.predict(X)).all()
    return rows


def machine() -> str:
    cpu = "unknown"
    try:
        match = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text())
        cpu = match.group(1).strip() if match else cpu
    except OSError:
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"nproc {os.cpu_count()}, {cpu}, Python {platform.python_version()}, "
        f"NumPy {np.__version__}, scikit-learn {sklearn.__version__}, joblib {joblib.__version__}; "
        f"load average at start {load} (shared machine)"
    )


def _ratio(row: Row, by_label: dict[str, Row]) -> tuple[str, str]:
    if row.baseline is None:
        return "-", "-"
    base = by_label[row.baseline]
    return f"{row.median / base.median:.2f}x", f"{row.best / base.best:.2f}x"


def table(array_rows: list[Row], pipe_rows: list[Row], repeat: int) -> str:
    by_label = {r.label: r for r in [*array_rows, *pipe_rows]}
    lines = [
        f"{array_rows[0].megabytes:.0f} MB (decimal) float32 array, {repeat} runs each (MB/s from the median time; ratios are store"
        " time / baseline time, from medians and from best runs):",
        "",
        "| operation | median s | best s | MB/s | vs baseline | median ratio | best ratio |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for row in array_rows:
        med, best = _ratio(row, by_label)
        assert row.megabytes is not None
        lines.append(
            f"| {row.label} | {row.median:.3f} | {row.best:.3f} | "
            f"{row.megabytes / row.median:,.0f} | {row.baseline or '-'} | {med} | {best} |"
        )
    lines += [
        "",
        f"Fitted Pipeline(StandardScaler, LogisticRegression), 50 features, {repeat} runs each:",
        "",
        "| operation | median ms | best ms | vs baseline | median ratio | best ratio |",
        "|---|---:|---:|---|---:|---:|",
    ]
    for row in pipe_rows:
        med, best = _ratio(row, by_label)
        lines.append(
            f"| {row.label} | {row.median * 1000:.1f} | {row.best * 1000:.1f} | "
            f"{row.baseline or '-'} | {med} | {best} |"
        )
    return "\n".join(lines)


NOTES = """How to read this:

- The store computes sha256 while bytes move. Save: a second thread hashes the array's memory
  while the main thread writes and fsyncs. Load: the file is read straight into the new array in
  8 MiB chunks, and a second thread hashes each chunk once it has arrived. With a free core the
  cost is max(write + fsync, hash) instead of their sum.
- The sha256-only row is the floor for any checksummed save or load. On this CPU (SHA-NI) we
  measured 1.0-1.45 GB/s with a core free, against 1.7-1.8 GB/s for np.save into the page cache
  and 2.7-3.5 GB/s for np.load from it. So the hash alone is slower than the plain call, and no
  checksummed save without fsync, and no verified load, can come within 1.5x of them here; the
  store's verified load runs close to the hash floor. The fair comparison for saves is
  np.save + fsync, because the store makes the artifact, model.yaml, the temp folder and the
  rename durable.
- mmap loads verify the whole file before mapping it, because handing out a mapping of
  unverified bytes would defeat the checksum. They cost one sha256 pass instead of nothing.
- Pipeline: skops builds an audited, pickle-free representation, so it is slower than joblib.
  The cloudpickle rows show the store's own cost: 4 fsyncs (artifact, model.yaml, temp folder,
  NAME folder) against 1 for joblib.dump + fsync.
- Shared machine: 2 cores, with about 6 other engineers running tests, builds and servers. The
  load average above shows how busy it was. When no core is free, the hashing thread cannot run
  alongside the I/O, so the store pays write + hash in sequence and the ratios grow. Rerun on a
  quiet machine to get uncontended figures.
"""


def record(body: str) -> None:
    """Replace the "## Model store" section of RESULTS.md, keeping everyone else's sections."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    section = f"{SECTION}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text.rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--record", action="store_true", help="write the table to bench/RESULTS.md")
    args = parser.parse_args()

    info = machine()
    work = Path(tempfile.mkdtemp(prefix="nbento-store-bench-"))
    try:
        array_rows = bench_array(work, args.megabytes, args.repeat)
        pipe_rows = bench_pipeline(work, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = table(array_rows, pipe_rows, args.repeat)
    print(f"Machine: {info}\n\n{result}")
    if args.record:
        record(
            f"Rerun: `. .venv/bin/activate && python bench/store_bench.py --record`\n\n"
            f"Machine: {info}. Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.\n\n"
            f"{result}\n\n{NOTES}"
        )
        print(f"\nrecorded in {RESULTS}")


if __name__ == "__main__":
    main()
