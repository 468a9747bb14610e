"""The Export action of both panels: capture the notebook, build the Bento, write the
Kubernetes manifests — through the same functions the CLI (`nbento build`, `nbento export
k8s`) and the `%nbento export` magic call — reporting progress as it goes.

Building a Bento imports the service module, that is the notebook's cells. The JupyterLab
panel's export (`export_notebook`) therefore runs in a child process
(`python -m jupyter_ext.actions.export_job`), never inside the Jupyter server, whose process
holds every user's session; the ipywidgets panel exports from its kernel, which runs the
cells anyway."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from jupyter_ext.actions.jobs import Report
from runtime.errors import NbentoError


@dataclass(frozen=True)
class ExportOptions:
    """What the Export section offers. `image` is the container image name the manifests
    reference; `yatai` also writes a BentoDeployment for Yatai; `split_runners` gives each
    runner its own Deployment."""

    split_runners: bool = False
    yatai: bool = False
    image: str | None = None
    out_dir: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExportOptions:
        unknown = sorted(set(data) - {"split_runners", "yatai", "image", "out_dir"})
        if unknown:
            raise NbentoError(
                f"unknown export options: {', '.join(unknown)}; "
                f"use split_runners, yatai, image, out_dir"
            )
        for key in ("split_runners", "yatai"):
            if key in data and not isinstance(data[key], bool):
                raise NbentoError(f"{key} must be true or false, got {data[key]!r}")
        for key in ("image", "out_dir"):
            if data.get(key) is not None and not isinstance(data[key], str):
                raise NbentoError(f"{key} must be a string, got {data[key]!r}")
        image = (data.get("image") or "").strip() or None
        if image is not None and (" " in image or image.startswith(("-", ":"))):
            raise NbentoError(f"image must look like name[:tag], got {image!r}")
        return cls(
            split_runners=bool(data.get("split_runners", False)),
            yatai=bool(data.get("yatai", False)),
            image=image,
            out_dir=(data.get("out_dir") or None),
        )


def export_notebook(notebook: str | Path, options: ExportOptions, report: Report) -> dict[str, Any]:
    """Capture the saved notebook (offline, as `nbento build NB.ipynb`), then export it, in a
    child process; its progress lines are passed on to `report`."""
    command = [sys.executable, "-m", "jupyter_ext.actions.export_job", str(notebook),
               json.dumps(asdict(options))]
    with tempfile.TemporaryFile() as log:
        child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True,
                                 start_new_session=True)
        answer: dict[str, Any] = {}
        assert child.stdout is not None
        for line in child.stdout:
            message = json.loads(line)
            if "progress" in message:
                report(float(message["progress"]), str(message["message"]))
            else:
                answer = message
        returncode = child.wait()
        log.seek(0)
        tail = log.read().decode(errors="replace").strip().splitlines()[-15:]
    if "error" in answer:
        raise NbentoError(str(answer["error"]))
    if returncode != 0 or "result" not in answer:
        raise NbentoError(
            f"the export process for {notebook} exited with code {returncode} before it "
            f"finished; its last lines:\n" + "\n".join(tail)
        )
    return dict(answer["result"])


def _export_here(notebook: str | Path, options: ExportOptions, report: Report) -> dict[str, Any]:
    from jupyter_ext.capture import notebook as capture

    notebook = Path(notebook).resolve()
    report(0.05, f"capturing {notebook.name}")
    cap, written = capture.build_service(notebook)
    warnings = [f.message for f in cap.free_names]
    for message in warnings:
        report(0.1, f"warning: {message}")
    report(0.2, f"service {cap.service_name} written to {written.folder}")
    out_dir = Path(options.out_dir).expanduser() if options.out_dir else notebook.parent
    return export_service(written.folder, options, report, default_out=out_dir,
                          warnings=warnings)


def export_service(folder: Path, options: ExportOptions, report: Report, *,
                   default_out: Path, warnings: list[str] | None = None) -> dict[str, Any]:
    """Build the Bento of a service folder and write its manifests (`default_out/k8s-NAME`
    unless `options.out_dir` is set)."""
    from runtime.export.bento import build_bento
    from runtime.export.k8s import write_manifests

    report(0.3, "building the Bento (models, code, Dockerfile)")
    steps = [0.3]

    def step(message: str) -> None:  # build_bento reports lines, not fractions
        steps[0] = min(0.7, steps[0] + 0.05)
        report(steps[0], message)

    built = build_bento(folder, progress=step)
    report(0.75, f"Bento {built.tag} built at {built.path}")
    out_dir = Path(options.out_dir).expanduser() if options.out_dir else default_out / f"k8s-{built.name}"
    report(0.8, f"writing Kubernetes manifests to {out_dir}")
    paths = write_manifests(built, out_dir, split_runners=options.split_runners,
                            yatai=options.yatai, image=options.image)
    files = [str(p) for p in paths]
    report(0.95, f"{len(files)} manifest files written")
    return {
        "service": built.name,
        "service_dir": str(folder),
        "bento": str(built.path),
        "bento_tag": str(built.tag),
        "manifests_dir": str(out_dir),
        "manifests": files,
        "warnings": list(warnings or []),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m jupyter_ext.actions.export_job NOTEBOOK OPTIONS_JSON`: the child process of
    `export_notebook`. One JSON object a line on stdout (progress, then result or error);
    whatever the service's code prints goes to stderr."""
    notebook, options_json = sys.argv[1:3] if argv is None else argv
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # prints of the notebook's cells (and of native code) go to stderr
    sys.stdout = sys.stderr

    def send(message: dict[str, Any]) -> None:
        channel.write(json.dumps(message, default=str) + "\n")

    try:
        options = ExportOptions(**json.loads(options_json))
        result = _export_here(notebook, options, lambda f, m: send({"progress": f, "message": m}))
    except NbentoError as exc:
        send({"error": str(exc)})
        return 1
    send({"result": result})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
