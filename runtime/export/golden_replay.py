"""Replay golden answers against a real server: the built Bento (or a service folder) served
by `nbento serve` in a subprocess on 127.0.0.1, or a server already running (`--url`). Used by
`nbento build` (a different answer stops the build), `nbento verify` and canaries.

    with served(bento.path / "src", home=bento.path) as url:
        report = replay(read_goldens(bento.path / "golden" / "golden.jsonl"), url)
    if not report.ok:
        print(report.message())

A subprocess, not an in-process app: the Bento's models resolve through `NBENTO_HOME=BENTO`
and its `src/` is imported as it ships, exactly as the image will run it, and nothing it
imports leaks into the caller (a kernel, the CLI).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from runtime.errors import NbentoError
from runtime.export.bento_src import service_manifest
from runtime.export.bento_store import BENTO_FILE, Bento, get_bento
from runtime.export.golden import (
    ABS_TOLERANCE,
    BENTO_GOLDEN_DIR,
    GOLDEN_FILE,
    REL_TOLERANCE,
    Golden,
    GoldenError,
    json_diff,
    read_goldens,
)
from runtime.service.sources import SERVICE_MODULE, resolve_source
from runtime.serving.auth import auth_headers
from runtime.store.trust import keep_trust_dir

_URL = re.compile(r"nbento: serving .* at (http://\S+) \(")
START_TIMEOUT_S = 180.0


@dataclass
class Mismatch:
    golden: Golden
    status: int
    differences: list[str]


@dataclass
class ReplayReport:
    url: str
    total: int
    mismatches: list[Mismatch] = field(default_factory=list)
    cells: dict[str, str] = field(default_factory=dict)  # cell id -> "cell 4 (api classify)"

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def summary(self) -> str:
        if self.ok:
            return f"{self.total} golden answer(s) replayed against {self.url}: all match"
        return (f"{len(self.mismatches)} of {self.total} golden answer(s) differ from what "
                f"{self.url} answers")

    def message(self, limit: int = 5) -> str:
        """The summary, then each differing request with its first differences."""
        lines = [self.summary()]
        for miss in self.mismatches[:limit]:
            g = miss.golden
            request = json.dumps(g.request, ensure_ascii=False)
            if len(request) > 120:
                request = request[:117] + "..."
            origin = "sample call" if g.source == "sample" else "%nbento call"
            where = self.cells.get(g.cell_id or "", f"cell {g.cell_id}" if g.cell_id else "")
            recorded = f"{origin}{' in ' + where if where else ''}, recorded {g.recorded_at}"
            lines.append(f"  POST /{g.api} {request} ({recorded}):")
            lines.extend(f"    {d}" for d in miss.differences[:6])
            if len(miss.differences) > 6:
                lines.append(f"    ... {len(miss.differences) - 6} more")
        if len(self.mismatches) > limit:
            lines.append(f"  ... and {len(self.mismatches) - limit} more request(s)")
        lines.append(f"  (numbers compare within relative {REL_TOLERANCE:g}, absolute "
                     f"{ABS_TOLERANCE:g})")
        return "\n".join(lines)


def replay(goldens: Sequence[Golden], url: str, *, timeout: float = 60.0) -> ReplayReport:
    """POST every golden request to `url` and compare the answers."""
    report = ReplayReport(url=url, total=len(goldens))
    with httpx.Client(timeout=timeout, trust_env=False, headers=auth_headers()) as client:
        for golden in goldens:
            try:
                response = client.post(f"{url}/{golden.api}", json=golden.request)
            except httpx.HTTPError as exc:
                raise GoldenError(f"could not reach {url}/{golden.api}: {exc}") from exc
            actual = decode_answer(response, golden.media_type)
            differences = []
            if response.status_code != golden.status:
                differences.append(
                    f"status: expected {golden.status}, got {response.status_code} "
                    f"{json.dumps(actual)[:300]}"
                )
            else:
                differences = json_diff(golden.answer, actual)
            if differences:
                report.mismatches.append(Mismatch(golden, response.status_code, differences))
    return report


def decode_answer(response: httpx.Response, media_type: str | None) -> Any:
    """The answer as a golden stores it: JSON value, text, or `{"sha256": ...}` for bytes."""
    media = response.headers.get("content-type", "").split(";", 1)[0].strip()
    if media == "application/json" or media.endswith("+json") or (
        media_type is None and media.startswith("text/")
    ):
        try:
            return response.json()
        except ValueError:
            return response.text
    if media.startswith("text/"):
        return response.text
    return {"sha256": hashlib.sha256(response.content).hexdigest()}


@contextlib.contextmanager
def served(
    source: Path, *, home: Path | None = None, config: Path | None = None,
    timeout: float = START_TIMEOUT_S,
) -> Iterator[str]:
    """Serve `source` with `nbento serve` on a free 127.0.0.1 port until the block ends;
    yields its URL once `/readyz` answers 200. `home` sets NBENTO_HOME (a Bento folder is a
    store). Raises `GoldenError` with the server's last log lines when it does not start."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("NBENTO_RUNNER_MAP", None)  # replay the service whole, never a shared runner
    if home is not None:
        keep_trust_dir(env)  # the models this machine built in stay trusted
        env["NBENTO_HOME"] = str(home)
    argv = [sys.executable, "-m", "runtime", "serve", str(source), "--host", "127.0.0.1",
            "--port", "0", "--no-reload"]
    if config is not None:
        argv += ["--config", str(config)]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            yield _wait_ready(proc, log, timeout)
        finally:
            _stop(proc)


