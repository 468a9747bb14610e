"""pandas parameters and results (runtime/service/schema/frames.py): JSON records, CSV and Parquet
bodies decoded into DataFrames with the declared dtypes, 4xx bodies naming the row and the
column, and DataFrame / Series answers as JSON. Over real HTTP in tests/runtime/serving/test_frames_http.py."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from typing import Annotated, Any

import httpx
import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel, Field

from runtime.service.definition import api
from runtime.service.schema import ApiSchema, DataFrameOf, RequestError, UploadedFile
from runtime.service.schema import frames as frames_module
from tests.runtime.serving_support import REPO

PARQUET = "application/vnd.apache.parquet"


def details(err: Exception) -> list[dict[str, object]]:
    """The error's field problems as the JSON body lists them."""
    return [{"field": f, "message": m} for f, m in err.fields]  # type: ignore[attr-defined]


class Person(BaseModel):
    age: int
    city: str
    income: float
    member: bool | None = None


class Aged(BaseModel):
    age: int


def schema_of(fn: Any) -> ApiSchema:
    api(fn)
    return ApiSchema(fn.__nbento_api__)


def decode(schema: ApiSchema, body: bytes | str, content_type: str = "application/json") -> Any:
    data = body.encode() if isinstance(body, str) else body
    kwargs = asyncio.run(schema.decode(content_type, data))
    (value,) = kwargs.values()
    return value


def refused(schema: ApiSchema, body: bytes | str, content_type: str = "application/json") -> RequestError:
    with pytest.raises(RequestError) as info:
        decode(schema, body, content_type)
    return info.value


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    out = io.BytesIO()
    frame.to_parquet(out)
    return out.getvalue()


@pytest.fixture
def people() -> ApiSchema:
    def score(people: DataFrameOf[Person]) -> pd.DataFrame: ...

    return schema_of(score)


KERNEL_FRAME = pd.DataFrame(
    {"age": [31, 45], "city": ["Lyon", "Oslo"], "income": [52000.0, 61000.5], "member": [True, None]}
).astype({"member": "boolean"})


def test_json_records_become_a_frame_with_the_declared_dtypes(people: ApiSchema) -> None:
    # income spelled as integers in JSON still arrives as float64, as in the kernel's frame
    records = [
        {"age": 31, "city": "Lyon", "income": 52000, "member": True},
        {"age": 45, "city": "Oslo", "income": 61000.5},
    ]
    for body in (json.dumps(records), json.dumps({"people": records})):
        frame = decode(people, body)
        assert list(frame.columns) == ["age", "city", "income", "member"]
        assert frame.dtypes.to_dict() == KERNEL_FRAME.dtypes.to_dict()
        pd.testing.assert_frame_equal(frame, KERNEL_FRAME)


def test_missing_extra_and_mistyped_columns_are_422_naming_row_and_column(people: ApiSchema) -> None:
    err = refused(people, json.dumps({"people": [
        {"age": 31, "city": "Lyon", "income": 1.0},
        {"age": "old", "city": "Oslo", "income": 2.0, "zip": "0150"},
        {"age": 40, "income": 3.0},
    ]}))
    assert err.status == 422 and err.code == "validation_error"
    fields = {d["field"]: d["message"] for d in details(err)}
    assert set(fields) == {"people.1.age", "people.1.zip", "people.2.city"}
    assert "integer" in fields["people.1.age"]
    assert "Extra inputs" in fields["people.1.zip"]
    assert "required" in fields["people.2.city"]
    # the bare array form names the parameter too
    assert details(refused(people, '[{"age": 1, "city": "x"}]'))[0]["field"] == "people.0.income"


def test_many_bad_rows_answer_a_bounded_error_list(people: ApiSchema) -> None:
    rows = [{"age": i, "city": "x"} for i in range(500)]  # every row misses income
    err = refused(people, json.dumps(rows))
    assert len(details(err)) == 51
    assert details(err)[-1] == {"field": None, "message": "... and 450 more errors like these"}


def test_empty_frame_keeps_the_declared_columns_and_dtypes(people: ApiSchema) -> None:
    frame = decode(people, "[]")
    assert len(frame) == 0 and list(frame.columns) == ["age", "city", "income", "member"]
    assert frame["age"].dtype == np.int64 and frame["income"].dtype == np.float64


