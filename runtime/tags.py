"""Model tags (`NAME:VERSION`, `NAME:latest`, bare `NAME`) and the naming rule they obey."""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass

from runtime.errors import InvalidName

NAME_RULE = "[a-z0-9][a-z0-9_.-]*, lower case, at most 63 characters"
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
LATEST = "latest"


def validate_name(value: str, what: str = "name") -> str:
    """Return `value` if it is a safe store name, else raise `InvalidName` showing the rule."""
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value) or ".." in value:
        shown = value if isinstance(value, str) and len(value) <= 80 else f"{str(value)[:77]}..."
        raise InvalidName(f"invalid {what} {shown!r}: must match {NAME_RULE} (no '..', no '/')")
    return value


@dataclass(frozen=True, order=True)
class Tag:
    name: str
    version: str | None = None  # None means latest

    @classmethod
    def parse(cls, text: str | Tag) -> Tag:
        if isinstance(text, Tag):
            return text
        if not isinstance(text, str) or not text:
            raise InvalidName(f"invalid tag {text!r}: expected NAME, NAME:latest or NAME:VERSION")
        name, sep, version = text.partition(":")
        validate_name(name, "model name")
        if not sep or version == LATEST:
            return cls(name, None)
        return cls(name, validate_name(version, "version"))

    @property
    def is_latest(self) -> bool:
        return self.version is None

    def __str__(self) -> str:
        return f"{self.name}:{self.version or LATEST}"


_last_version = ""
_version_lock = threading.Lock()


def new_version() -> str:
    """A unique, time-ordered version: UTC microseconds, then pid and a counter suffix.

    Lexical order is creation order (to the microsecond across processes, strictly within one
    process); the pid suffix keeps two processes saving in the same microsecond distinct."""
    global _last_version
    with _version_lock:
        while True:
            now = time.time()
            stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + f"-{int(now % 1 * 1e6):06d}"
            version = f"{stamp}-{os.getpid() % 100000:05d}"
            if version > _last_version:
                _last_version = version
                return version
            time.sleep(1e-6)