def _log_text(log: Any) -> str:
    log.seek(0)
    return str(log.read().decode("utf-8", errors="replace"))


def _wait_ready(proc: subprocess.Popen[bytes], log: Any, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    url = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = "\n".join(_log_text(log).splitlines()[-15:])
            raise GoldenError(f"the service does not start (exit code {proc.returncode}):\n{tail}")
        if url is None:
            found = _URL.search(_log_text(log))
            url = found.group(1) if found else None
        else:
            try:
                if httpx.get(f"{url}/readyz", timeout=2.0, trust_env=False).status_code == 200:
                    return url
            except httpx.HTTPError:
                pass
        time.sleep(0.05)
    tail = "\n".join(_log_text(log).splitlines()[-15:])
    raise GoldenError(f"the service was not ready within {timeout:.0f} s:\n{tail}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def cell_labels(manifest: dict[str, Any] | None) -> dict[str, str]:
    """cell id -> "cell 4 (api classify)" from a service.yaml, for messages."""
    labels = {}
    for cell in (manifest or {}).get("cells") or []:
        index = cell.get("index")
        where = f"cell {index + 1}" if isinstance(index, int) else f"cell {cell.get('cell_id')}"
        what = f"{cell.get('kind')} {cell.get('name')}" if cell.get("name") else cell.get("kind")
        labels[str(cell.get("cell_id"))] = f"{where} ({what})"
    return labels


def replay_served(
    goldens: Sequence[Golden], source: Path, *, home: Path | None = None,
    config: Path | None = None, cells: dict[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ReplayReport:
    """Serve `source` in a subprocess, replay `goldens` against it, stop it."""
    with served(source, home=home, config=config) as url:
        if progress is not None:
            progress(f"replaying {len(goldens)} golden answer(s) against {url}")
        report = replay(goldens, url)
    report.cells = cells or {}
    return report


@dataclass
class VerifyTarget:
    """What `nbento verify` replays: goldens, and how to serve what they are checked against."""

    goldens_file: Path
    source: Path
    home: Path | None = None
    config: Path | None = None
    manifest: dict[str, Any] | None = None


def verify_target(target: str) -> VerifyTarget:
    """A Bento (folder or store tag) or a SRC (service folder, .py file, notebook)."""
    path = Path(target)
    bento = None
    if (path / BENTO_FILE).is_file():
        bento = Bento.read(path.resolve())
    elif not path.exists():
        with contextlib.suppress(NbentoError):
            bento = get_bento(target)
    if bento is not None:
        entry = bento.path / bento.info.entry_point
        module = entry / SERVICE_MODULE if entry.is_dir() else entry
        return VerifyTarget(
            bento.path / BENTO_GOLDEN_DIR / GOLDEN_FILE, entry, home=bento.path,
            config=bento.path / bento.info.config, manifest=service_manifest(module),
        )
    src = resolve_source(target)
    if src.path is None:
        raise GoldenError(
            f"{target} is a module name: golden answers live next to a service folder, a .py "
            f"file or a notebook's .nbento/<service>/, or in a Bento"
        )
    source = src.path.parent if src.path.name == SERVICE_MODULE else src.path
    return VerifyTarget(
        src.path.parent / GOLDEN_FILE, source, manifest=service_manifest(src.path)
    )


def verify(
    target: str, *, url: str | None = None, progress: Callable[[str], None] | None = None
) -> ReplayReport:
    """`nbento verify`: replay `target`'s goldens against `url`, or against `target` served
    in a subprocess. Raises `GoldenError` when there is nothing to replay."""
    found = verify_target(target)
    goldens = read_goldens(found.goldens_file)
    if not goldens:
        raise GoldenError(
            f"no golden answers in {found.goldens_file}: run the API cell's sample calls or "
            f"%nbento call in the notebook to record some"
        )
    if url is not None:
        report = replay(goldens, url.rstrip("/"))
        report.cells = cell_labels(found.manifest)
        return report
    return replay_served(
        goldens, found.source, home=found.home, config=found.config,
        cells=cell_labels(found.manifest), progress=progress,
    )


@contextlib.contextmanager
def served_image(
    image: str, *, base_url: str | None = None, timeout: float = START_TIMEOUT_S
) -> Iterator[str]:
    """Run `image` as a platform would (read-only root, a writable /tmp, no capabilities) on
    the host network, bound to 127.0.0.1 on a free port; yields its URL once `/readyz` is 200,
    and removes the container afterwards."""
    import socket

    import docker
    from docker.errors import DockerException

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    try:
        client = docker.DockerClient(base_url=base_url) if base_url else docker.from_env()
        container = client.containers.run(
            image, ["--host", "127.0.0.1", "--port", str(port)], network_mode="host",
            detach=True, read_only=True, tmpfs={"/tmp": "rw,size=64m"}, cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
        )
    except DockerException as exc:
        raise GoldenError(f"cannot run image {image} to replay the golden answers: {exc}") from exc
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2.0, trust_env=False).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            container.reload()
            if container.status not in ("created", "running") or time.monotonic() > deadline:
                tail = container.logs().decode(errors="replace")[-3000:]
                raise GoldenError(f"the container of {image} did not become ready "
                                  f"(status {container.status}):\n{tail}")
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(DockerException):
            container.remove(force=True)


def verify_image(
    bento: Bento, image: str, *, base_url: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> ReplayReport:
    """`nbento containerize --verify`: the Bento's goldens against its image, running."""
    goldens = read_goldens(bento.path / BENTO_GOLDEN_DIR / GOLDEN_FILE)
    if not goldens:
        raise GoldenError(
            f"Bento {bento.tag} has no golden answers (golden/golden.jsonl) to verify the image "
            f"with: record some in the notebook (sample calls, %nbento call) and build again"
        )
    entry = bento.path / bento.info.entry_point
    manifest = service_manifest(entry / SERVICE_MODULE if entry.is_dir() else entry)
    with served_image(image, base_url=base_url) as url:
        if progress is not None:
            progress(f"replaying {len(goldens)} golden answer(s) against the container at {url}")
        report = replay(goldens, url)
    report.cells = cell_labels(manifest)
    return report
