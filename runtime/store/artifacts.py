"""Artifact files of one model version, written and read with their sha256 computed on the way.

Serializers never hash files themselves: they write through an `ArtifactWriter` (or write by
path and let the store hash what they left) and read through an `ArtifactReader`, which refuses
a file whose bytes differ from the sha256 recorded in `model.yaml`. Hashing runs while the bytes
move (a background thread for large buffers; hashlib releases the GIL), so a checksum costs
about as much as the slower of the two, not their sum.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import queue
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import IO, Any

from runtime.errors import ChecksumMismatch, NbentoError

CHUNK_BYTES = 8 << 20


def check_relpath(relpath: str) -> str:
    """Return `relpath` if it names a file strictly inside a version folder, else raise.

    model.yaml and tar members are input too (an imported tar, a hand-edited file), so every
    relpath is checked before it is joined to a folder."""
    pure = PurePosixPath(relpath)
    if (
        not relpath
        or "\\" in relpath
        or "\x00" in relpath
        or pure.is_absolute()
        or any(part in ("", ".", "..") for part in relpath.split("/"))
    ):
        raise NbentoError(
            f"unsafe artifact path {relpath!r}: must be relative, inside the model folder, "
            "without '..' or '\\'"
        )
    return relpath


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in `path` durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256_file(path: Path) -> str:
    """Hash a file through a read-only mapping: no copy out of the page cache."""
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        if size == 0:
            return digest.hexdigest()
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)
            try:
                for start in range(0, size, CHUNK_BYTES):
                    digest.update(view[start : start + CHUNK_BYTES])
            finally:
                view.release()
    return digest.hexdigest()


class _BackgroundHash:
    """sha256 fed from another thread, so hashing overlaps the file I/O of the caller.

    Only hand it buffers that nobody changes until `hexdigest()` returns."""

    def __init__(self, digest: Any) -> None:
        self._digest = digest
        self._queue: queue.SimpleQueue[memoryview | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="nbento-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (view := self._queue.get()) is not None:
            self._digest.update(view)

    def feed(self, view: memoryview) -> None:
        self._queue.put(view)

    def join(self) -> None:
        """Wait until every fed buffer is hashed; the digest object stays usable."""
        self._queue.put(None)
        self._thread.join()

    def hexdigest(self) -> str:
        self.join()
        return str(self._digest.hexdigest())


def _byte_chunks(data: bytes | memoryview) -> Iterator[memoryview]:
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else memoryview(data)
    for start in range(0, len(view), CHUNK_BYTES):
        yield view[start : start + CHUNK_BYTES]


class HashingWriter:
    """A binary file opened for writing that hashes what is written (for pickle-like writers)."""

    def __init__(self, owner: ArtifactWriter, relpath: str, path: Path) -> None:
        self._owner = owner
        self._relpath = relpath
        self._file: IO[bytes] = open(path, "xb")  # noqa: SIM115 - closed by close()
        self._digest = hashlib.sha256()
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._digest.update(view)
        self._file.write(view)
        return len(view)

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._file.tell()

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._file.flush()
        if self._owner.fsync:
            os.fsync(self._file.fileno())
        self._file.close()
        self._owner.digests[self._relpath] = self._digest.hexdigest()

    def __enter__(self) -> HashingWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class ArtifactWriter:
    """The temporary folder a serializer saves into; records each file's sha256.

    `path` is the folder, for libraries that only write by path (skops, `save_pretrained`);
    files written that way are hashed and fsynced by `finish()`."""

    def __init__(self, path: Path, *, fsync: bool = True) -> None:
        self.path = path
        self.fsync = fsync
        self.digests: dict[str, str] = {}

    def _target(self, relpath: str) -> Path:
        target = self.path / check_relpath(relpath)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def open(self, relpath: str) -> HashingWriter:
        """A new file to write bytes into (`pickle.dump(obj, writer.open("model.pkl"))`)."""
        return HashingWriter(self, relpath, self._target(relpath))

    def write_parts(self, relpath: str, parts: Iterable[bytes | memoryview]) -> None:
        """Write large buffers with the hash computed in parallel (no copies).

        The buffers must stay unchanged until this returns (an array being saved is)."""
        target = self._target(relpath)
        hasher = _BackgroundHash(hashlib.sha256())
        try:
            with open(target, "xb", buffering=0) as f:
                for part in parts:
                    for chunk in _byte_chunks(part):
                        hasher.feed(chunk)
                        written = 0
                        while written < len(chunk):
                            written += f.write(chunk[written:]) or 0
                if self.fsync:
                    os.fsync(f.fileno())
        finally:
            digest = hasher.hexdigest()
        self.digests[relpath] = digest

    def finish(self) -> dict[str, str]:
        """Hash and fsync files written by path; return `{relpath: sha256}` for every file."""
        files: dict[str, str] = {}
        for folder, dirnames, filenames in os.walk(self.path):
            for entry in (*dirnames, *filenames):
                if os.path.islink(os.path.join(folder, entry)):
                    raise NbentoError(
                        f"serializer left a symbolic link {entry!r} in {self.path}; "
                        "models must hold regular files only"
                    )
            for filename in filenames:
                full = Path(folder) / filename
                relpath = full.relative_to(self.path).as_posix()
                digest = self.digests.get(relpath)
                if digest is None:
                    digest = sha256_file(full)
                    if self.fsync:
                        fd = os.open(full, os.O_RDONLY)
                        try:
                            os.fsync(fd)
                        finally:
                            os.close(fd)
                files[relpath] = digest
            if self.fsync and Path(folder) != self.path:
                fsync_dir(Path(folder))
        return dict(sorted(files.items()))


class VerifyingReader:
    """A file opened for reading whose sha256 is checked by `verify()` (reads to the end)."""

    def __init__(self, path: Path, relpath: str, expected: str) -> None:
        self.relpath = relpath
        self._path = path
        self._expected = expected
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self._digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size) if size is not None and size >= 0 else self._file.read()
        self._digest.update(data)
        return data

    def readinto_all(self, buffer: memoryview) -> None:
        """Fill `buffer` completely, hashing in a background thread; error on a short file."""
        view = buffer.cast("B") if buffer.format != "B" or buffer.ndim != 1 else buffer
        hasher = _BackgroundHash(self._digest)
        try:
            for start in range(0, len(view), CHUNK_BYTES):
                chunk = view[start : start + CHUNK_BYTES]
                filled = 0
                while filled < len(chunk):
                    n = self._file.readinto(chunk[filled:])
                    if not n:
                        raise ChecksumMismatch(
                            f"artifact {self.relpath!r} at {self._path} is shorter than its "
                            "header says; the file was truncated or changed after saving"
                        )
                    filled += n
                hasher.feed(chunk)
        finally:
            hasher.join()

    def verify(self) -> None:
        """Hash whatever was not read yet and compare with the recorded sha256."""
        while chunk := self._file.read(CHUNK_BYTES):
            self._digest.update(chunk)
        _compare(self._path, self.relpath, self._expected, self._digest.hexdigest())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> VerifyingReader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _compare(path: Path, relpath: str, expected: str, actual: str) -> None:
    if actual != expected:
        raise ChecksumMismatch(
            f"artifact {relpath!r} of the model at {path.parent} does not match its recorded "
            f"sha256 (expected {expected[:12]}..., found {actual[:12]}...): the file was changed "
            "or damaged after saving. Save or import the model again."
        )


class ArtifactReader:
    """A saved version folder, handing out files only after (or while) checking their sha256."""

    def __init__(self, path: Path, files: dict[str, str]) -> None:
        self.path = path
        self.files = dict(files)
        self.verified: set[str] = set()

    def _locate(self, relpath: str) -> tuple[Path, str]:
        check_relpath(relpath)
        expected = self.files.get(relpath)
        if expected is None:
            raise ChecksumMismatch(
                f"artifact {relpath!r} is not listed in {self.path / 'model.yaml'}; "
                f"recorded files: {', '.join(sorted(self.files)) or '(none)'}"
            )
        full = self.path / relpath
        if full.is_symlink() or not full.is_file():
            raise ChecksumMismatch(
                f"artifact {relpath!r} is missing from {self.path} (or is not a regular file); "
                "the model folder was changed after saving"
            )
        return full, expected

    def open(self, relpath: str) -> VerifyingReader:
        """Stream a file; call `verify()` on the reader once the bytes are consumed."""
        full, expected = self._locate(relpath)
        self.verified.add(relpath)
        return VerifyingReader(full, relpath, expected)

    def verified_path(self, relpath: str) -> Path:
        """The path of a file whose whole content was just checked (for pickle-like loaders,
        which must never see unverified bytes)."""
        full, expected = self._locate(relpath)
        _compare(full, relpath, expected, sha256_file(full))
        self.verified.add(relpath)
        return full

    def verify_rest(self) -> None:
        """Check every recorded file the serializer did not read through this reader."""
        for relpath in sorted(set(self.files) - self.verified):
            self.verified_path(relpath)


def human_size(size: int | None) -> str:
    """`8.9 KiB`, `210.0 MiB`: sizes as the CLI, the magics and the panels print them."""
    if size is None:
        return "size unknown"
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover
