"""A real Jupyter server (or JupyterLab) in a subprocess for the handler and browser tests:
token auth on, loopback, a free port, its own root, settings and NBENTO_HOME; plus the
support-tickets example (notebook, data and a trained model) copied into that root."""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
START_TIMEOUT_S = 90.0


@dataclass
class LabServer:
    base: str
    token: str
    root: Path
    home: Path
    process: subprocess.Popen[bytes]
    log: Path

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def copy_example(root: Path) -> Path:
    """examples/support_tickets.ipynb and its data, as a user would have them."""
    shutil.copy(EXAMPLES / "support_tickets.ipynb", root / "support_tickets.ipynb")
    shutil.copytree(EXAMPLES / "data", root / "data", dirs_exist_ok=True)
    return root / "support_tickets.ipynb"


def save_support_classifier(home: Path) -> str:
    """Train the example's classifier (same cells as the notebook) into `home`; its tag."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from runtime.store.model_store import ModelStore

    with open(EXAMPLES / "data" / "tickets.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    texts = [" ".join(r["text"].split()).lower() for r in rows]
    labels = [r["label"] for r in rows]
    clf = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
        LogisticRegression(max_iter=1000, C=10.0),
    ).fit(texts, labels)
    model = ModelStore(home / "models").save_model(
        "support_classifier", clf,
        signatures={"predict": {"batchable": True}, "predict_proba": {"batchable": True}},
        provenance={"notebook": "support_tickets.ipynb", "cell_id": "tickets-05"},
    )
    return str(model.tag)


@contextmanager
def jupyter_server(
    tmp: Path, *, lab: bool = False, token: str = "nbento-test-token",
    extensions: str = "{'nbento': True}", extra_args: Sequence[str] = (), base_url: str = "/",
) -> Iterator[LabServer]:
    """Start `jupyter server` (or `jupyter lab`) with nbento's server extension (by the name
    the wheel's config enables) and stop it by its PID afterwards. `base_url` is Jupyter's
    (`/user/NAME/` under JupyterHub); `LabServer.base` includes it."""
    root, home, settings = tmp / "root", tmp / "nbento-home", tmp / "settings"
    for folder in (root, home, settings):
        folder.mkdir(parents=True, exist_ok=True)
    # no "get notified about Jupyter news?" toast over the screenshots, no update check
    notif = settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notif.parent.mkdir(parents=True, exist_ok=True)
    notif.write_text('{"fetchNews": "false", "checkForUpdates": false}')
    port = free_port()
    log = tmp / "jupyter.log"
    app = ["-m", "jupyterlab"] if lab else ["-m", "jupyter_server"]
    args = [
        sys.executable, *app, "--no-browser", "--allow-root", f"--port={port}",
        "--port_retries=0", "--ip=127.0.0.1", f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}", f"--ServerApp.jpserver_extensions={extensions}",
        f"--ServerApp.base_url={base_url}", *extra_args,
    ]
    if lab:
        args += [f"--LabApp.user_settings_dir={settings}",
                 f"--LabApp.workspaces_dir={tmp / 'workspaces'}"]
    env = {**os.environ, "NBENTO_HOME": str(home),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    with open(log, "wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root)
    server = LabServer(f"http://127.0.0.1:{port}{base_url.rstrip('/')}", token, root, home, process, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                if httpx.get(server.url("api/status"), headers=server.auth(), timeout=1.0,
                             trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"jupyter did not start:\n{server.log_text()[-3000:]}")
            time.sleep(0.2)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
