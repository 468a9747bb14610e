"""In-process hot reload. Unlike uvicorn's `--reload` (which restarts the process and so reloads
every model), this watches the service's files with watchfiles and asks the `ServiceHost` to
re-import the module into a fresh namespace; the runner pool keeps every runner whose resolved
model tag is unchanged, so an edit is live in tens of milliseconds.

It also watches `$NBENTO_HOME/models/NAME/` for runners written as `NAME:latest`: saving a new
version there reloads, and the pool restarts only that runner.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import watchfiles

from runtime.serving.host import ServiceHost
from runtime.settings import nbento_home
from runtime.tags import Tag

log = logging.getLogger("nbento.reload")

# watchfiles yields a group of changes once nothing new arrived for STEP ms (at most DEBOUNCE ms
# after the first): small enough to keep edit-to-live well under half a second, large enough
# that an editor's truncate-then-write lands as one change.
STEP_MS = 10
DEBOUNCE_MS = 150


class Reloader:
    """Watches the host's source (and the store folders of `latest` runners) until stopped."""

    def __init__(self, host: ServiceHost) -> None:
        self.host = host
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def watched(self) -> tuple[set[Path], set[Path]]:
        """(files whose change reloads the code, store folders whose new versions reload)."""
        files = self.host.source_files()
        folders: set[Path] = set()
        service = self.host.service
        if service is not None:
            models = nbento_home() / "models"
            for handle in service.runners.values():
                if handle.name in self.host.config.runner_map:
                    continue  # served by a remote runner process, which watches for itself
                tag = Tag.parse(handle.tag)
                if tag.is_latest and (models / tag.name).is_dir():
                    folders.add((models / tag.name).resolve())
        return files, folders

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="nbento-reloader")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 2.0)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._task.cancel()
            except Exception:
                log.exception("reload watcher failed")

    async def _run(self) -> None:
        while not self._stop.is_set():
            files, folders = self.watched()
            # Watch folders, not files: editors often save by writing a new file and renaming
            # it over the old one, which a watch on the file itself would lose.
            roots = sorted({f.parent for f in files if f.parent.is_dir()} | folders)
            if not roots:
                log.warning("nothing to watch for reload")
                return

            def relevant(change: watchfiles.Change, path: str, files: set[Path] = files,
                         folders: set[Path] = folders) -> bool:
                p = Path(path)
                if p in files:
                    return True
                return p.parent in folders and not p.name.startswith(".")

            log.info("watching %s for changes", ", ".join(str(r) for r in roots))
            async for changes in watchfiles.awatch(
                *roots, watch_filter=relevant, debounce=DEBOUNCE_MS, step=STEP_MS,
                stop_event=self._stop, recursive=False, rust_timeout=1000,
            ):
                changed_at = time.perf_counter()
                shown = ", ".join(sorted({Path(p).name for _, p in changes}))
                log.info("change in %s: reloading", shown)
                # A write the kernel already had reloaded (POST /_nbento/reload) is skipped;
                # a new model version in a store folder always reloads.
                code_only = all(Path(p) in files for _, p in changes)
                await self.host.reload(changed_at=changed_at, if_changed=code_only)
                if self.watched() != (files, folders):
                    break  # new latest runners or files: restart the watch with the new set
