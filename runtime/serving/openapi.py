"""OpenAPI for a service: one `POST /{api}` operation per API, request and response schemas from
the type hints (the same hints `runtime.service.schema` validates against). Rebuilt per generation, so
`/docs` follows hot reloads."""

from __future__ import annotations

import html
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, TypeAdapter

from runtime.errors import NbentoError
from runtime.service.schema import ApiSchema, FrameSpec, Param
from runtime.service.schema.frames import CSV_MEDIA, PARQUET_MEDIA, pandas_kind
from runtime.serving.error_body import ErrorBody

if TYPE_CHECKING:
    from fastapi import FastAPI

    from runtime.service.definition import Service
    from runtime.serving.host import ServiceHost

_REF = "#/components/schemas/{model}"


def _error_components(ref: str = _REF) -> dict[str, Any]:
    """`ErrorBody` and the models it uses, as components (the one error body both servers send)."""
    schema = ErrorBody.model_json_schema(ref_template=ref)
    components: dict[str, Any] = schema.pop("$defs", {})
    components[ErrorBody.__name__] = schema
    return components


def _error_responses(ref: str = _REF) -> dict[str, Any]:
    """The error answers of an API operation, each with the `ErrorBody` schema."""
    content = {"application/json": {"schema": {"$ref": ref.format(model=ErrorBody.__name__)}}}
    retry = {"Retry-After": {
        "description": "seconds to wait before retrying", "schema": {"type": "integer"},
    }}
    answers = {
        "400": ("malformed body: not JSON, not UTF-8, an unreadable .npy or multipart", None),
        "405": ("a method other than POST (the Allow header says POST)", None),
        "413": ("body over max_body_bytes, or more rows than a runner queue can hold", None),
        "415": ("a Content-Type this API cannot take (the message says which it takes)", None),
        "422": ("the input does not fit the type hints; `fields` names each field", None),
        "500": ("the API function raised: `id` finds the traceback in the server log", None),
        "503": ("a runner queue is full or a runner is not ready: retry after Retry-After", retry),
    }
    return {
        status: {"description": what, "content": content, **({"headers": headers} if headers else {})}
        for status, (what, headers) in answers.items()
    }


def _schema(annotation: Any, components: dict[str, Any], ref: str = _REF) -> dict[str, Any]:
    try:
        schema = TypeAdapter(annotation).json_schema(ref_template=ref)
    except Exception:  # an annotation pydantic cannot describe: leave it open
        return {}
    components.update(schema.pop("$defs", {}))
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        components[annotation.__name__] = schema  # named models are shown by name in /docs
        return {"$ref": ref.format(model=annotation.__name__)}
    return schema


def _param_schema(p: Param, components: dict[str, Any], ref: str = _REF) -> dict[str, Any]:
    if p.kind == "ndarray":
        assert p.array is not None
        dims = len(p.array.shape) if p.array.shape is not None else 1
        item: dict[str, Any] = {"type": "number"}
        for _ in range(dims):
            item = {"type": "array", "items": item}
        return {**item, "description": p.array.describe()}
    if p.kind in ("image", "file"):
        return {"type": "string", "format": "binary"}
    if p.frame is not None:
        return _frame_schema(p.frame, components, ref)
    return _schema(p.annotation, components, ref)


def _frame_schema(frame: FrameSpec, components: dict[str, Any], ref: str = _REF) -> dict[str, Any]:
    """A DataFrame as JSON records (one object per row, the row model's columns when declared);
    a Series as a list of values."""
    schema = _schema(frame.annotation, components, ref)
    if frame.kind == "series":
        return {**schema, "description": "a pandas Series: a JSON list of values"}
    return {
        **schema,
        "description": "a pandas DataFrame as JSON records, one object per row"
        + ("" if frame.row is not None else " (columns not declared: pandas infers them)"),
    }


def _frame_response(annotation: Any, components: dict[str, Any], ref: str = _REF) -> dict[str, Any]:
    frame = FrameSpec.from_annotation(annotation, "")
    if frame.kind == "dataframe":
        return {
            **_frame_schema(frame, components, ref),
            "description": "a pandas DataFrame as JSON records, one object per row (a named "
            "index becomes columns)",
        }
    item = _schema(frame.item, components, ref)
    return {
        "oneOf": [
            {"type": "array", "items": item},
            {"type": "object", "additionalProperties": item},
        ],
        "description": "a pandas Series: a list, or an object keyed by its index when the index "
        "is not 0..n-1",
    }


