"""pandas at the API boundary: `pd.DataFrame` / `pd.Series` parameters decoded from JSON records,
CSV or Parquet, and DataFrame / Series results encoded as JSON. pandas (and pyarrow) are imported
only when an API uses them: a service without DataFrames never loads pandas.

    class Person(BaseModel):
        age: int
        city: str

    @api
    def score(people: DataFrameOf[Person]) -> pd.DataFrame: ...  # Annotated[pd.DataFrame, Person]

The row model declares the columns: each row is validated by pydantic (a 422 names the row and
the column), unknown columns are refused, and `int` / `float` / `bool` columns get the NumPy
dtype the kernel's DataFrame has, whatever the JSON spelled (`1` for a float column).
"""

from __future__ import annotations

import csv
import io
import types
import typing
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Union

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from runtime.service.schema.errors import from_validation, request_error

FrameKind = Literal["dataframe", "series"]
CSV_MEDIA = "text/csv"
PARQUET_MEDIA = "application/vnd.apache.parquet"
PARQUET_MEDIA_ALIASES = (PARQUET_MEDIA, "application/x-parquet")
# A Parquet body is compressed: its size is bounded by max_body_bytes, what it decodes to is
# bounded here (the sizes its footer declares), before anything is decompressed.
MAX_PARQUET_DECODED_BYTES = 256 * 1024 * 1024

# Declared column type -> the dtype pandas gives such a column in the kernel. Other types
# (str, datetime, Literal, nested models) are left to pandas' own inference on the values.
_DTYPES: dict[Any, str] = {int: "int64", float: "float64", bool: "bool"}
_NULLABLE_DTYPES: dict[Any, str] = {int: "Int64", float: "float64", bool: "boolean"}


class DataFrameOf:
    """`DataFrameOf[Row]` is `Annotated[pd.DataFrame, Row]`: a DataFrame parameter whose rows are
    validated as the pydantic model `Row` (its fields are the columns, in order)."""

    def __class_getitem__(cls, row: Any) -> Any:
        if not (isinstance(row, type) and issubclass(row, BaseModel)):
            raise TypeError(
                f"DataFrameOf[...] takes a pydantic model describing one row, got {row!r}; "
                f"declare `class Row(BaseModel): age: int` and write DataFrameOf[Row]"
            )
        import pandas as pd

        return Annotated[pd.DataFrame, row]


def pandas_kind(annotation: Any) -> FrameKind | None:
    """"dataframe" or "series" for a (possibly Annotated) pandas type, without importing pandas."""
    base = typing.get_args(annotation)[0] if typing.get_origin(annotation) is Annotated else annotation
    if isinstance(base, type) and base.__module__.split(".", 1)[0] == "pandas":
        return {"DataFrame": "dataframe", "Series": "series"}.get(base.__name__)  # type: ignore[return-value]
    return None


