"""`ApiSchema`: one API's signature as a request decoder and a response encoder. Built once per
API when a service loads (pydantic `TypeAdapter`s, the request model of multi-parameter
functions), so a request pays only for validation. The mapping is documented in docs/apis.md.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import json
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import pydantic_core
from pydantic import (
    BaseModel,
    ConfigDict,
    PydanticSchemaGenerationError,
    TypeAdapter,
    ValidationError,
    create_model,
)

from runtime.service.definition import ApiSpec
from runtime.service.schema.arrays import ndarray
from runtime.service.schema.errors import from_validation, request_error
from runtime.service.schema.frames import FrameSpec, pandas_kind, to_jsonable

ParamKind = Literal["json", "ndarray", "text", "image", "file", "frame"]
MAX_IMAGE_PIXELS = 40_000_000
"""Largest image input, width x height (a 650 KB PNG can declare 13000x13000 pixels and take
700 MB to decode); larger ones get 413 before their pixels are decoded."""
_FORM_MEDIA = ("application/x-www-form-urlencoded", "multipart/form-data")


@dataclass
class UploadedFile:
    """A file input with its metadata (annotate a parameter with it, or with `bytes`)."""

    filename: str | None
    content_type: str | None
    data: bytes


@dataclass
class Param:
    name: str
    kind: ParamKind
    annotation: Any
    adapter: TypeAdapter[Any] | None
    array: ndarray | None
    required: bool
    default: Any
    frame: FrameSpec | None = None


def _adapter(name: str, annotation: Any) -> TypeAdapter[Any]:
    try:
        return TypeAdapter(annotation)
    except PydanticSchemaGenerationError as exc:
        hint = (
            " A DataFrame or Series must be the whole annotation (pd.DataFrame, DataFrameOf[Row], "
            "Annotated[pd.Series, float]); for an optional one write `df: pd.DataFrame = None`."
            if "pandas" in repr(annotation) else ""
        )
        reason = str(exc).splitlines()[0]
        raise TypeError(
            f"parameter '{name}': a request cannot carry {annotation!r} ({reason}).{hint} "
            f"docs/apis.md lists the types an API can take"
        ) from None


def _pil_image_type() -> type | None:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is optional
        return None
    return Image.Image


def _param(name: str, annotation: Any, default: Any) -> Param:
    required = default is inspect.Parameter.empty
    kind: ParamKind = "json"
    array: ndarray | None = None
    base = annotation
    if typing.get_origin(annotation) is Annotated:
        base, *extras = typing.get_args(annotation)
        array = next((e for e in extras if isinstance(e, ndarray)), None)
    if pandas_kind(annotation) is not None:
        frame = FrameSpec.from_annotation(annotation, name)
        return Param(
            name, "frame", annotation, frame.adapter, None, required,
            None if required else default, frame,
        )
    if array is not None or base is np.ndarray:
        kind, array = "ndarray", array or ndarray()
    elif base is str:
        kind = "text"
    elif base is bytes or base is UploadedFile:
        kind = "file"
    elif isinstance(base, type) and (pil := _pil_image_type()) is not None and issubclass(base, pil):
        kind = "image"
    adapter = _adapter(name, annotation) if kind in ("json", "text") else None
    return Param(name, kind, annotation, adapter, array, required, None if required else default)


class ApiSchema:
    """The request decoder and response encoder of one API, built from its signature."""

    def __init__(self, spec: ApiSpec) -> None:
        self.spec = spec
        func = spec.func
        try:
            hints = typing.get_type_hints(func, include_extras=True)
        except Exception as exc:
            raise TypeError(f"cannot read the type hints of {func.__qualname__}: {exc}") from exc
        self.params: list[Param] = []
        for arg in inspect.signature(func).parameters.values():
            if arg.kind in (arg.VAR_POSITIONAL, arg.VAR_KEYWORD):
                raise TypeError(
                    f"API '{spec.name}': *args/**kwargs cannot be served; name each input"
                )
            self.params.append(_param(arg.name, hints.get(arg.name, Any), arg.default))
        self.returns = hints.get("return", Any)
        self.single = self.params[0] if len(self.params) == 1 else None
        if spec.batchable and (self.single is None or self.single.kind not in ("json", "ndarray")):
            raise TypeError(
                f"batchable API '{spec.name}' must take exactly one list or ndarray parameter "
                f"(the batch); it takes {[p.name for p in self.params]}"
            )
        self.request_model: type[BaseModel] | None = None
        if self.single is None:
            fields: dict[str, Any] = {}
            for p in self.params:
                if p.kind in ("json", "text"):
                    fields[p.name] = (p.annotation, ... if p.required else p.default)
                elif p.kind == "frame":
                    assert p.frame is not None
                    fields[p.name] = (p.frame.annotation, ... if p.required else p.default)
                elif p.kind == "ndarray":
                    fields[p.name] = (list[Any], ... if p.required else p.default)
            self.request_model = create_model(
                f"{spec.name}_request", __config__=ConfigDict(extra="forbid"), **fields
            )
        self.file_params = [p for p in self.params if p.kind in ("image", "file")]
        # `{"texts": [...]}` for a single `texts: list[str]`: the canonical body (the field
        # name says what the value is), decoded in one pass. Only for parameters that cannot
        # themselves be an object, so the bare-value reading never clashes with it.
        self.wrapped_model: type[BaseModel] | None = None
        single = self.single
        if single is not None and single.kind in ("json", "text", "frame") and _wrappable(single):
            wire = single.frame.annotation if single.frame is not None else single.annotation
            self.wrapped_model = create_model(
                f"{spec.name}_body", __config__=ConfigDict(extra="forbid"),
                **{single.name: (wire, ...)},  # type: ignore[call-overload]
            )

    # -- requests ---------------------------------------------------------------------------

    async def decode(self, content_type: str, body: bytes) -> dict[str, Any]:
        """Turn a request body into the function's keyword arguments, or raise RequestError."""
        media = _media(content_type)
        if media == "":
            media = "application/json"  # no type: read the body as JSON
        if media in _FORM_MEDIA and not self.file_params:
            # What an HTML form (any web page) can post without asking: never read as JSON.
            raise request_error(
                415, "unsupported_media_type", None,
                f"API '{self.spec.name}' takes JSON, not {media}: send Content-Type: "
                f"application/json (curl -d sends a form; add -H 'Content-Type: "
                f"application/json' or use --json)",
            )
        if media == "multipart/form-data":
            return await self._decode_form(content_type, body)
        single = self.single
        if single is not None:
            if single.kind == "image":  # decoding can take seconds: not on the event loop
                value = await asyncio.to_thread(self._decode_single, single, media, body)
                return {single.name: value}
            return {single.name: self._decode_single(single, media, body)}
        if self.file_params:
            raise request_error(
                415, "unsupported_media_type", self.file_params[0].name,
                f"API '{self.spec.name}' takes a file; send multipart/form-data",
            )
        if media != "application/json" and not media.endswith("+json"):
            raise request_error(
                415, "unsupported_media_type", None,
                f"send a JSON object with fields {[p.name for p in self.params]} "
                f"(Content-Type: application/json), not {media}",
            )
        assert self.request_model is not None
        if not body:
            raise request_error(400, "invalid_json", None, "empty body; send a JSON object")
        try:
            model = self.request_model.model_validate_json(body)
        except ValidationError as exc:
            raise from_validation(exc) from None
        kwargs = {p.name: getattr(model, p.name) for p in self.params}
        for p in self.params:
            value = kwargs[p.name]
            if value is p.default and not p.required:
                continue
            if p.kind == "ndarray":
                kwargs[p.name] = p.array.from_json(value, p.name)  # type: ignore[union-attr]
            elif p.kind == "frame":
                kwargs[p.name] = p.frame.build(value)  # type: ignore[union-attr]
        return kwargs

    def _decode_single(self, p: Param, media: str, body: bytes) -> Any:
        is_json = media == "application/json" or media.endswith("+json")
        if p.kind == "text" and media.startswith("text/"):
            try:
                return body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise request_error(400, "invalid_body", p.name, f"text is not UTF-8: {exc}") from None
        if p.kind in ("json", "text", "frame") and is_json:
            assert p.adapter is not None
            wrapped = self.wrapped_model
            named = wrapped is not None and body.lstrip().startswith(b"{")
            try:
                if named:
                    assert wrapped is not None
                    value = getattr(wrapped.model_validate_json(body), p.name)
                else:
                    value = p.adapter.validate_json(body)
            except ValidationError as exc:
                raise from_validation(exc, () if named else (p.name,)) from None
            return p.frame.build(value) if p.frame is not None else value
        if p.frame is not None and p.frame.accepts(media):
            return p.frame.decode_body(media, body)
        if p.kind == "ndarray":
            assert p.array is not None
            if media == "application/octet-stream" or media == "application/x-npy":
                return p.array.from_npy(body, p.name)
            if is_json:
                value = _parse_json(body)
                if isinstance(value, dict) and set(value) == {p.name}:
                    value = value[p.name]
                return p.array.from_json(value, p.name)
        if p.kind == "image" and (media.startswith("image/") or media == "application/octet-stream"):
            return _open_image(body, p.name)
        if p.kind == "file" and not is_json:
            return _file_value(p, UploadedFile(None, media, body))
        raise request_error(415, "unsupported_media_type", p.name, _media_hint(p, media))

    async def _decode_form(self, content_type: str, body: bytes) -> dict[str, Any]:
        from starlette.datastructures import UploadFile
        from starlette.requests import Request

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        scope = {"type": "http", "method": "POST", "headers": [(b"content-type", content_type.encode())]}
        try:
            form = await Request(scope, receive).form()
        except Exception as exc:
            raise request_error(400, "invalid_body", None, f"malformed multipart body: {exc}") from None
        kwargs: dict[str, Any] = {}
        uploads = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        for p in self.params:
            value = form.get(p.name)
            if value is None and p.kind in ("image", "file") and len(self.file_params) == 1 and len(uploads) == 1:
                value = uploads[0]  # one file field, whatever the client named it
            if value is None:
                if p.required:
                    raise request_error(422, "validation_error", p.name, "field required")
                kwargs[p.name] = p.default
                continue
            if isinstance(value, UploadFile):
                data = await value.read()
                if p.kind == "image":
                    kwargs[p.name] = await asyncio.to_thread(_open_image, data, p.name)
                elif p.kind == "file":
                    kwargs[p.name] = _file_value(p, UploadedFile(value.filename, value.content_type, data))
                elif p.kind == "ndarray":
                    assert p.array is not None
                    kwargs[p.name] = p.array.from_npy(data, p.name)
                elif p.frame is not None and p.frame.accepts(_media(value.content_type)):
                    kwargs[p.name] = p.frame.decode_body(_media(value.content_type), data)
                else:
                    kwargs[p.name] = self._form_value(p, data.decode("utf-8", "replace"))
            else:
                kwargs[p.name] = self._form_value(p, value)
        return kwargs

    def _form_value(self, p: Param, text: str) -> Any:
        if p.kind == "ndarray":
            assert p.array is not None
            return p.array.from_json(_parse_json(text.encode()), p.name)
        if p.kind in ("image", "file"):
            raise request_error(422, "validation_error", p.name, "expected a file upload")
        assert p.adapter is not None
        if p.kind == "text":
            return text
        if p.frame is not None:
            try:
                return p.frame.build(p.adapter.validate_json(text))
            except ValidationError as exc:
                raise from_validation(exc, (p.name,)) from None
        try:
            return p.adapter.validate_json(text)
        except ValidationError:
            try:
                return p.adapter.validate_python(text)
            except ValidationError as exc:
                raise from_validation(exc, (p.name,)) from None

    # -- responses --------------------------------------------------------------------------

    @staticmethod
    def encode(value: Any) -> tuple[bytes, str]:
        """(body, media type): str -> text/plain, bytes -> octet-stream, PIL image -> PNG,
        anything else JSON (NumPy arrays and scalars become lists and numbers, pandas
        DataFrames records, NaN and infinities null)."""
        if isinstance(value, str):
            return value.encode("utf-8"), "text/plain; charset=utf-8"
        if isinstance(value, bytes | bytearray):
            return bytes(value), "application/octet-stream"
        pil = _pil_image_type()
        if pil is not None and isinstance(value, pil):
            out = io.BytesIO()
            value.save(out, format="PNG")  # type: ignore[attr-defined]
            return out.getvalue(), "image/png"
        body = pydantic_core.to_json(value, fallback=_json_fallback, inf_nan_mode="null")
        return body, "application/json"


