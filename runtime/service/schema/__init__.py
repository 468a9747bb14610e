"""Type hints are the schema: an API function's signature decides what request body it takes
and how the answer is encoded. The exact mapping is documented in `docs/apis.md`.

    from runtime.service.schema import DataFrameOf, NDArray

    @api
    def predict(x: NDArray[np.float32, (-1, 4)]) -> list[int]: ...

    @api
    def score(people: DataFrameOf[Person]) -> pd.DataFrame: ...

`api_schema.py` decodes requests and encodes answers; `arrays.py` (NumPy) and `frames.py`
(pandas, imported only when an API uses it) are the typed inputs that need more than pydantic.
"""

from __future__ import annotations

from runtime.service.schema.api_schema import ApiSchema, Param, ParamKind, UploadedFile
from runtime.service.schema.arrays import NDArray, ndarray
from runtime.service.schema.errors import RequestError
from runtime.service.schema.frames import DataFrameOf, FrameSpec

__all__ = [
    "ApiSchema",
    "DataFrameOf",
    "FrameSpec",
    "NDArray",
    "Param",
    "ParamKind",
    "RequestError",
    "UploadedFile",
    "ndarray",
]