@dataclass
class FrameSpec:
    """How one DataFrame / Series parameter (or result) looks on the wire.

    `annotation` is what pydantic validates the JSON form against (`list[Row]`, or
    `list[dict[str, Any]]` without a row model, with the row bounds), and what OpenAPI shows."""

    kind: FrameKind
    name: str
    row: type[BaseModel] | None
    item: Any
    annotation: Any
    min_rows: int | None = None
    max_rows: int | None = None
    dtypes: dict[str, str] = field(default_factory=dict)
    blank_is_null: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.adapter: TypeAdapter[list[Any]] = TypeAdapter(self.annotation)

    @classmethod
    def from_annotation(cls, annotation: Any, name: str) -> FrameSpec:
        kind = pandas_kind(annotation)
        if kind is None:
            raise TypeError(f"{annotation!r} is not a pandas DataFrame or Series")
        extras = typing.get_args(annotation)[1:] if typing.get_origin(annotation) is Annotated else ()
        min_rows, max_rows = _row_bounds(extras)
        declared = [e for e in extras if not isinstance(e, FieldInfo | annotated_types.BaseMetadata)]
        row: type[BaseModel] | None = None
        item: Any = Any
        if kind == "dataframe":
            for extra in declared:
                if not (isinstance(extra, type) and issubclass(extra, BaseModel)):
                    raise TypeError(
                        f"parameter '{name}': Annotated[pd.DataFrame, ...] takes a pydantic model "
                        f"describing one row (and optionally Field(min_length=, max_length=) for "
                        f"the number of rows), got {extra!r}"
                    )
                row = _strict(extra)
            rows: Any = list[row] if row is not None else list[dict[str, Any]]  # type: ignore[valid-type]
        else:
            if len(declared) > 1:
                raise TypeError(f"parameter '{name}': Annotated[pd.Series, T] takes one item type")
            item = declared[0] if declared else Any
            rows = list[item]
        bounds = Field(min_length=min_rows, max_length=max_rows)
        spec = cls(kind, name, row, item, Annotated[rows, bounds], min_rows, max_rows)
        if row is not None:
            for column, info in row.model_fields.items():
                key = info.serialization_alias or info.alias or column
                dtype = _dtype(info.annotation)
                if dtype is not None:
                    spec.dtypes[key] = dtype
                if info.annotation is not str:
                    spec.blank_is_null.add(key)
        return spec

    @property
    def columns(self) -> list[str] | None:
        if self.row is None:
            return None
        return [
            info.serialization_alias or info.alias or name
            for name, info in self.row.model_fields.items()
        ]

    # -- requests ---------------------------------------------------------------------------

    def accepts(self, media: str) -> bool:
        """Whether this parameter takes a body of `media` besides JSON (only DataFrames do)."""
        return self.kind == "dataframe" and (media == CSV_MEDIA or media in PARQUET_MEDIA_ALIASES)

    def decode_body(self, media: str, body: bytes) -> Any:
        """A DataFrame from a `text/csv` or Parquet body (see `accepts`)."""
        if media == CSV_MEDIA:
            return self.from_csv(body)
        return self.from_parquet(body)

    def build(self, validated: list[Any]) -> Any:
        """The value pydantic validated against `annotation`, as a DataFrame / Series with the
        declared dtypes."""
        import pandas as pd

        if self.kind == "series":
            series = pd.Series(validated, name=self.name or None)
            dtype = _dtype(self.item)
            return series if dtype is None else self._cast(series, dtype, self.name)
        if self.row is None:
            return pd.DataFrame(validated)
        records = self.adapter.dump_python(validated, by_alias=True)
        frame = pd.DataFrame(records, columns=self.columns)
        for column, dtype in self.dtypes.items():
            frame[column] = self._cast(frame[column], dtype, f"{self.name}.{column}")
        return frame

    def from_csv(self, body: bytes) -> Any:
        try:
            text = body.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise request_error(400, "invalid_body", self.name, f"CSV body is not UTF-8: {exc}") from None
        if not text.strip():
            raise request_error(
                400, "invalid_body", self.name, "empty CSV body; send a header line, then one line per row"
            )
        if self.row is None:  # pandas' own inference, as pd.read_csv does in the kernel
            import pandas as pd

            try:
                frame = pd.read_csv(io.StringIO(text))
            except (pd.errors.ParserError, ValueError) as exc:
                raise request_error(
                    400, "invalid_body", self.name, f"unreadable CSV body: {_first_line(exc)}"
                ) from None
            self._check_rows(len(frame))
            return frame
        try:
            header, *lines = list(csv.reader(io.StringIO(text)))
        except csv.Error as exc:
            raise request_error(400, "invalid_body", self.name, f"unreadable CSV body: {exc}") from None
        records: list[dict[str, Any]] = []
        for cells in lines:
            if not cells:
                continue  # a blank line
            if len(cells) > len(header):
                raise request_error(
                    422, "validation_error", f"{self.name}.{len(records)}",
                    f"row {len(records)} has {len(cells)} cells but the header names "
                    f"{len(header)} columns ({', '.join(header)})",
                )
            records.append({
                column: None if cell == "" and column in self.blank_is_null else cell
                for column, cell in zip(header, cells, strict=False)
            })
        return self._validated(records)

    def from_parquet(self, body: bytes) -> Any:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise request_error(
                415, "unsupported_media_type", self.name,
                "this server cannot read Parquet (pyarrow is not installed: pip install "
                "'nbento[tabular]'); send JSON records or text/csv",
            ) from None
        try:
            parquet = pq.ParquetFile(io.BytesIO(body))
            meta = parquet.metadata
            decoded = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
            if decoded > MAX_PARQUET_DECODED_BYTES:
                raise request_error(
                    413, "body_too_large", self.name,
                    f"the Parquet body decodes to {decoded} bytes, over the limit of "
                    f"{MAX_PARQUET_DECODED_BYTES} bytes; send fewer rows per request",
                )
            table = parquet.read()
            if self.row is None:
                frame = table.to_pandas()
                self._check_rows(len(frame))
                return frame
            records = table.to_pylist()
        except (pa.ArrowException, OSError, ValueError, TypeError) as exc:
            raise request_error(
                400, "invalid_body", self.name, f"body is not a readable Parquet file: {_first_line(exc)}"
            ) from None
        return self._validated(records)

    def _validated(self, records: list[dict[str, Any]]) -> Any:
        try:
            validated = self.adapter.validate_python(records)
        except ValidationError as exc:
            raise from_validation(exc, (self.name,)) from None
        return self.build(validated)

    def _check_rows(self, n: int) -> None:
        if self.min_rows is not None and n < self.min_rows:
            raise request_error(
                422, "validation_error", self.name, f"{n} rows; send at least {self.min_rows}"
            )
        if self.max_rows is not None and n > self.max_rows:
            raise request_error(
                422, "validation_error", self.name, f"{n} rows; send at most {self.max_rows}"
            )

    @staticmethod
    def _cast(values: Any, dtype: str, where: str) -> Any:
        try:
            return values.astype(dtype)
        except (ValueError, TypeError, OverflowError) as exc:  # e.g. an int beyond int64
            raise request_error(
                422, "validation_error", where, f"values do not fit dtype {dtype}: {exc}"
            ) from None


