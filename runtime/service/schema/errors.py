"""`RequestError`: a request an API cannot take, answered as a 4xx JSON body that names the field
(`{"error": "validation_error", "detail": [{"field": "df.3.age", "message": ...}]}`)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError


class RequestError(Exception):
    """A request the API cannot take: becomes a 4xx JSON body naming the field."""

    def __init__(self, status: int, error: str, field: str | None, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.details: list[dict[str, Any]] = [{"field": field, "message": message}]

    @classmethod
    def from_validation(
        cls, exc: ValidationError, prefix: tuple[str, ...] = (), limit: int | None = 50
    ) -> RequestError:
        """A 422 listing pydantic's errors with dotted fields under `prefix`: at most `limit`,
        then a last entry counting the rest (a frame of 10 000
        rows missing one column would otherwise answer 10 000 details)."""
        errors = exc.errors(include_url=False, include_input=False)
        if any(err["type"] == "json_invalid" for err in errors):
            first = errors[0]
            return cls(400, "invalid_json", None, f"body is not valid JSON: {first['msg']}")
        error = cls(422, "validation_error", None, "")
        shown = errors if limit is None else errors[:limit]
        error.details = [
            {
                "field": ".".join(str(p) for p in (*prefix, *err["loc"])) or None,
                "message": err["msg"],
            }
            for err in shown
        ]
        if len(errors) > len(shown):
            error.details.append({
                "field": None,
                "message": f"... and {len(errors) - len(shown)} more errors like these",
            })
        return error

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "detail": self.details}
