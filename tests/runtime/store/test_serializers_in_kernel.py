"""`%%nbento model NAME --batchable forward` in a real kernel picks the torch formats by type:
a class defined in a cell becomes TorchScript, an `nn.Sequential` a layer spec, and the
`runner(...)` handle answers like the object in the notebook."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from tests.conftest import require_module
from tests.jupyter_ext.kernel_session import KernelSession

require_module("torch")
pytestmark = pytest.mark.slow

CELLS = [
    "%load_ext jupyter_ext",
    """import torch, torch.nn as nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.l = nn.Linear(4, 2)
    def forward(self, x):
        return torch.relu(self.l(x)) * 2
torch.manual_seed(0)
net = Net().eval()
seq = nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5), nn.ReLU()).eval()""",
    "%%nbento model scorer --batchable forward\nnet",
    "%%nbento model mlp --batchable forward\nseq",
    """from runtime import get, runner
x = torch.randn(3, 4)
for tag, obj in (("scorer", net), ("mlp", seq)):
    m = get(tag)
    same = torch.equal(runner(tag).forward(x), obj(x))
    print(tag, m.info.options["format"], m.info.code_on_load, sorted(m.info.files), same)""",
]


def test_notebook_torch_modules_are_stored_without_cloudpickle(tmp_path: Path) -> None:
    notebook = tmp_path / "torch_models.ipynb"
    nb = new_notebook()
    nb.cells = [new_code_cell(source) for source in CELLS]
    nbformat.write(nb, str(notebook))

    session = KernelSession(notebook)
    try:
        outputs = session.run_all()
    finally:
        session.close()

    assert "saved model scorer:" in outputs[2] and "forward (batchable" in outputs[2]
    assert outputs[4].splitlines() == [
        "scorer torchscript True ['module.torchscript.pt'] True",
        "mlp layers False ['layers.json', 'weights.safetensors'] True",
    ]