# -- responses --------------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """A pandas value as plain JSON data: a DataFrame as records (one object per row; a named
    index becomes columns), a Series as a list (or an object keyed by its index when that is
    not 0..n-1), NaN / NaT / NA as None, timestamps as ISO 8601 strings."""
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        if any(name is not None for name in value.index.names):
            value = value.reset_index()
        names = [str(c) for c in value.columns]
        columns = [_values(value.iloc[:, i]) for i in range(value.shape[1])]
        if not columns:
            return [{} for _ in range(len(value))]
        return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
    if isinstance(value, pd.Series):
        values = _values(value)
        if value.index.equals(pd.RangeIndex(len(value))):
            return values
        return {str(k): v for k, v in zip(value.index, values, strict=True)}
    if isinstance(value, pd.Index):
        return _values(value.to_series())
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | pd.Timedelta):
        return value.isoformat()
    raise TypeError(f"cannot encode a pandas {type(value).__name__} as JSON")


def _values(column: Any) -> list[Any]:
    missing = column.isna().to_numpy()
    if column.dtype.kind in "mM":
        values = [None if gone else v.isoformat() for v, gone in zip(column, missing, strict=True)]
        return values
    values = column.tolist()
    if missing.any():
        values = [None if gone else v for v, gone in zip(values, missing, strict=True)]
    return values


# -- helpers ----------------------------------------------------------------------------------


def _strict(row: type[BaseModel]) -> type[BaseModel]:
    """`row`, refusing unknown columns unless the model says how to treat extras itself."""
    if "extra" in row.model_config:
        return row
    namespace = {"model_config": ConfigDict(extra="forbid"), "__module__": row.__module__}
    if row.__doc__:
        namespace["__doc__"] = row.__doc__
    return type(row.__name__, (row,), namespace)


def _row_bounds(extras: tuple[Any, ...]) -> tuple[int | None, int | None]:
    low: int | None = None
    high: int | None = None
    for extra in extras:
        for item in extra.metadata if isinstance(extra, FieldInfo) else [extra]:
            if isinstance(item, annotated_types.MinLen):
                low = item.min_length
            elif isinstance(item, annotated_types.MaxLen):
                high = item.max_length
            elif isinstance(item, annotated_types.Len):
                low, high = item.min_length, item.max_length
    return low, high


def _dtype(annotation: Any) -> str | None:
    table = _DTYPES
    if typing.get_origin(annotation) in (Union, types.UnionType):
        args = typing.get_args(annotation)
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            return None
        annotation, table = rest[0], _NULLABLE_DTYPES if len(rest) < len(args) else _DTYPES
    try:
        return table.get(annotation)
    except TypeError:  # an unhashable annotation
        return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
