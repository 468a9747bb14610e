"""Every row container kind: counted, cut into segments, joined into one batch and split back,
each request getting exactly what a call with its rows alone would have returned."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
import torch

from runtime.errors import BatchInputError, BatchOutputError
from runtime.rows import (
    call_in_rows,
    join_outputs,
    kind_of,
    plan_call,
    register_rows,
    split_output,
    unregister_rows,
)
from tests.conftest import require_module


def frame(n: int, start: int = 0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "city": [f"c{i % 3}" for i in range(start, start + n)],
            "size": np.arange(start, start + n, dtype=np.float64),
            "count": pd.array(list(range(start, start + n)), dtype="Int64"),
        },
        index=pd.Index([f"r{i}" for i in range(start, start + n)], name="id"),
    )


def sparse(n: int, start: int = 0) -> Any:
    dense = np.zeros((n, 4))
    for i in range(n):
        dense[i, (start + i) % 4] = start + i + 1
    return scipy.sparse.csr_matrix(dense)


@dataclass
class Case:
    """Two requests of one kind and a model that maps rows to rows of the same kind."""

    name: str
    make: Callable[[int, int], Any]
    model: Callable[[Any], Any]
    equal: Callable[[Any, Any], bool]


CASES = [
    Case("list", lambda n, s: [f"t{i}" for i in range(s, s + n)], lambda r: [x.upper() for x in r],
         lambda a, b: a == b),
    Case("ndarray", lambda n, s: np.arange(s * 2, (s + n) * 2, dtype=np.float32).reshape(n, 2),
         lambda r: r * 2, lambda a, b: a.dtype == b.dtype and np.array_equal(a, b)),
    Case("DataFrame", frame, lambda r: r.assign(size=r["size"] * 2),
         lambda a, b: a.equals(b) and a.index.equals(b.index) and list(a.dtypes) == list(b.dtypes)),
    Case("Series", lambda n, s: frame(n, s)["size"], lambda r: r + 1,
         lambda a, b: a.equals(b) and a.index.equals(b.index)),
    Case("tensor", lambda n, s: torch.arange(s * 3, (s + n) * 3, dtype=torch.float64).reshape(n, 3),
         lambda r: r * 2, lambda a, b: a.dtype == b.dtype and torch.equal(a, b)),
    Case("sparse", sparse, lambda r: r * 2, lambda a, b: a.format == b.format and (a != b).nnz == 0),
    Case("dict of tensors",
         lambda n, s: {"input_ids": torch.arange(s, s + n).reshape(n, 1).repeat(1, 4),
                       "attention_mask": torch.ones(n, 4, dtype=torch.long)},
         lambda r: {"logits": (r["input_ids"] * r["attention_mask"]).float()},
         lambda a, b: a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_two_requests_batch_together_and_each_gets_its_own_answer(case: Case) -> None:
    first, second = case.make(3, 0), case.make(4, 10)
    one, two = plan_call((first,), {}), plan_call((second,), {})
    assert (one.rows, two.rows) == (3, 4)
    assert one.key == two.key, "same kind and layout: they may share a batch"
    # The batcher's way: the second request cut into two segments (2 + 2 rows).
    args, kwargs = one.join([one.slice(0, 3), two.slice(0, 2)])
    rest_args, _ = two.join([two.slice(2, 4)])
    out_a = split_output(case.model(*args, **kwargs), [3, 2])
    out_b = split_output(case.model(*rest_args), [2])
    assert case.equal(out_a[0], case.model(first))
    assert case.equal(join_outputs([out_a[1], out_b[0]]), case.model(second))
    # The kernel's way gives the same.
    assert case.equal(call_in_rows(case.model, (first,), {}), case.model(first))


def test_keyword_row_arguments_are_batched_and_settings_are_not() -> None:
    ids = torch.ones(2, 5, dtype=torch.long)
    call = plan_call((), {"input_ids": ids, "attention_mask": ids, "size": (224, 224), "top": 3})
    assert call.rows == 2 and [slot for slot, _ in call.slots] == ["input_ids", "attention_mask"]
    other = plan_call((), {"input_ids": ids, "attention_mask": ids, "size": (224, 224), "top": 4})
    assert call.key != other.key, "different settings never share a batch"
    _, kwargs = call.join([call.slice(0, 2), call.slice(0, 1)])
    assert kwargs["input_ids"].shape == (3, 5) and kwargs["size"] == (224, 224)
    # a 0-d tensor is a setting, not rows
    assert plan_call((ids,), {"temperature": torch.tensor(0.7)}).slots[0][0] == 0


def test_frames_join_only_with_the_same_columns_and_dtypes() -> None:
    base = plan_call((frame(2),), {}).key
    assert plan_call((frame(2)[["size", "city", "count"]],), {}).key != base
    assert plan_call((frame(2).astype({"size": "float32"}),), {}).key != base
    assert plan_call((torch.ones(2, 3),), {}).key != plan_call((torch.ones(2, 4),), {}).key


def test_a_fresh_output_index_is_numbered_per_request() -> None:
    batch = pd.DataFrame({"p": np.arange(5.0)})  # a model that builds a new frame: 0..4
    _, second = split_output(batch, [2, 3])
    assert list(second.index) == [0, 1, 2] and list(second["p"]) == [2.0, 3.0, 4.0]
    _, b = split_output(pd.DataFrame({"p": np.arange(4.0)}), [1, 3])
    pieces = [split_output(pd.DataFrame({"p": [9.0]}), [1])[0], b]
    assert list(join_outputs(pieces).index) == [0, 1, 2, 3]


def test_model_output_objects_are_split_field_by_field() -> None:
    outputs = require_module("transformers.modeling_outputs")
    SequenceClassifierOutput = outputs.SequenceClassifierOutput
    logits = torch.arange(10.0).reshape(5, 2)
    pieces = split_output(SequenceClassifierOutput(logits=logits), [2, 3])
    assert all(type(p) is SequenceClassifierOutput for p in pieces)
    assert torch.equal(pieces[1].logits, logits[2:]) and pieces[1].loss is None
    joined = join_outputs(pieces)
    assert torch.equal(joined.logits, logits)
    with pytest.raises(BatchOutputError, match=r"output\['loss'\] with shape \(\)"):
        split_output(SequenceClassifierOutput(loss=torch.tensor(1.0), logits=logits), [2, 3])


def test_bad_calls_and_outputs_say_what_was_wrong() -> None:
    with pytest.raises(BatchInputError, match=r"got str; wrap a single item in a list: \[item\]$"):
        plan_call(("a text",), {})
    with pytest.raises(BatchInputError, match=r"register_rows\(Decimal"):
        from decimal import Decimal

        plan_call((Decimal(1),), {})
    with pytest.raises(BatchInputError, match=r"different numbers of rows \(the first argument 3, 'mask' 2\)"):
        plan_call((torch.ones(3, 2),), {"mask": torch.ones(2, 2)})
    with pytest.raises(BatchInputError, match="batch axis 1, got shape"):
        plan_call((np.arange(4),), {}, batch_dim=1)
    with pytest.raises(BatchInputError, match=r"needs rows.*got top=int"):
        plan_call((), {"top": 3})
    with pytest.raises(BatchOutputError, match=r"returned torch\.Tensor with shape"):
        split_output(torch.ones(2, 2), [3])
    with pytest.raises(BatchOutputError, match="returned int, which has no rows"):
        split_output(42, [1])


class Ragged:
    def __init__(self, items: list[list[int]]) -> None:
        self.items = items


def test_register_rows_teaches_batching_a_new_type() -> None:
    assert kind_of(Ragged([[1]])) is None
    register_rows(
        Ragged,
        count=lambda r, dim: len(r.items),
        take=lambda r, start, end, dim: Ragged(r.items[start:end]),
        concat=lambda parts, dim: Ragged([i for p in parts for i in p.items]),
    )
    try:
        call = plan_call((Ragged([[1], [2, 3]]),), {})
        args, _ = call.join([call.slice(0, 1), call.slice(1, 2)])
        assert call.rows == 2 and args[0].items == [[1], [2, 3]]
        out = call_in_rows(lambda r: Ragged([[sum(i)] for i in r.items]), (Ragged([[1], [2, 3]]),), {})
        assert out.items == [[1], [5]]
    finally:
        unregister_rows(Ragged)
    assert kind_of(Ragged([[1]])) is None


def test_checking_rows_never_imports_pandas_torch_or_scipy() -> None:
    code = (
        "import sys, numpy as np\n"
        "from runtime.rows import plan_call, split_output\n"
        "from runtime.serving import wire\n"
        "c = plan_call(([1, 2], np.ones((2, 2))), {'k': 'v'})\n"
        "split_output({'a': [1, 2]}, [1, 1]); wire.decode(wire.encode({'x': np.ones(2)}))\n"
        "print(sorted(m for m in ('pandas', 'torch', 'scipy') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
