"""JSON schemas of a service's APIs for `bento.yaml` and `apis/openapi.yaml`, read from the
same `ApiSchema` objects the server decodes requests with (so the document describes what the
server really accepts), without starting a server or loading a model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter
from pydantic.errors import PydanticUserError

from .schema import ApiSchema, Param
from .service import ApiSpec, Service

if TYPE_CHECKING:
    from .bento import BentoApi


def _param_schema(p: Param) -> tuple[str, dict[str, Any]]:
    """(media type, schema) of one parameter sent as the whole body."""
    if p.kind == "text":
        return "application/json", {"type": "string"}
    if p.kind == "ndarray":
        assert p.array is not None
        return "application/json", {"type": "array", "description": p.array.describe()}
    if p.kind in ("image", "file"):
        return "application/octet-stream", {"type": "string", "format": "binary"}
    assert p.adapter is not None
    return "application/json", _safe_schema(p.adapter)


def _safe_schema(adapter: TypeAdapter[Any]) -> dict[str, Any]:
    try:
        return adapter.json_schema()
    except (PydanticUserError, TypeError, ValueError):
        return {}  # a type pydantic cannot describe: any JSON


def api_schemas(spec: ApiSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """(input schema, output schema) of one API."""
    schema = ApiSchema(spec)
    if schema.single is not None:
        _, input_schema = _param_schema(schema.single)
    elif schema.request_model is not None:
        input_schema = schema.request_model.model_json_schema()
    else:
        input_schema = {"type": "object"}
    try:
        output_schema = _safe_schema(TypeAdapter(schema.returns))
    except (PydanticUserError, TypeError):
        output_schema = {}
    return input_schema, output_schema


def openapi_document(service: Service, apis: list[BentoApi]) -> dict[str, Any]:
    """OpenAPI 3.1 for the APIs plus the probe endpoints a platform team wires up."""
    paths: dict[str, Any] = {}
    error = {"$ref": "#/components/schemas/Error"}
    for described in apis:
        spec = service.apis[described.name]
        schema = ApiSchema(spec)
        media = "application/json"
        if schema.single is not None:
            media, _ = _param_schema(schema.single)
        if schema.file_params and schema.single is None:
            media = "multipart/form-data"
        paths[described.route] = {
            "post": {
                "operationId": described.name,
                "summary": (described.doc.splitlines() or [described.name])[0],
                "description": described.doc,
                "requestBody": {
                    "required": True,
                    "content": {media: {"schema": described.input_schema}},
                },
                "responses": {
                    "200": {
                        "description": "the API's answer",
                        "content": {"application/json": {"schema": described.output_schema}},
                    },
                    "400": {"description": "malformed body", "content": _json(error)},
                    "422": {
                        "description": "body does not match the schema",
                        "content": _json(error),
                    },
                    "503": {"description": "overloaded or not ready; retry after Retry-After"},
                },
            }
        }
    for probe, what in (
        ("/livez", "the process is alive"),
        ("/readyz", "every runner has loaded its model"),
        ("/metrics", "Prometheus metrics"),
    ):
        paths[probe] = {"get": {"summary": what, "responses": {"200": {"description": "ok"}}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": service.name, "version": service.source_sha256[:12]},
        "paths": paths,
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {"type": "string"},
                        "detail": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "field": {"type": ["string", "null"]},
                                    "message": {"type": "string"},
                                },
                            },
                        },
                    },
                }
            }
        },
    }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}