def _json_fallback(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, set | frozenset):
        return list(value)
    if type(value).__module__.split(".", 1)[0] == "pandas":
        return to_jsonable(value)
    raise TypeError(
        f"cannot encode a {type(value).__name__} as JSON; return lists, dicts, numbers, "
        f"strings, NumPy arrays, pandas DataFrames or pydantic models"
    )


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise request_error(400, "invalid_json", None, f"body is not valid JSON: {exc}") from None
    except RecursionError:
        raise request_error(
            400, "invalid_json", None, "body nests arrays or objects too deeply to read"
        ) from None


def _open_image(data: bytes, field: str) -> Any:
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # pragma: no cover
        raise request_error(415, "unsupported_media_type", field, "pillow is not installed") from None
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            raise _too_many_pixels(field, f"an image of {width}x{height} pixels")
        image.load()
    except Image.DecompressionBombError:  # pillow's own check, at open, for the largest ones
        raise _too_many_pixels(field, "an image of over 2 x pillow's MAX_IMAGE_PIXELS") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise request_error(422, "validation_error", field, f"not a readable image: {exc}") from None
    return image


def _too_many_pixels(field: str, what: str) -> Exception:
    return request_error(
        413, "body_too_large", field,
        f"{what} is over the limit of {MAX_IMAGE_PIXELS} pixels "
        f"(runtime.service.schema.api_schema.MAX_IMAGE_PIXELS); send a smaller image",
    )


def _file_value(p: Param, upload: UploadedFile) -> Any:
    return upload if p.annotation is UploadedFile else upload.data


def _media_hint(p: Param, media: str) -> str:
    wanted = {
        "json": "application/json",
        "text": "text/plain or a JSON string",
        "ndarray": "a JSON (nested) list or application/octet-stream with an .npy file",
        "image": "an image/* body or multipart/form-data with one image file",
        "file": "application/octet-stream or multipart/form-data with one file",
        "frame": "JSON records ([{\"column\": value, ...}, ...]), text/csv or "
        "application/vnd.apache.parquet" if p.frame is not None and p.frame.kind == "dataframe"
        else "a JSON list of values",
    }[p.kind]
    return f"parameter '{p.name}' takes {wanted}, not {media}"


def _media(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _wrappable(p: Param) -> bool:
    """A parameter whose JSON form is not an object (list, string, number)."""
    if p.adapter is None:
        return False
    try:
        kind = p.adapter.json_schema().get("type")
    except Exception:
        return False
    return kind not in (None, "object")
