"""`nbento build-service NOTEBOOK.ipynb`: capture a notebook offline (no kernel) into its
service folder, through the same source resolver `nbento serve NOTEBOOK.ipynb` uses."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import yaml

from runtime.errors import ServiceLoadError
from runtime.service.sources import resolve_source


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "build-service",
        help="write the service module of a notebook's captured cells (no kernel needed)",
        description=(
            "Read the notebook's %%nbento cells (magic lines, or the cell tags/metadata the "
            "JupyterLab panel writes) and write <notebook dir>/.nbento/<service>/service.py "
            "and service.yaml. Names the captured code uses but no captured cell defines are "
            "reported on stderr."
        ),
    )
    parser.add_argument("notebook", metavar="NOTEBOOK", help="an .ipynb file")
    parser.add_argument("--json", action="store_true", help="print the manifest as JSON")
    parser.set_defaults(func=_build_service)


def _build_service(args: argparse.Namespace) -> int:
    path = Path(args.notebook)
    if path.suffix != ".ipynb":
        raise ServiceLoadError(f"build-service reads notebooks (.ipynb), got {path}")
    source = resolve_source(path)
    manifest_path = source.manifest
    manifest: dict[str, Any] = (
        yaml.safe_load(manifest_path.read_text()) if manifest_path is not None else {}
    )
    if args.json:
        print(json.dumps({"module": str(source.path), **manifest}, indent=2))
        return 0
    apis = ", ".join(f"POST /{a['name']}" for a in manifest.get("apis", [])) or "none"
    runners = ", ".join(r["tag"] for r in manifest.get("runners", [])) or "none"
    print(f"wrote {source.path}\n  service: {manifest.get('service')}\n  apis: {apis}\n"
          f"  runners: {runners}\n  serve it: nbento serve {source.path.parent if source.path else path} --reload")
    return 0
