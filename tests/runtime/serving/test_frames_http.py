"""DataFrame APIs over real HTTP: a real `nbento serve` subprocess on a free 127.0.0.1 port taking
JSON records, CSV and Parquet, answering 422s that name the row and column, returning DataFrames
and Series as JSON, and describing it all in /openapi.json."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from tests.conftest import require_module
from tests.runtime.serving_support import ServerProcess, running_server, write_service

SERVICE = """
from __future__ import annotations

import pandas as pd
from pydantic import BaseModel

from runtime import api
from runtime.service.schema import DataFrameOf


class Person(BaseModel):
    age: int
    city: str
    income: float


@api
def enrich(people: DataFrameOf[Person]) -> pd.DataFrame:
    \"\"\"Each person with income per year of age.\"\"\"
    return people.assign(per_year=people["income"] / people["age"])


@api
def dtypes(people: DataFrameOf[Person]) -> dict:
    return {"rows": len(people), **{c: str(t) for c, t in people.dtypes.items()}}


@api
def means(people: DataFrameOf[Person]) -> pd.Series:
    return people[["age", "income"]].mean()


@api
def columns(df: pd.DataFrame) -> list[str]:
    return [f"{c}:{t}" for c, t in df.dtypes.items()]
"""

ROWS = [{"age": 30, "city": "Lyon", "income": 60000}, {"age": 40, "city": "Oslo", "income": 80000.5}]
PARQUET = "application/vnd.apache.parquet"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    folder: Path = tmp_path_factory.mktemp("frames")
    write_service(folder, SERVICE)
    with running_server(folder / "service.py") as running:
        yield running


def post(server: ServerProcess, api: str, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/{api}", timeout=30, **kwargs)


def fields(response: httpx.Response) -> set[str]:
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"]["type"] == "validation_error"
    return {d["field"] for d in body["error"]["fields"]}


def test_json_records_named_and_bare(server: ServerProcess) -> None:
    expected = [
        {"age": 30, "city": "Lyon", "income": 60000.0, "per_year": 2000.0},
        {"age": 40, "city": "Oslo", "income": 80000.5, "per_year": 2000.0125},
    ]
    for body in ({"people": ROWS}, ROWS):
        r = post(server, "enrich", json=body)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        assert r.json() == expected
    r = post(server, "dtypes", json={"people": ROWS})
    assert r.json() == {"rows": 2, "age": "int64", "city": str(pd.Series(["x"]).dtype), "income": "float64"}


def test_csv_and_parquet_bodies(server: ServerProcess) -> None:
    csv_body = "age,city,income\n30,Lyon,60000\n40,Oslo,80000.5\n"
    r = post(server, "dtypes", content=csv_body, headers={"content-type": "text/csv; charset=utf-8"})
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == 2 and r.json()["income"] == "float64"
    out = io.BytesIO()
    pd.DataFrame(ROWS).to_parquet(out)
    r = post(server, "enrich", content=out.getvalue(), headers={"content-type": PARQUET})
    assert r.status_code == 200, r.text
    assert [row["per_year"] for row in r.json()] == [2000.0, 2000.0125]
    csv_undeclared = "a,b\n1,x\n2,y\n"
    kernel = pd.read_csv(io.StringIO(csv_undeclared))  # what the kernel's read_csv makes of it
    r = post(server, "columns", content=csv_undeclared, headers={"content-type": "text/csv"})
    assert r.json() == [f"{c}:{t}" for c, t in kernel.dtypes.items()]
    bad = post(server, "enrich", content=b"PAR1garbage", headers={"content-type": PARQUET})
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_body"


def test_missing_wrong_and_extra_columns_are_422(server: ServerProcess) -> None:
    assert fields(post(server, "enrich", json={"people": [{"age": 30, "income": 1}]})) == {
        "people.0.city"
    }
    assert fields(post(server, "enrich", json=[ROWS[0], {**ROWS[1], "age": "forty"}])) == {
        "people.1.age"
    }
    assert fields(post(server, "enrich", json={"people": [{**ROWS[0], "zip": "69001"}]})) == {
        "people.0.zip"
    }
    csv_wrong = "age,city,income\nthirty,Lyon,1\n"
    assert fields(post(server, "enrich", content=csv_wrong, headers={"content-type": "text/csv"})) == {
        "people.0.age"
    }
    r = post(server, "enrich", content="x", headers={"content-type": "application/xml"})
    assert r.status_code == 415 and "text/csv" in r.json()["error"]["fields"][0]["message"]


def test_empty_frame_and_results_with_nan(server: ServerProcess) -> None:
    r = post(server, "enrich", json={"people": []})
    assert r.status_code == 200 and r.json() == []
    r = post(server, "enrich", json=[{"age": 0, "city": "Nowhere", "income": 0}])
    assert r.status_code == 200, r.text
    assert r.json() == [{"age": 0, "city": "Nowhere", "income": 0.0, "per_year": None}]  # 0/0


def test_series_result_keyed_by_its_index(server: ServerProcess) -> None:
    r = post(server, "means", json={"people": ROWS})
    assert r.status_code == 200, r.text
    assert r.json() == {"age": 35.0, "income": 70000.25}


def test_openapi_shows_records_with_the_declared_columns(server: ServerProcess) -> None:
    doc = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    content = doc["paths"]["/enrich"]["post"]["requestBody"]["content"]
    assert set(content) == {"application/json", "text/csv", PARQUET}
    people = content["application/json"]["schema"]["properties"]["people"]
    assert people["type"] == "array" and "JSON records" in people["description"]
    row = doc["components"]["schemas"][people["items"]["$ref"].rsplit("/", 1)[1]]
    assert row["properties"]["age"]["type"] == "integer"
    assert row["properties"]["income"]["type"] == "number"
    assert row["required"] == ["age", "city", "income"] and row["additionalProperties"] is False
    answer = doc["paths"]["/enrich"]["post"]["responses"]["200"]["content"]["application/json"]
    assert answer["schema"]["type"] == "array"
    # Swagger's "Try it" fills each property with a placeholder of its type; that body works
    placeholder = {"integer": 0, "number": 0, "string": "string"}
    example = {name: placeholder[prop["type"]] for name, prop in row["properties"].items()}
    r = post(server, "dtypes", json={"people": [example]})
    assert r.status_code == 200 and r.json()["rows"] == 1


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_fuzzing_the_dataframe_apis_finds_no_server_error(server: ServerProcess, mode: str) -> None:
    """schemathesis sends generated JSON records and CSV bodies (valid and invalid)."""
    schemathesis = require_module("schemathesis")
    hypothesis = require_module("hypothesis")
    import requests

    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    session = requests.Session()
    session.trust_env = False
    seen: dict[str, set[int]] = {}
    media: set[str | None] = set()
    settings = hypothesis.settings(
        max_examples=150, deadline=None, database=None, derandomize=True,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )

    @settings
    @hypothesis.given(case=schema.as_strategy(schemathesis.GenerationMode(mode)))
    def fuzz(case: Any) -> None:
        response = case.call(base_url=server.url, session=session, timeout=30)
        seen.setdefault(case.path, set()).add(response.status_code)
        media.add(case.media_type)
        assert response.status_code < 500, (case.path, case.media_type, case.body, response.text)

    fuzz()
    assert {"/enrich", "/means", "/columns"} <= set(seen)
    assert {"application/json", "text/csv"} <= media, media  # it has no Parquet generator
    if mode == "positive":
        assert 200 in seen["/enrich"]
