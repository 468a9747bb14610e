"""BentoML 1.4.39 in its own virtual environments, for the interop tests: one with only
`bentoml` (the platform team's tools) and, per set of Bento requirements, one made only from
`bentoml` plus those requirements (what `bentoml serve` of the Bento runs in). Both are created
on first use and cached in `$NBENTO_TEST_CACHE/peers/` (default /tmp/nbento-test-cache)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

BENTOML_VERSION = "1.4.39"
BENTOML_REQ = f"bentoml=={BENTOML_VERSION}"


def peers_dir() -> Path:
    cache = Path(os.environ.get("NBENTO_TEST_CACHE", "/tmp/nbento-test-cache"))
    return cache / "peers"


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _pip(venv: Path, *args: str, cwd: Path | None = None) -> None:
    done = subprocess.run(
        [str(_python(venv)), "-m", "pip", "install", "-q", *args],
        cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=1800, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pip install {' '.join(args)} failed in {venv}:\n{done.stderr[-3000:]}")


def _ensure(venv: Path, wanted: str, install: list[tuple[tuple[str, ...], Path | None]]) -> Path:
    marker = venv / ".nbento-peer-ready"
    if marker.is_file() and marker.read_text() == wanted and _python(venv).exists():
        return venv
    if not _python(venv).exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    for args, cwd in install:
        _pip(venv, *args, cwd=cwd)
    marker.write_text(wanted)
    return venv


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for peer processes: no PYTHONPATH (so nothing of this checkout leaks
    into them), BentoML's telemetry off."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["BENTOML_DO_NOT_TRACK"] = "true"
    env.update(extra)
    return env


def bentoml_tools() -> Path:
    """A venv with only bentoml; returns its bin/ folder."""
    venv = peers_dir() / f"bentoml-{BENTOML_VERSION}"
    venv.parent.mkdir(parents=True, exist_ok=True)
    return _ensure(venv, BENTOML_REQ, [((BENTOML_REQ,), None)]) / "bin"


def bentoml_serving(bento: Path) -> Path:
    """A venv made from bentoml plus the Bento's own requirements (installed from its src/,
    as BentoML's image does); the nbento wheel is reinstalled on every call, so the venv
    always runs this checkout's code. Returns its bin/ folder."""
    reqs = (bento / "env" / "python" / "requirements.txt").read_text()
    pins = "\n".join(line for line in reqs.splitlines() if "wheels/" not in line)
    key = hashlib.sha256(pins.encode()).hexdigest()[:12]
    venv = peers_dir() / f"bentoml-{BENTOML_VERSION}-serve-{key}"
    src = bento / "src"
    _ensure(venv, pins, [((BENTOML_REQ, "-r", "../env/python/requirements.txt"), src)])
    wheels = sorted((bento / "env" / "python" / "wheels").glob("*.whl"))
    if wheels:
        _pip(venv, "--force-reinstall", "--no-deps", *map(str, wheels))
    return venv / "bin"