def _request_body(schema: ApiSchema, components: dict[str, Any], ref: str = _REF) -> dict[str, Any]:
    content: dict[str, Any] = {}
    single = schema.single
    if single is not None:
        body = _param_schema(single, components, ref)
        if schema.wrapped_model is not None or single.kind == "ndarray":
            # canonical form: an object naming the parameter ({"texts": [...]}); the bare
            # value is accepted too (docs/apis.md)
            content["application/json"] = {"schema": {
                "type": "object", "properties": {single.name: body}, "required": [single.name],
                "additionalProperties": False,
            }}
        elif single.kind in ("json", "text"):
            content["application/json"] = {"schema": body}
        if single.kind == "text":
            content["text/plain"] = {"schema": {"type": "string"}}
        if single.frame is not None and single.frame.kind == "dataframe":
            content[CSV_MEDIA] = {"schema": {
                "type": "string", "description": "a header line naming the columns, then one line per row",
            }}
            if importlib.util.find_spec("pyarrow") is not None:
                content[PARQUET_MEDIA] = {"schema": {"type": "string", "format": "binary"}}
        if single.kind == "ndarray":
            content["application/octet-stream"] = {
                "schema": {"type": "string", "format": "binary", "description": "an .npy file"}
            }
        if single.kind in ("image", "file"):
            media = "image/*" if single.kind == "image" else "application/octet-stream"
            content[media] = {"schema": body}
            content["multipart/form-data"] = {
                "schema": {"type": "object", "properties": {single.name: body}, "required": [single.name]}
            }
    else:
        properties = {p.name: _param_schema(p, components, ref) for p in schema.params}
        required = [p.name for p in schema.params if p.required]
        obj = {"type": "object", "properties": properties, "required": required}
        if schema.file_params:
            content["multipart/form-data"] = {"schema": obj}
        else:
            content["application/json"] = {"schema": obj}
    return {"required": True, "content": content}