def test_int_beyond_int64_is_422_naming_the_column(people: ApiSchema) -> None:
    err = refused(people, '[{"age": 99999999999999999999999, "city": "x", "income": 1}]')
    assert err.status == 422 and details(err)[0]["field"] == "people.age"
    assert "int64" in details(err)[0]["message"]


def test_csv_with_declared_columns(people: ApiSchema) -> None:
    frame = decode(people, "age,city,income,member\n31,Lyon,52000,true\n45,Oslo,61000.5,\n", "text/csv")
    pd.testing.assert_frame_equal(frame, KERNEL_FRAME)
    err = refused(people, "age,city,income\n31,Lyon,abc\n", "text/csv")
    assert err.status == 422 and details(err)[0]["field"] == "people.0.income"
    err = refused(people, "age,city,income\n31,Lyon,1,surplus\n", "text/csv")
    assert err.status == 422 and "4 cells but the header names 3 columns" in details(err)[0]["message"]
    err = refused(people, "age,city,income,zip\n31,Lyon,1,0150\n", "text/csv")
    assert details(err)[0]["field"] == "people.0.zip"
    assert refused(people, "", "text/csv").status == 400
    assert refused(people, b"age,city\n\xff\xfe,x\n", "text/csv").status == 400


def test_csv_without_declared_columns_reads_like_read_csv_in_the_kernel() -> None:
    def summarize(df: pd.DataFrame) -> dict: ...

    s = schema_of(summarize)
    text = "a,b,c\n1,x,2.5\n2,,\n"
    pd.testing.assert_frame_equal(decode(s, text, "text/csv"), pd.read_csv(io.StringIO(text)))
    assert refused(s, 'a,b\n"1,2\n', "text/csv").status == 400
    records = decode(s, '[{"a": 1, "b": "x"}, {"a": 2, "c": 1.5}]')
    assert list(records.columns) == ["a", "b", "c"] and records["a"].tolist() == [1, 2]


