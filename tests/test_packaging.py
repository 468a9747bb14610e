"""What `pip install nbento` (and `pip install -e .`) gives a user: the `nbento` package, the
prebuilt panel with its install.json, the server extension named `nbento`, one version."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import runtime
from runtime.version import __version__

ROOT = Path(__file__).resolve().parents[1]


def _build(kind: str, dest: Path) -> Path:
    """A wheel (`build_wheel`) or editable wheel (`build_editable`) built by hatchling from this
    tree; hooks off (the panel's npm build is not what is checked here)."""
    code = f"import sys, hatchling.build as b; print(b.{kind}(sys.argv[1]))"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(dest)], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "HATCH_BUILD_NO_HOOKS": "true"}, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return dest / proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    return zipfile.ZipFile(_build("build_wheel", tmp_path_factory.mktemp("wheel")))


def test_the_version_is_written_once() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    project = pyproject.split("\n[project]\n", 1)[1].split("\n[", 1)[0]
    assert not re.search(r"^version\s*=", project, re.M), "the version belongs in runtime/version.py"
    assert re.search(r'^dynamic\s*=\s*\[[^]]*"version"', project, re.M)
    package = json.loads((ROOT / "labextension" / "package.json").read_text())
    assert package["version"] == __version__, (
        "labextension/package.json must carry the version in runtime/version.py"
    )
    assert runtime.__version__ == __version__


def test_the_wheel_ships_nbento_at_top_level(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    assert {"nbento/__init__.py", "nbento/__main__.py", "runtime/version.py"} <= names
    assert "jupyter_ext/__init__.py" in names
    assert not [n for n in names if n.startswith("runtime/_nbento_pkg")]
    meta = Parser().parsestr(wheel.read(f"nbento-{__version__}.dist-info/METADATA").decode())
    assert meta["Version"] == __version__
    assert "Framework :: Jupyter :: JupyterLab :: Extensions :: Prebuilt" in meta.get_all("Classifier")


def test_the_wheel_ships_install_json_and_the_nbento_server_extension(wheel: zipfile.ZipFile) -> None:
    data = f"nbento-{__version__}.data/data"
    install = json.loads(wheel.read(f"{data}/share/jupyter/labextensions/nbento/install.json"))
    assert install["packageName"] == "nbento"
    config = json.loads(wheel.read(f"{data}/etc/jupyter/jupyter_server_config.d/nbento.json"))
    assert config == {"ServerApp": {"jpserver_extensions": {"nbento": True}}}
    assert not [n for n in wheel.namelist() if n.endswith("jupyter_ext.json")]


def test_an_editable_install_puts_nbento_on_the_path(tmp_path: Path) -> None:
    editable = zipfile.ZipFile(_build("build_editable", tmp_path))
    pth = [n for n in editable.namelist() if n.endswith(".pth")]
    assert len(pth) == 1
    folders = [Path(line) for line in editable.read(pth[0]).decode().splitlines()]
    # Exactly the folders the three packages need, and `nbento` resolves in them.
    assert set(folders) == {ROOT, ROOT / "runtime" / "_nbento_pkg"}
    assert any((folder / "nbento" / "__init__.py").is_file() for folder in folders)
    assert not [n for n in editable.namelist() if n.startswith("nbento/")]  # live, not a copy


def test_import_nbento_is_cheap_and_is_the_runtime_api() -> None:
    code = (
        "import sys, nbento, runtime\n"
        "assert 'fastapi' not in sys.modules and 'IPython' not in sys.modules, 'heavy import'\n"
        "from nbento import runner, api, save_model, load, list_models, Tag\n"
        "assert runner is runtime.runner and api is runtime.api and load is runtime.load\n"
        "assert nbento.list is runtime.list_models\n"
        "assert nbento.__all__ == runtime.__all__\n"
        "print(nbento.__version__)\n"
        "try:\n    nbento.no_such_name\nexcept AttributeError as exc:\n    print(exc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    version, error = proc.stdout.splitlines()
    assert version == __version__
    assert "no attribute 'no_such_name'" in error and "runner" in error


def test_the_jupyter_hooks_are_nbentos() -> None:
    import nbento

    import jupyter_ext

    assert nbento._jupyter_server_extension_points() == [{"module": "nbento"}]
    [lab] = nbento._jupyter_labextension_paths()
    assert lab["dest"] == "nbento"
    assert Path(lab["src"]) == Path(jupyter_ext.__file__).parent / "labextension"
