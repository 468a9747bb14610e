"""Plain NumPy arrays as one `.npy` file: no pickle (object arrays go to cloudpickle), and
`load(tag, mmap_mode="r")` maps the file after checking its sha256."""

from __future__ import annotations

import io
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from runtime.errors import SerializationError
from runtime.store.artifacts import ArtifactReader, ArtifactWriter

if TYPE_CHECKING:  # pragma: no cover
    from runtime.store.info import ModelInfo


class NumpySerializer:
    """A plain ndarray as one `.npy` file: `np.load(path, mmap_mode="r")` works on it directly,
    and `load(tag, mmap_mode="r")` maps it after checking its sha256."""

    name = "numpy"
    framework = "numpy"
    filename = "array.npy"

    def matches(self, obj: Any) -> bool:
        np = sys.modules.get("numpy")
        return np is not None and type(obj) is np.ndarray and not obj.dtype.hasobject

    def code_on_load(self, options: Mapping[str, Any]) -> bool:
        return False  # the loader refuses object dtypes before reading the body

    def save(self, obj: Any, artifacts: ArtifactWriter) -> dict[str, Any]:
        import numpy as np

        fortran = bool(obj.flags.f_contiguous and not obj.flags.c_contiguous)
        array = obj if fortran or obj.flags.c_contiguous else np.ascontiguousarray(obj)
        header = io.BytesIO()
        header_data = np.lib.format.header_data_from_array_1_0(array)
        try:
            np.lib.format.write_array_header_1_0(header, header_data)
        except ValueError:  # a header over 64 KiB (very many fields) needs format 2.0
            header = io.BytesIO()
            np.lib.format.write_array_header_2_0(header, header_data)
        body = (array.T if fortran else array).reshape(-1).view(np.uint8)
        artifacts.write_parts(self.filename, [header.getvalue(), body.data])
        return {"shape": list(array.shape), "dtype": array.dtype.str, "fortran_order": fortran}

    def load(self, artifacts: ArtifactReader, info: ModelInfo, **options: Any) -> Any:
        import numpy as np

        mmap_mode = options.pop("mmap_mode", None)
        if options:
            raise SerializationError(
                f"unknown load options for a numpy model: {sorted(options)}; only mmap_mode"
            )
        if mmap_mode is not None:
            path = artifacts.verified_path(self.filename)
            return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
        with artifacts.open(self.filename) as reader:
            version = np.lib.format.read_magic(reader)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(reader)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(reader)
            else:
                raise SerializationError(f"unsupported .npy format version {version}")
            if dtype.hasobject:
                raise SerializationError(
                    f"{artifacts.path / self.filename} holds Python objects; refusing to unpickle"
                )
            array = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
            body = (array.T if fortran else array).reshape(-1).view(np.uint8)
            reader.readinto_all(body.data)
            reader.verify()
        return array
