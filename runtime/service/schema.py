"""Type hints are the schema: an API function's signature decides what request body it takes
and how the answer is encoded. The exact mapping is documented in `docs/apis.md`.

    from runtime.service.schema import NDArray

    @api
    def predict(x: NDArray[np.float32, (-1, 4)]) -> list[int]: ...

Everything here is built once per API when a service loads (pydantic `TypeAdapter`s, the
request model of multi-parameter functions), so a request pays only for validation.
"""

from __future__ import annotations

import inspect
import io
import json
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import pydantic_core
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model

from runtime.errors import (
    InvalidBody,
    InvalidJSON,
    RequestError,
    UnsupportedMediaType,
    ValidationFailed,
)
from runtime.service.definition import ApiSpec

ParamKind = Literal["json", "ndarray", "text", "image", "file"]


class ndarray:
    """Annotation metadata for NumPy inputs: `Annotated[np.ndarray, ndarray("float32", (-1, 4))]`.

    `dtype` None accepts any dtype; `shape` uses -1 for "any length" on that axis. A JSON list
    is converted to `dtype`; an npy body must already have a dtype that casts safely."""

    def __init__(self, dtype: Any = None, shape: tuple[int, ...] | None = None) -> None:
        self.dtype = np.dtype(dtype) if dtype is not None else None
        self.shape = tuple(shape) if shape is not None else None

    def describe(self) -> str:
        dtype = self.dtype.name if self.dtype is not None else "any"
        shape = self.shape if self.shape is not None else "any"
        return f"ndarray dtype={dtype} shape={shape}"

    def check(self, array: np.ndarray, field: str) -> np.ndarray:
        if self.dtype is not None and array.dtype != self.dtype:
            if not np.can_cast(array.dtype, self.dtype, casting="same_kind"):
                raise ValidationFailed(
                    f"array dtype {array.dtype.name} cannot be converted to {self.dtype.name}",
                    field,
                )
            array = array.astype(self.dtype)
        if self.shape is not None:
            ok = len(self.shape) == array.ndim and all(
                want in (-1, got) for want, got in zip(self.shape, array.shape, strict=True)
            )
            if not ok:
                raise ValidationFailed(
                    f"array shape {tuple(array.shape)} does not match {self.shape} "
                    f"(-1 means any length)",
                    field,
                )
        return array

    def from_json(self, value: Any, field: str) -> np.ndarray:
        try:
            array = np.asarray(value, dtype=self.dtype)
        except (ValueError, TypeError) as exc:
            want = self.dtype.name if self.dtype is not None else "numbers"
            raise ValidationFailed(f"expected a (nested) list of {want}: {exc}", field) from None
        if array.dtype == object:
            raise ValidationFailed("expected a rectangular (nested) list of numbers", field)
        return self.check(array, field)

    def from_npy(self, body: bytes, field: str) -> np.ndarray:
        try:
            array = np.load(io.BytesIO(body), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InvalidBody(f"body is not a valid .npy array ({exc})", field) from None
        return self.check(array, field)


class NDArray:
    """Shorthand: `NDArray[np.float32, (-1, 4)]` is `Annotated[np.ndarray, ndarray(...)]`;
    `NDArray[np.float32]` fixes only the dtype (a dtype name string works too)."""

    def __class_getitem__(cls, params: Any) -> Any:
        if not isinstance(params, tuple):
            params = (params,)
        return Annotated[np.ndarray, ndarray(*params)]


@dataclass
class UploadedFile:
    """A file input with its metadata (annotate a parameter with it, or with `bytes`)."""

    filename: str | None
    content_type: str | None
    data: bytes


def _invalid(exc: ValidationError, prefix: tuple[str, ...] = ()) -> RequestError:
    """Pydantic's verdict on a body as our error: 400 for JSON that does not parse, else a 422
    naming each field by its dotted path (from the parameter name, for a single parameter)."""
    errors = exc.errors(include_url=False, include_input=False)
    if any(err["type"] == "json_invalid" for err in errors):
        return InvalidJSON(f"body is not valid JSON: {errors[0]['msg']}")
    return ValidationFailed.listing([
        (".".join(str(p) for p in (*prefix, *err["loc"])) or None, err["msg"]) for err in errors
    ])


@dataclass
class Param:
    name: str
    kind: ParamKind
    annotation: Any
    adapter: TypeAdapter[Any] | None
    array: ndarray | None
    required: bool
    default: Any


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
    if array is not None or base is np.ndarray:
        kind, array = "ndarray", array or ndarray()
    elif base is str:
        kind = "text"
    elif base is bytes or base is UploadedFile:
        kind = "file"
    elif isinstance(base, type) and (pil := _pil_image_type()) is not None and issubclass(base, pil):
        kind = "image"
    adapter = TypeAdapter(annotation) if kind in ("json", "text") else None
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
        if single is not None and single.kind in ("json", "text") and _wrappable(single):
            self.wrapped_model = create_model(
                f"{spec.name}_body", __config__=ConfigDict(extra="forbid"),
                **{single.name: (single.annotation, ...)},  # type: ignore[call-overload]
            )

    # -- requests ---------------------------------------------------------------------------

    async def decode(self, content_type: str, body: bytes) -> dict[str, Any]:
        """Turn a request body into the function's keyword arguments, or raise a RequestError."""
        media = content_type.split(";", 1)[0].strip().lower()
        if media in ("", "application/x-www-form-urlencoded"):
            media = "application/json"  # no type, or curl -d's default: read the body as JSON
        if media == "multipart/form-data":
            return await self._decode_form(content_type, body)
        single = self.single
        if single is not None:
            return {single.name: self._decode_single(single, media, body)}
        if self.file_params:
            raise UnsupportedMediaType(
                f"API '{self.spec.name}' takes a file; send multipart/form-data",
                self.file_params[0].name,
            )
        if media != "application/json" and not media.endswith("+json"):
            raise UnsupportedMediaType(
                f"send a JSON object with fields {[p.name for p in self.params]} "
                f"(Content-Type: application/json), not {media}",
            )
        assert self.request_model is not None
        if not body:
            raise InvalidJSON("empty body; send a JSON object")
        try:
            model = self.request_model.model_validate_json(body)
        except ValidationError as exc:
            raise _invalid(exc) from None
        kwargs = {p.name: getattr(model, p.name) for p in self.params if p.kind != "ndarray"}
        for p in self.params:
            if p.kind == "ndarray":
                value = getattr(model, p.name)
                kwargs[p.name] = value if value is p.default else p.array.from_json(value, p.name)  # type: ignore[union-attr]
        return kwargs

    def _decode_single(self, p: Param, media: str, body: bytes) -> Any:
        is_json = media == "application/json" or media.endswith("+json")
        if p.kind == "text" and media.startswith("text/"):
            try:
                return body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidBody(f"text is not UTF-8: {exc}", p.name) from None
        if p.kind in ("json", "text") and is_json:
            assert p.adapter is not None
            wrapped = self.wrapped_model
            try:
                if wrapped is not None and body.lstrip().startswith(b"{"):
                    return getattr(wrapped.model_validate_json(body), p.name)
                return p.adapter.validate_json(body)
            except ValidationError as exc:
                raise _invalid(
                    exc, () if wrapped is not None and body.lstrip().startswith(b"{") else (p.name,)
                ) from None
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
        raise UnsupportedMediaType(_media_hint(p, media), p.name)

    async def _decode_form(self, content_type: str, body: bytes) -> dict[str, Any]:
        from starlette.datastructures import UploadFile
        from starlette.requests import Request

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        scope = {"type": "http", "method": "POST", "headers": [(b"content-type", content_type.encode())]}
        try:
            form = await Request(scope, receive).form()
        except Exception as exc:
            raise InvalidBody(f"malformed multipart body: {exc}") from None
        kwargs: dict[str, Any] = {}
        uploads = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        for p in self.params:
            value = form.get(p.name)
            if value is None and p.kind in ("image", "file") and len(self.file_params) == 1 and len(uploads) == 1:
                value = uploads[0]  # one file field, whatever the client named it
            if value is None:
                if p.required:
                    raise ValidationFailed("field required", p.name)
                kwargs[p.name] = p.default
                continue
            if isinstance(value, UploadFile):
                data = await value.read()
                if p.kind == "image":
                    kwargs[p.name] = _open_image(data, p.name)
                elif p.kind == "file":
                    kwargs[p.name] = _file_value(p, UploadedFile(value.filename, value.content_type, data))
                elif p.kind == "ndarray":
                    assert p.array is not None
                    kwargs[p.name] = p.array.from_npy(data, p.name)
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
            raise ValidationFailed("expected a file upload", p.name)
        assert p.adapter is not None
        if p.kind == "text":
            return text
        try:
            return p.adapter.validate_json(text)
        except ValidationError:
            try:
                return p.adapter.validate_python(text)
            except ValidationError as exc:
                raise _invalid(exc, (p.name,)) from None

    # -- responses --------------------------------------------------------------------------

    @staticmethod
    def encode(value: Any) -> tuple[bytes, str]:
        """(body, media type): str -> text/plain, bytes -> octet-stream, PIL image -> PNG,
        anything else JSON (NumPy arrays and scalars become lists and numbers)."""
        if isinstance(value, str):
            return value.encode("utf-8"), "text/plain; charset=utf-8"
        if isinstance(value, bytes | bytearray):
            return bytes(value), "application/octet-stream"
        pil = _pil_image_type()
        if pil is not None and isinstance(value, pil):
            out = io.BytesIO()
            value.save(out, format="PNG")  # type: ignore[attr-defined]
            return out.getvalue(), "image/png"
        return pydantic_core.to_json(value, fallback=_json_fallback), "application/json"



def _json_fallback(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(
        f"cannot encode a {type(value).__name__} as JSON; return lists, dicts, numbers, "
        f"strings, NumPy arrays or pydantic models"
    )


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError as exc:
        raise InvalidJSON(f"body is not valid JSON: {exc}") from None


def _open_image(data: bytes, field: str) -> Any:
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:  # pragma: no cover
        raise UnsupportedMediaType("pillow is not installed", field) from None
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ValidationFailed(f"not a readable image: {exc}", field) from None
    return image


def _file_value(p: Param, upload: UploadedFile) -> Any:
    return upload if p.annotation is UploadedFile else upload.data


def _media_hint(p: Param, media: str) -> str:
    wanted = {
        "json": "application/json",
        "text": "text/plain or a JSON string",
        "ndarray": "a JSON (nested) list or application/octet-stream with an .npy file",
        "image": "an image/* body or multipart/form-data with one image file",
        "file": "application/octet-stream or multipart/form-data with one file",
    }[p.kind]
    return f"parameter '{p.name}' takes {wanted}, not {media}"


def _wrappable(p: Param) -> bool:
    """A parameter whose JSON form is not an object (list, string, number)."""
    if p.adapter is None:
        return False
    try:
        kind = p.adapter.json_schema().get("type")
    except Exception:
        return False
    return kind not in (None, "object")
