"""Type hints as the schema: decoding bodies of each kind into arguments, and encoding answers.
(Over real HTTP in test_app.py; here the decoder itself, edge by edge.)"""

from __future__ import annotations

import asyncio
import io
import json
from typing import Annotated, Any

import numpy as np
import pytest
from PIL import Image
from pydantic import BaseModel

from runtime.service.definition import api
from runtime.service.schema import ApiSchema, NDArray, RequestError, UploadedFile, ndarray


class Item(BaseModel):
    name: str
    qty: int = 1


def schema_of(fn: Any, **options: Any) -> ApiSchema:
    api(fn, **options)
    return ApiSchema(fn.__nbento_api__)


def decode(schema: ApiSchema, body: bytes | str, content_type: str = "application/json") -> dict[str, Any]:
    data = body.encode() if isinstance(body, str) else body
    return asyncio.run(schema.decode(content_type, data))


def refused(schema: ApiSchema, body: bytes | str, content_type: str = "application/json") -> RequestError:
    with pytest.raises(RequestError) as info:
        decode(schema, body, content_type)
    return info.value


def test_single_parameter_body_is_the_value() -> None:
    def classify(texts: list[str]) -> dict: ...

    s = schema_of(classify)
    assert decode(s, '["a", "b"]') == {"texts": ["a", "b"]}
    # the field-named object also works when the type cannot itself be an object
    assert decode(s, '{"texts": ["a"]}') == {"texts": ["a"]}
    err = refused(s, '["a", 3]')
    assert (err.status, err.code, err.field) == (422, "validation_error", "texts.1")
    assert refused(s, '["a"').code == "invalid_json"


def test_pydantic_model_parameter() -> None:
    def order(item: Item) -> dict: ...

    s = schema_of(order)
    assert decode(s, '{"name": "x", "qty": 3}') == {"item": Item(name="x", qty=3)}
    err = refused(s, '{"qty": "many"}')
    assert err.status == 422
    assert {field for field, _ in err.fields} == {"item.name", "item.qty"}


def test_multiple_parameters_take_an_object() -> None:
    def multi(a: int, tags: list[str], x: NDArray[np.float32, (-1,)], scale: float = 1.5) -> dict: ...

    s = schema_of(multi)
    kwargs = decode(s, '{"a": 1, "tags": ["t"], "x": [1, 2]}')
    assert kwargs["a"] == 1 and kwargs["tags"] == ["t"] and kwargs["scale"] == 1.5
    assert kwargs["x"].dtype == np.float32 and kwargs["x"].tolist() == [1.0, 2.0]
    err = refused(s, '{"a": 1, "x": [1], "extra": 2}')
    assert err.status == 422
    assert {field for field, _ in err.fields} == {"tags", "extra"}
    assert refused(s, "a=1", "text/csv").status == 415


def test_ndarray_json_and_npy() -> None:
    def predict(x: Annotated[np.ndarray, ndarray(dtype="float32", shape=(-1, 2))]) -> list: ...

    s = schema_of(predict)
    assert decode(s, "[[1, 2], [3, 4]]")["x"].shape == (2, 2)
    buf = io.BytesIO()
    np.save(buf, np.ones((3, 2), dtype=np.float64))
    x = decode(s, buf.getvalue(), "application/octet-stream")["x"]  # float64 -> float32: same kind
    assert (x.dtype, x.shape) == (np.float32, (3, 2))
    buf = io.BytesIO()
    np.save(buf, np.ones((3, 2), dtype=np.complex64))
    err = refused(s, buf.getvalue(), "application/octet-stream")
    assert (err.status, err.field) == (422, "x")
    assert "complex64" in err.fields[0][1]
    err = refused(s, "[[1, 2, 3]]")
    assert err.status == 422 and "(1, 3)" in err.fields[0][1]
    assert refused(s, b"not npy", "application/octet-stream").status == 400
    assert refused(s, '[[1, "a"]]').status == 422


def test_text_parameter_takes_plain_text_or_json_string() -> None:
    def shout(text: str) -> str: ...

    s = schema_of(shout)
    assert decode(s, "héllo", "text/plain; charset=utf-8") == {"text": "héllo"}
    assert decode(s, '"hi"') == {"text": "hi"}
    assert refused(s, b"\xff\xfe", "text/plain").status == 400


def test_image_and_file_parameters() -> None:
    def size(image: Image.Image) -> list[int]: ...

    def upload(doc: UploadedFile, note: str) -> int: ...

    png = io.BytesIO()
    Image.new("RGB", (4, 3), "red").save(png, format="PNG")
    s = schema_of(size)
    assert decode(s, png.getvalue(), "image/png")["image"].size == (4, 3)
    assert refused(s, b"garbage", "image/png").status == 422
    assert refused(s, "[]").status == 415

    boundary = "XyZ"
    form = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"doc\"; filename=\"a.txt\"\r\n"
        f"Content-Type: text/plain\r\n\r\nhello\r\n"
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhi there\r\n"
        f"--{boundary}--\r\n"
    )
    u = schema_of(upload)
    kwargs = decode(u, form, f"multipart/form-data; boundary={boundary}")
    assert kwargs["doc"] == UploadedFile("a.txt", "text/plain", b"hello")
    assert kwargs["note"] == "hi there"
    assert refused(u, '{"note": "x"}').status == 415


def test_batchable_api_needs_one_batch_parameter() -> None:
    def two(a: list[int], b: int) -> list[int]: ...

    with pytest.raises(TypeError, match="exactly one list or ndarray parameter"):
        schema_of(two, batchable=True)


def test_encode_by_value() -> None:
    assert ApiSchema.encode("hi") == (b"hi", "text/plain; charset=utf-8")
    body, media = ApiSchema.encode({"a": np.arange(3), "b": np.float32(0.5), "m": Item(name="x")})
    assert media == "application/json"
    assert json.loads(body) == {"a": [0, 1, 2], "b": 0.5, "m": {"name": "x", "qty": 1}}
    assert ApiSchema.encode(b"\x00")[1] == "application/octet-stream"
    assert ApiSchema.encode(Image.new("L", (1, 1)))[1] == "image/png"
    with pytest.raises(Exception, match="cannot encode a object"):
        ApiSchema.encode({"x": object()})
