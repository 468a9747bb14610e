"""How the schema code raises request errors: thin constructors over the one error model in
`runtime.errors` (the classes, their statuses and the JSON body live there)."""

from __future__ import annotations

from pydantic import ValidationError

from runtime.errors import (
    BodyTooLarge,
    InvalidBody,
    InvalidJSON,
    RequestError,
    UnsupportedMediaType,
    ValidationFailed,
)

_BY_CODE: dict[str, type[RequestError]] = {
    cls.code: cls
    for cls in (InvalidBody, InvalidJSON, BodyTooLarge, UnsupportedMediaType, ValidationFailed)
}


def request_error(status: int, code: str, field: str | None, message: str) -> RequestError:
    """The error class for `code` (whose status is `status`), naming `field`."""
    cls = _BY_CODE[code]
    assert cls.status == status, (cls, status)
    return cls(message, field)


def from_validation(
    exc: ValidationError, prefix: tuple[str, ...] = (), limit: int | None = 50
) -> RequestError:
    """Pydantic's verdict on a body as our error: 400 for JSON that does not parse, else a 422
    naming each field by its dotted path under `prefix`; at most `limit` problems, then one entry
    counting the rest (a frame of 10 000 rows missing one column would otherwise list 10 000)."""
    errors = exc.errors(include_url=False, include_input=False)
    if any(err["type"] == "json_invalid" for err in errors):
        return InvalidJSON(f"body is not valid JSON: {errors[0]['msg']}")
    shown = errors if limit is None else errors[:limit]
    problems: list[tuple[str | None, str]] = [
        (".".join(str(p) for p in (*prefix, *err["loc"])) or None, err["msg"]) for err in shown
    ]
    if len(errors) > len(shown):
        problems.append((None, f"... and {len(errors) - len(shown)} more errors like these"))
    return ValidationFailed.listing(problems)


__all__ = ["RequestError", "from_validation", "request_error"]