def _response(schema: ApiSchema, components: dict[str, Any], ref: str = _REF) -> dict[str, Any]:
    returns = schema.returns
    if returns is str:
        return {"text/plain": {"schema": {"type": "string"}}}
    if returns is bytes:
        return {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    if pandas_kind(returns) is not None:
        return {"application/json": {"schema": _frame_response(returns, components, ref)}}
    return {"application/json": {"schema": _schema(returns, components, ref)}}


def build_openapi(app: FastAPI, host: ServiceHost, *, token: bool = False) -> dict[str, Any]:
    """The document `/openapi.json` serves: the live generation's, cached per generation.
    With `token` (the server requires the API token) every API declares the bearer scheme, so
    /docs has an Authorize button and its Try it out sends the token."""
    cached = getattr(app, "_nbento_openapi", None)
    if cached is not None and cached[0] == host.generation:
        return cached[1]
    if host.service is None:
        return {"openapi": "3.1.0", "info": {"title": "nbento", "version": "0"}, "paths": {}}
    schemas = [endpoint.schema for endpoint in host.endpoints.values()]
    doc = service_openapi(host.service, schemas)
    if token:
        _require_token(doc, {endpoint.spec.route for endpoint in host.endpoints.values()})
    app._nbento_openapi = (host.generation, doc)  # type: ignore[attr-defined]
    return doc


TOKEN_SCHEME = "apiToken"


def _require_token(doc: dict[str, Any], routes: set[str]) -> None:
    doc.setdefault("components", {}).setdefault("securitySchemes", {})[TOKEN_SCHEME] = {
        "type": "http", "scheme": "bearer",
        "description": "The server's API token (NBENTO_API_TOKEN or NBENTO_API_TOKEN_FILE), "
                       "sent as 'Authorization: Bearer <token>'.",
    }
    for route, operations in doc["paths"].items():
        if route in routes:
            for operation in operations.values():
                operation["security"] = [{TOKEN_SCHEME: []}]
                operation["responses"].setdefault(
                    "401", {"description": "the API token is missing or does not match"})


def service_openapi(service: Service, schemas: list[ApiSchema] | None = None) -> dict[str, Any]:
    """The OpenAPI document of `service` without a server (for example for a Bento build):
    the same one a server of this code serves at `/openapi.json`."""
    if schemas is None:
        schemas = [ApiSchema(spec) for spec in service.apis.values()]
    components: dict[str, Any] = _error_components()
    paths: dict[str, Any] = {}
    for schema in schemas:
        spec = schema.spec
        summary, _, description = spec.doc.partition("\n")
        paths[spec.route] = {
            "post": {
                "operationId": spec.name,
                "summary": summary or spec.name,
                "description": description.strip() + (
                    "\n\nBatchable: the body is a batch of rows; rows of concurrent requests "
                    "are grouped into one call." if spec.batchable else ""
                ),
                "requestBody": _request_body(schema, components),
                "responses": {
                    "200": {"description": "OK", "content": _response(schema, components)},
                    **_error_responses(),
                },
            }
        }
    for probe, what in (
        ("/livez", "the process is alive"),
        ("/readyz", "every runner has loaded its model (503 until then)"),
        ("/metrics", "Prometheus metrics"),
    ):
        paths[probe] = {"get": {"summary": what, "responses": {"200": {"description": "ok"}}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": service.name,
            "version": service.source_sha256[:12],
            "description": "Served by nbento.",
        },
        "paths": paths,
        "components": {"schemas": components},
    }


def api_io_schemas(schema: ApiSchema) -> tuple[dict[str, Any], dict[str, Any]]:
    """(input, output) JSON schemas of one API, self-contained (`$defs` inside), as the
    server's OpenAPI document describes them; for `bento.yaml`."""
    defs: dict[str, Any] = {}
    ref = "#/$defs/{model}"
    body = _request_body(schema, defs, ref)["content"]
    response = _response(schema, defs, ref)
    input_schema = dict(next(iter(body.values()))["schema"])
    output_schema = dict(next(iter(response.values()))["schema"])
    if defs:
        input_schema["$defs"] = output_schema["$defs"] = defs
    return input_schema, output_schema


# --- /docs without a CDN -------------------------------------------------------------------
# Swagger UI's files come from the `fastapi-offline` wheel (a serving dependency), so /docs
# renders offline and in air-gapped clusters. Every URL in the page is relative: the same page
# works at `http://127.0.0.1:PORT/docs` and behind the Jupyter proxy
# (`{base_url}nbento/proxy/ID/docs`). The request interceptor copies Jupyter's `_xsrf` cookie
# into `X-XSRFToken` so "Try it out" POSTs pass Jupyter's XSRF check behind the proxy; a
# server reached directly ignores that header.
DOCS_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
_DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - API docs</title>
<link rel="icon" type="image/png" href="docs/favicon.png">
<link rel="stylesheet" href="docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/swagger-ui-bundle.js"></script>
<script>
function nbentoXsrf() {{
  var m = document.cookie.match(/(?:^|; )_xsrf=([^;]*)/);
  return m ? decodeURIComponent(m[1]) : null;
}}
window.ui = SwaggerUIBundle({{
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  showExtensions: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
  layout: "BaseLayout",
  requestInterceptor: function (req) {{
    var token = nbentoXsrf();
    if (token) {{ req.headers["X-XSRFToken"] = token; }}
    return req;
  }}
}});
</script>
</body>
</html>
"""


def docs_assets_dir() -> Path:
    """Where Swagger UI's files are on this machine (inside the fastapi-offline package)."""
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        raise NbentoError(
            "Swagger UI's files are missing: the package fastapi-offline is not installed; "
            "install nbento's serving dependencies (pip install fastapi-offline)"
        )
    return Path(spec.origin).parent / "static"


def install_docs(app: FastAPI) -> None:
    """`GET /docs` (Swagger UI, every asset served from here) and `GET /docs/{asset}`."""
    from fastapi.responses import FileResponse, HTMLResponse

    from runtime.errors import NotFound

    folder = docs_assets_dir()
    page = _DOCS_PAGE.format(title=html.escape(app.title))

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/docs/{asset}", include_in_schema=False)
    async def docs_asset(asset: str) -> FileResponse:
        media = DOCS_ASSETS.get(asset)
        if media is None:
            raise NotFound(f"no docs asset {asset!r}; /docs serves {', '.join(sorted(DOCS_ASSETS))}")
        return FileResponse(folder / asset, media_type=media,
                            headers={"Cache-Control": "public, max-age=86400"})
