"""Checking what `save_model` was given before anything is written: signatures (methods the
object really has, with valid names and settings), labels, provenance and JSON-safe metadata."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from runtime.errors import NbentoError, SignatureError
from runtime.store.info import ModelSignature, Provenance, check_signature_name
from runtime.store.serializers import default_signatures


def normalize_signatures(
    obj: Any, signatures: Mapping[str, Any] | Iterable[str] | None
) -> dict[str, ModelSignature]:
    if signatures is None:
        raw: dict[str, Any] = default_signatures(obj)
    elif isinstance(signatures, Mapping):
        raw = dict(signatures)
    elif isinstance(signatures, str):
        raw = {signatures: {}}
    else:
        raw = {method: {} for method in signatures}
    result: dict[str, ModelSignature] = {}
    for method, spec in raw.items():
        try:
            check_signature_name(method)
        except ValueError as exc:
            raise SignatureError(str(exc)) from None
        if not callable(getattr(obj, method, None)):
            public = sorted(
                m for m in dir(obj) if not m.startswith("_") and callable(getattr(obj, m, None))
            )
            raise SignatureError(
                f"the {type(obj).__name__} object has no method {method!r} to save a signature "
                f"for; its public methods: {', '.join(public[:20]) or '(none)'}"
            )
        try:
            if isinstance(spec, ModelSignature):
                result[method] = spec
            elif isinstance(spec, bool):
                result[method] = ModelSignature(batchable=spec)
            else:
                result[method] = ModelSignature.model_validate(dict(spec or {}))
        except (ValidationError, TypeError, ValueError) as exc:
            raise SignatureError(
                f"invalid signature for {method!r}: {spec!r} ({exc}); expected e.g. "
                "{'batchable': True, 'batch_dim': 0}"
            ) from exc
    return result


def check_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    result = dict(labels or {})
    bad = {k: v for k, v in result.items() if not isinstance(k, str) or not isinstance(v, str)}
    if bad:
        raise NbentoError(f"labels must map strings to strings; got {bad!r}")
    return result


def check_provenance(provenance: Mapping[str, Any] | None) -> Provenance:
    try:
        return Provenance.model_validate(dict(provenance or {}))
    except ValidationError as exc:
        raise NbentoError(
            f"provenance must look like {{'notebook': 'path.ipynb', 'cell_id': 'abc'}}, "
            f"got {provenance!r}"
        ) from exc


def check_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    return jsonable(dict(metadata or {}), "metadata")


def jsonable(value: dict[str, Any], what: str) -> dict[str, Any]:
    """Values stored in model.yaml must survive YAML and JSON (`--json` output)."""
    try:
        return dict(json.loads(json.dumps(value, allow_nan=False)))
    except (TypeError, ValueError) as exc:
        raise NbentoError(
            f"{what} must hold only strings, numbers, booleans, lists and dicts: {exc}. "
            "Convert NumPy values with float(...) / .tolist()."
        ) from exc