def test_parquet_bodies(people: ApiSchema, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = decode(people, parquet_bytes(KERNEL_FRAME), PARQUET)
    pd.testing.assert_frame_equal(frame, KERNEL_FRAME)
    wrong = KERNEL_FRAME.assign(age=["a", "b"])
    err = refused(people, parquet_bytes(wrong), PARQUET)
    assert err.status == 422 and {d["field"] for d in details(err)} == {"people.0.age", "people.1.age"}
    assert refused(people, b"PAR1 not really", PARQUET).status == 400
    monkeypatch.setattr(frames_module, "MAX_PARQUET_DECODED_BYTES", 64)
    err = refused(people, parquet_bytes(KERNEL_FRAME), PARQUET)
    assert err.status == 413 and err.code == "body_too_large"


def test_parquet_without_pyarrow_is_415_saying_what_to_send(
    people: ApiSchema, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = parquet_bytes(KERNEL_FRAME)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    err = refused(people, body, PARQUET)
    assert err.status == 415 and "JSON records or text/csv" in details(err)[0]["message"]


def test_row_bounds_from_field() -> None:
    def score(df: Annotated[pd.DataFrame, Person, Field(min_length=1, max_length=2)]) -> list: ...

    s = schema_of(score)
    row = {"age": 1, "city": "x", "income": 1.0}
    assert len(decode(s, json.dumps([row, row]))) == 2
    assert refused(s, "[]").status == 422
    assert refused(s, json.dumps([row] * 3)).status == 422
    assert refused(s, "age,city,income\n", "text/csv").status == 422


def test_optional_frame_parameter_defaults_to_none() -> None:
    def report(df: pd.DataFrame = None, title: str = "t") -> dict: ...  # type: ignore[assignment]

    s = schema_of(report)
    assert asyncio.run(s.decode("application/json", b'{"title": "x"}')) == {"df": None, "title": "x"}
    kwargs = asyncio.run(s.decode("application/json", b'{"df": [{"a": 1}]}'))
    assert kwargs["df"].to_dict("records") == [{"a": 1}]


def test_series_parameter_and_multi_parameter_frames() -> None:
    def scale(values: Annotated[pd.Series, float], df: pd.DataFrame, factor: int = 2) -> dict: ...

    s = schema_of(scale)
    kwargs = asyncio.run(s.decode("application/json", b'{"values": [1, 2], "df": [{"a": 1}]}'))
    assert kwargs["values"].dtype == np.float64 and kwargs["values"].tolist() == [1.0, 2.0]
    assert kwargs["df"].to_dict("records") == [{"a": 1}] and kwargs["factor"] == 2
    err = refused(s, '{"values": ["x"], "df": []}')
    assert err.status == 422 and details(err)[0]["field"] == "values.0"


def test_only_dataframes_take_csv() -> None:
    def total(values: pd.Series) -> float: ...

    err = refused(schema_of(total), "a\n1\n", "text/csv")
    assert err.status == 415 and "a JSON list of values" in details(err)[0]["message"]


def test_bad_declarations_fail_when_the_service_loads() -> None:
    with pytest.raises(TypeError, match="pydantic model describing one row"):
        DataFrameOf[dict]  # type: ignore[misc]

    def score(df: Annotated[pd.DataFrame, {"age": int}]) -> list: ...  # type: ignore[valid-type]

    with pytest.raises(TypeError, match="parameter 'df'"):
        schema_of(score)

    def maybe(df: pd.DataFrame | None = None, k: int = 1) -> list: ...

    with pytest.raises(TypeError, match="must be the whole annotation"):
        schema_of(maybe)


def test_frames_and_series_answer_json() -> None:
    body, media = ApiSchema.encode(pd.DataFrame({
        "a": [1.5, np.nan],
        "when": pd.to_datetime(["2024-05-01 12:00", None]),
        "n": pd.array([1, None], dtype="Int64"),
        "s": ["x", None],
    }))
    assert media == "application/json"
    assert json.loads(body) == [
        {"a": 1.5, "when": "2024-05-01T12:00:00", "n": 1, "s": "x"},
        {"a": None, "when": None, "n": None, "s": None},
    ]
    named = pd.DataFrame({"score": [0.5]}, index=pd.Index(["t1"], name="ticket"))
    assert json.loads(ApiSchema.encode(named)[0]) == [{"ticket": "t1", "score": 0.5}]
    filtered = pd.DataFrame({"x": [1, 2, 3]}).iloc[[2]]  # an unnamed index is not data
    assert json.loads(ApiSchema.encode(filtered)[0]) == [{"x": 3}]
    nested = {
        "labels": pd.Series(["a", "b"]),
        "means": pd.DataFrame({"x": [1.0, 3.0], "y": [2, 4]}).mean(),
        "nan": float("nan"),
        "array": np.array([1.0, np.inf]),
    }
    assert json.loads(ApiSchema.encode(nested)[0]) == {
        "labels": ["a", "b"], "means": {"x": 2.0, "y": 3.0}, "nan": None, "array": [1.0, None],
    }


def test_a_service_without_dataframes_never_imports_pandas() -> None:
    code = (
        "import asyncio, sys\n"
        "from runtime.service.definition import api\n"
        "from runtime.service.schema import ApiSchema\n"
        "def classify(texts: list[str]) -> dict: ...\n"
        "api(classify)\n"
        "s = ApiSchema(classify.__nbento_api__)\n"
        "asyncio.run(s.decode('application/json', b'[\"a\"]'))\n"
        "s.encode({'labels': ['x']})\n"
        "from runtime.serving.openapi import service_openapi\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(REPO), "PATH": ""},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_frames_in_multipart_forms_as_csv_upload_or_json_field() -> None:
    def attach(doc: UploadedFile, df: DataFrameOf[Aged]) -> dict: ...

    s = schema_of(attach)

    def form(**parts: Any) -> dict[str, Any]:
        request = httpx.Request("POST", "http://127.0.0.1/attach", **parts)
        return asyncio.run(s.decode(request.headers["content-type"], request.read()))

    doc = ("note.txt", b"hi", "text/plain")
    csv_upload = form(files={"doc": doc, "df": ("rows.csv", b"age\n3\n4\n", "text/csv")})
    assert csv_upload["df"]["age"].tolist() == [3, 4] and csv_upload["doc"].data == b"hi"
    json_field = form(files={"doc": doc}, data={"df": '[{"age": 5}]'})
    assert json_field["df"]["age"].dtype == np.int64
    with pytest.raises(RequestError) as info:
        form(files={"doc": doc}, data={"df": '[{"age": "five"}]'})
    assert info.value.status == 422 and details(info.value)[0]["field"] == "df.0.age"
