"""Which stored model versions may run code on load: the pickle trust gate.

A model from outside (`nbento models import`, a Bento built on another machine) is data an
attacker may have written; unpickling it runs their code. So trust is positive and local: a
version is trusted when the sha256 of its exact `model.yaml` bytes is recorded in this
machine's trust registry, a folder of one small file per digest. `model.yaml` lists the sha256
of every artifact, and every artifact is checked against it on load, so the digest pins the
whole version. Nothing inside a store, a tar or a Bento can add a record: the registry lives
outside every store root, and only this machine writes it (`save_model`, `import --trust`,
`nbento models trust TAG`).

Where the registry is (`trust_dir()`):
    $NBENTO_TRUST_DIR when set;
    $NBENTO_HOME/trust for an ordinary home (default ~/.nbento/trust);
    ~/.nbento/trust when $NBENTO_HOME is a Bento folder (it has a bento.yaml): a Bento carries
    no trust of its own, the user's registry decides.
`$NBENTO_TRUSTED_STORE=PATH` trusts every version under the store at PATH: the image built from
a Bento sets it for its own `models/` (trusted by construction of the build).

An untrusted version still loads when loading runs no code (decided from its serializer and
format, never from the `code_on_load` line of an imported model.yaml) and every signature is a
common inference method (`predict`, `encode`, ...): its other methods would be called with
client input by a runner (an imported array declaring `tofile` wrote files).

    from runtime.store.trust import trust_model, untrusted_reasons
    trust_model(store.get("clf:20261121-abc"), reason="reviewed by ana")
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from runtime.errors import NbentoError, SerializationError, UntrustedModel
from runtime.settings import nbento_home
from runtime.store.serializers import runs_code_on_load, serializer_named


class StoreLike(Protocol):
    """What the gate needs of `runtime.store.model_store.ModelStore` (which imports this
    module, so it cannot be imported here)."""

    root: Path
    fsync: bool

    @property
    def trust(self) -> TrustRegistry: ...

    def list_models(self, name: str | None = None) -> list[Any]: ...


class ModelLike(Protocol):
    """What the gate needs of a stored version (`runtime.store.model_store.Model`)."""

    info: Any
    tag: Any
    yaml_sha256: str

    @property
    def store(self) -> StoreLike: ...

TRUST_DIR_ENV = "NBENTO_TRUST_DIR"
TRUSTED_STORE_ENV = "NBENTO_TRUSTED_STORE"
BENTO_FILE = "bento.yaml"  # the export room's name for it; the store cannot import that room

# Methods an untrusted model may declare as signatures: inference entry points of the formats
# the store writes. Anything else (tofile, save_pretrained, dump, ...) needs a trust decision.
INFERENCE_METHODS = frozenset(
    {
        "predict",
        "predict_proba",
        "predict_log_proba",
        "decision_function",
        "transform",
        "score_samples",
        "encode",
        "embed",
        "forward",
        "generate",
        "run",
        "classify",
    }
)


def yaml_digest(data: bytes) -> str:
    """The key of a version in the registry: sha256 of its `model.yaml` bytes."""
    return hashlib.sha256(data).hexdigest()


def trust_dir() -> Path:
    """This machine's trust registry folder (see the module docstring), read at call time."""
    explicit = os.environ.get(TRUST_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    home = nbento_home()
    if (home / BENTO_FILE).exists():
        return Path.home() / ".nbento" / "trust"
    return home / "trust"


def keep_trust_dir(environ: MutableMapping[str, str]) -> None:
    """Before serving a Bento (`NBENTO_HOME` set to the Bento folder), pin the trust registry to
    the caller's, so the models this machine saved and built into the Bento stay trusted (a
    Bento's own folder never vouches for itself)."""
    environ.setdefault(TRUST_DIR_ENV, str(trust_dir()))


@dataclass(frozen=True)
class TrustRegistry:
    """A folder of trust records, one file per trusted `model.yaml` digest. Records are
    created atomically (temp file + rename), so concurrent saves need no lock."""

    folder: Path

    @classmethod
    def default(cls) -> TrustRegistry:
        return cls(trust_dir())

    def _record(self, digest: str) -> Path:
        if len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest):
            raise NbentoError(f"not a sha256 digest: {digest!r}")
        return self.folder / digest

    def is_trusted(self, digest: str) -> bool:
        try:
            return self._record(digest).is_file()
        except OSError:
            return False

    def add(self, digest: str, tag: str, reason: str, *, fsync: bool = True) -> Path:
        """Record `digest` as trusted; the file says which tag, why and when, for people."""
        record = self._record(digest)
        if record.is_file():
            return record
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.folder / f".tmp-{digest}-{secrets.token_hex(4)}"
            stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
            with open(tmp, "x", encoding="utf-8") as f:
                f.write(f"{tag}\n{reason}\n{stamp}\n")
                f.flush()
                if fsync:
                    os.fsync(f.fileno())
            os.replace(tmp, record)
        except OSError as exc:
            raise NbentoError(
                f"cannot record trust for {tag} in {self.folder}: {exc.strerror or exc}; "
                f"make the folder writable or point ${TRUST_DIR_ENV} at one"
            ) from exc
        return record


