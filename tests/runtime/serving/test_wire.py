"""The runner wire format: what crosses a pipe or the split layout comes back equal, typed."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest

from runtime.serving import wire


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


def test_values_that_cannot_travel_are_refused_by_name() -> None:
    with pytest.raises(wire.WireError, match="object array"):
        wire.encode(np.array([{"a": 1}], dtype=object))
    with pytest.raises(wire.WireError, match=r"cannot send a builtins\.set"):
        wire.encode({1, 2})
    with pytest.raises(wire.WireError, match="malformed runner payload"):
        wire.decode(b"\xc1")
