"""The runner wire format: what crosses a pipe or the split layout comes back equal, typed."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

from runtime.serving import wire
from tests.conftest import require_module


def test_values_round_trip_with_their_types() -> None:
    value = {
        "rows": np.arange(12, dtype=np.float32).reshape(3, 4),
        "pair": ([1, "two", None, True], np.array(["a", "bc"])),
        "scalar": np.float64(2.5),
        "ordered": OrderedDict(b=1, a=2),
        "bytes": b"\x00\x01",
        7: "int key",
    }
    back = wire.decode(wire.encode(value))
    assert isinstance(back["pair"], tuple) and back["pair"][0] == [1, "two", None, True]
    np.testing.assert_array_equal(back["rows"], value["rows"])
    assert back["rows"].dtype == np.float32 and back["rows"].flags.writeable
    np.testing.assert_array_equal(back["pair"][1], value["pair"][1])
    assert back["scalar"] == 2.5 and type(back["scalar"]) is float
    assert back["ordered"] == {"b": 1, "a": 2} and back["bytes"] == b"\x00\x01"
    assert back[7] == "int key"
    strided = np.arange(20).reshape(4, 5)[:, ::2]
    np.testing.assert_array_equal(wire.decode(wire.encode(strided)), strided)


def test_object_arrays_travel_item_by_item() -> None:
    labels = np.array(["billing", None, "shipping", 3], dtype=object).reshape(2, 2)
    back = wire.decode(wire.encode(labels))
    assert back.dtype == object and back.shape == (2, 2) and back.tolist() == labels.tolist()
    ragged = np.empty(2, dtype=object)
    ragged[:] = [[1, 2], [3]]
    assert wire.decode(wire.encode(ragged)).tolist() == [[1, 2], [3]]


def test_values_that_cannot_travel_are_refused_by_name() -> None:
    with pytest.raises(wire.WireError, match=r"cannot send a decimal\.Decimal"):
        from decimal import Decimal

        wire.encode(np.array([Decimal(1)], dtype=object))
    with pytest.raises(wire.WireError, match=r"cannot send a builtins\.set"):
        wire.encode({1, 2})
    with pytest.raises(wire.WireError, match="malformed runner payload"):
        wire.decode(b"\xc1")


def test_frames_cross_with_columns_dtypes_and_index_and_without_pickle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pickle

    import pandas as pd

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the wire must not pickle")

    monkeypatch.setattr(pickle, "dumps", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    frame = pd.DataFrame(
        {
            "city": ["Oslo", None, "Lima"],  # pandas' string dtype
            "note": pd.Series(["a", {"k": 1}, None], dtype=object),  # object column, no pickle
            "rooms": [1, 2, 3],
            "area": [50.5, np.nan, 70.0],
            "kind": pd.Categorical(["flat", "house", "flat"], categories=["house", "flat"]),
            "floors": pd.array([1, None, 2], dtype="Int64"),
            "built": pd.to_datetime(["2001-02-03", None, "1999-12-31"]),
            "ok": [True, False, True],
        },
        index=pd.Index([7, 3, 9], name="id"),
    )
    frame.columns.name = "field"
    back = wire.decode(wire.encode({"rows": frame, "s": frame["area"]}))
    pd.testing.assert_frame_equal(back["rows"], frame)
    assert list(back["rows"].columns) == list(frame.columns)
    pd.testing.assert_series_equal(back["s"], frame["area"])
    sliced = frame.iloc[1:]  # a RangeIndex-free slice and an empty frame travel too
    pd.testing.assert_frame_equal(wire.decode(wire.encode(sliced)), sliced)
    pd.testing.assert_frame_equal(wire.decode(wire.encode(frame.iloc[:0])), frame.iloc[:0])
    with pytest.raises(wire.WireError, match=r"MultiIndex.*reset_index"):
        wire.encode(frame.set_index(["rooms", "ok"], append=True))


def test_tensors_sparse_and_model_outputs_cross_with_their_types() -> None:
    import scipy.sparse
    import torch

    SequenceClassifierOutput = require_module(
        "transformers.modeling_outputs"
    ).SequenceClassifierOutput

    weights = torch.randn(3, 4, requires_grad=True)
    back = wire.decode(wire.encode(weights))
    assert torch.equal(back, weights.detach()) and back.requires_grad and back.device.type == "cpu"
    for dtype in (torch.bfloat16, torch.float16, torch.int64, torch.bool, torch.uint8):
        tensor = torch.arange(6).reshape(2, 3).to(dtype)
        again = wire.decode(wire.encode(tensor))
        assert again.dtype == dtype and torch.equal(again, tensor)
    assert wire.decode(wire.encode(torch.empty(0, 5))).shape == (0, 5)
    assert wire.decode(wire.encode(torch.arange(10)[::3])).tolist() == [0, 3, 6, 9]
    csc = scipy.sparse.random(6, 4, density=0.5, format="csc", random_state=0)
    again = wire.decode(wire.encode(csc))
    assert isinstance(again, scipy.sparse.csc_matrix) and (again != csc).nnz == 0
    assert isinstance(wire.decode(wire.encode(scipy.sparse.eye_array(3).tocsr())), scipy.sparse.csr_array)
    output = SequenceClassifierOutput(logits=torch.ones(2, 3))
    back_output = wire.decode(wire.encode(output))
    assert type(back_output) is SequenceClassifierOutput and back_output.loss is None
    assert torch.equal(back_output.logits, output.logits)
    encoding = {"input_ids": torch.ones(2, 4, dtype=torch.long)}
    assert torch.equal(wire.decode(wire.encode(encoding))["input_ids"], encoding["input_ids"])


def test_an_output_class_not_imported_here_arrives_as_a_record() -> None:
    import msgpack

    body = wire.encode(["not.imported.anywhere", "Output", {"logits": [1.0, 2.0]}])
    record = wire.decode(msgpack.packb(msgpack.ExtType(7, body)))
    assert isinstance(record, wire.OutputRecord)
    assert record.logits == [1.0, 2.0] and record["logits"] == [1.0, 2.0]
    with pytest.raises(AttributeError):
        _ = record.loss


def test_deeply_nested_payload_is_refused_not_a_crash() -> None:
    """A crafted body of a few hundred nested tuples once recursed until the runner process
    died (security review); it is a WireError now (a 400 on the runner route). Decoded in a
    subprocess so that a regression fails this test instead of killing the test run."""
    import subprocess
    import sys

    code = (
        "import msgpack\n"
        "from runtime.serving import wire\n"
        "body = msgpack.packb([])\n"  # the body of an empty tuple, then 400 tuples around it
        "for _ in range(400):\n"
        "    body = msgpack.packb([msgpack.ExtType(2, body)])\n"
        "data = msgpack.packb(msgpack.ExtType(2, body))\n"
        "try:\n"
        "    wire.decode(data)\n"
        "except wire.WireError as exc:\n"
        "    print('refused:', exc)\n"
        "shallow = ((1, 2), [3.0])\n"
        "assert wire.decode(wire.encode(shallow)) == shallow\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "refused: runner payload nests extension values" in proc.stdout