def ensure_registry(store: StoreLike) -> None:
    """Adopt a home store saved before the trust gate existed: the first time its registry is
    needed, versions already there are recorded as trusted, so they load as before. Saves and
    imports call this before adding a version, so nothing new is adopted this way. Other
    stores and an explicit `$NBENTO_TRUST_DIR` adopt nothing."""
    registry = store.trust
    home = nbento_home()
    adopts = (
        registry.folder == home / "trust"  # the home's own registry
        and not registry.folder.is_dir()
        and store.root.resolve() == (home / "models").resolve()
        and not (home / BENTO_FILE).exists()
    )
    if not adopts:
        return
    try:
        for model in store.list_models():
            registry.add(model.yaml_sha256, str(model.tag), "in this store before trust records")
        registry.folder.mkdir(parents=True, exist_ok=True)
    except (OSError, NbentoError):
        pass  # a read-only home: nothing recorded, and so nothing trusted by adoption


def record_saved(store: StoreLike, yaml_text: str, tag: str) -> None:
    """What a store saves on this machine, it trusts: recorded before the version appears."""
    ensure_registry(store)
    store.trust.add(
        yaml_digest(yaml_text.encode("utf-8")), tag, "saved on this machine", fsync=store.fsync
    )


def _trusted_store_root() -> Path | None:
    value = os.environ.get(TRUSTED_STORE_ENV)
    return Path(value).expanduser().resolve() if value else None


def is_trusted(model: ModelLike) -> bool:
    """Whether this machine vouches for `model`: a registry record for its exact model.yaml,
    or the model lives in the store `$NBENTO_TRUSTED_STORE` names."""
    root = _trusted_store_root()
    if root is not None and model.store.root.resolve() == root:
        return True
    return model.store.trust.is_trusted(model.yaml_sha256)


def loads_code(model: ModelLike) -> bool:
    """Whether loading `model` runs code from its files, asked of the serializer that will load
    it (an unknown serializer counts as running code)."""
    try:
        serializer = serializer_named(model.info.serializer, model.info.module)
    except SerializationError:
        return True
    return runs_code_on_load(serializer, model.info.options)


def untrusted_reasons(model: ModelLike) -> list[str]:
    """Why `model` may not load without a trust decision; empty when it may."""
    if is_trusted(model):
        return []
    reasons: list[str] = []
    if loads_code(model):
        fmt = model.info.options.get("format")
        fmt_text = f", {fmt} format" if fmt else ""
        reasons.append(
            f"loading it ({model.info.serializer}{fmt_text}) runs code from its files, "
            "e.g. unpickling, which can do anything your account can"
        )
    odd = sorted(set(model.info.signatures) - INFERENCE_METHODS)
    if odd:
        reasons.append(
            f"it declares signatures {', '.join(odd)}, which a runner would call with client "
            f"input (an untrusted model may only declare {', '.join(sorted(INFERENCE_METHODS))})"
        )
    return reasons


def check_trusted(model: ModelLike) -> None:
    """Raise `UntrustedModel` naming the risk and the ways to trust `model`, or return."""
    ensure_registry(model.store)
    reasons = untrusted_reasons(model)
    if not reasons:
        return
    raise UntrustedModel(
        f"refusing to load {model.tag} from {model.store.root}: it did not come from this "
        f"machine's store and {'; and '.join(reasons)}. If you know where it comes from and "
        f"trust it, run `nbento models trust {model.tag}` (or import it with "
        f"`nbento models import FILE --trust`), or load it once with "
        f"load('{model.tag}', trust=True)"
    )


def trust_model(model: ModelLike, reason: str = "trusted by the user") -> Path:
    """Record `model` as trusted in its store's registry (`nbento models trust TAG`)."""
    return model.store.trust.add(
        model.yaml_sha256, str(model.tag), reason, fsync=model.store.fsync
    )


def untrusted_models(store: StoreLike) -> list[tuple[ModelLike, list[str]]]:
    """Every version of `store` that would be refused, with why. A Bento import (or a build
    check) calls this on the Bento's `models/` store to warn or to ask for `--trust`."""
    found = []
    for model in store.list_models():
        reasons = untrusted_reasons(model)
        if reasons:
            found.append((model, reasons))
    return found


def trust_store(store: StoreLike, reason: str) -> list[ModelLike]:
    """Trust every version of `store` (`nbento bentos import FILE --trust`); returns those that
    were not trusted before."""
    added = []
    for model, _ in untrusted_models(store):
        trust_model(model, reason)
        added.append(model)
    return added


__all__ = [
    "keep_trust_dir",
    "INFERENCE_METHODS",
    "TRUSTED_STORE_ENV",
    "TRUST_DIR_ENV",
    "TrustRegistry",
    "check_trusted",
    "ensure_registry",
    "record_saved",
    "is_trusted",
    "loads_code",
    "trust_dir",
    "trust_model",
    "trust_store",
    "untrusted_models",
    "untrusted_reasons",
    "yaml_digest",
]
