"""A private Docker engine for the container end-to-end test, and an offline base image.

`DockerEngine` starts `dockerd` with overlay2, no iptables and no bridge, with its data root,
exec root and socket in a fresh temporary folder, and on exit removes every container and
image it holds, stops dockerd (and the containerd it spawned) by PID, unmounts whatever is
still mounted below the folder (the netns bind mount in exec-root, overlay layers), and deletes
the folder.

`base_rootfs_tar()` assembles a `python:3.11-slim` stand-in from Debian packages (apt-get
download + dpkg -x, busybox for /bin/sh, the host CA bundle so pip works through the proxy),
cached between runs in `$NBENTO_TEST_CACHE` (default `/tmp/nbento-test-cache`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

BASE_DEBS = [
    "busybox-static",
    "python3.11",
    "python3.11-minimal",
    "libpython3.11-minimal",
    "libpython3.11-stdlib",
    "python3.11-venv",
    "python3-pip-whl",
    "python3-setuptools-whl",
    "libc6",
    "libexpat1",
    "zlib1g",
    "libssl3",
    "libffi8",
    "libbz2-1.0",
    "liblzma5",
    "libsqlite3-0",
    "libncursesw6",
    "libtinfo6",
    "libreadline8",
    "libuuid1",
    "libcrypt1",
    "libdb5.3",
    "libnsl2",
    "libtirpc3",
    "media-types",
    "libgcc-s1",
    "libzstd1",
    "readline-common",
    "libstdc++6",
    "libgomp1",
]
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
BASE_CHANGES = ['CMD ["python3"]', "ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]


def why_no_dockerd() -> str | None:
    """None if this machine can run the test's engine, else the precise reason."""
    if shutil.which("dockerd") is None:
        return "dockerd is not installed (scripts/install adds Debian's docker.io)"
    if os.geteuid() != 0:
        return "dockerd needs root here (no rootless setup)"
    for tool in ("apt-get", "dpkg", "chroot"):
        if shutil.which(tool) is None:
            return f"{tool} is missing: the offline base image is built from Debian packages"
    if not HOST_CA.is_file():
        return f"{HOST_CA} is missing: pip inside the image needs the host CA bundle"
    return None


def _run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600, **kwargs)


def base_rootfs_tar() -> Path:
    """The cached rootfs tar of the local `python:3.11-slim` (built on first use, ~15 s)."""
    cache = Path(os.environ.get("NBENTO_TEST_CACHE", "/tmp/nbento-test-cache"))
    key = hashlib.sha256((" ".join(BASE_DEBS) + "\n").encode() + HOST_CA.read_bytes()).hexdigest()[
        :16
    ]
    tar = cache / f"python-3.11-slim-{key}.tar"
    if tar.is_file():
        return tar
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="base-", dir=cache))
    try:
        debs, root = work / "debs", work / "rootfs"
        debs.mkdir()
        root.mkdir()
        _run(["apt-get", "download", "-q", *BASE_DEBS], cwd=debs)
        for deb in sorted(debs.glob("*.deb")):
            _run(["dpkg", "-x", str(deb), str(root)])
        for folder in ("bin", "tmp", "etc/ssl/certs", "root", "proc", "sys", "dev"):
            (root / folder).mkdir(parents=True, exist_ok=True)
        (root / "tmp").chmod(0o1777)
        (root / "bin" / "sh").unlink(missing_ok=True)
        (root / "bin" / "sh").symlink_to("/bin/busybox")
        (root / "usr" / "bin" / "python3").unlink(missing_ok=True)
        (root / "usr" / "bin" / "python3").symlink_to("python3.11")
        shutil.copyfile(HOST_CA, root / "etc" / "ssl" / "certs" / "ca-certificates.crt")
        (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
        (root / "etc" / "group").write_text("root:x:0:\n")
        for junk in ("usr/share/doc", "usr/share/man", "usr/share/locale"):
            shutil.rmtree(root / junk, ignore_errors=True)
        # mkdir, ls, ... as busybox applets (RUN lines use them); never replaces a real file.
        _run(["chroot", str(root), "/bin/busybox", "--install", "-s", "/bin"])
        _run(["chroot", str(root), "/usr/bin/python3", "-m", "venv", "/usr/local"])
        partial = work / "rootfs.tar"
        _run(["tar", "-C", str(root), "-cf", str(partial), "."])
        os.replace(partial, tar)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tar


def _mounts_under(folder: Path) -> list[str]:
    prefix = str(folder)
    found = []
    with open("/proc/self/mounts") as fh:
        for line in fh:
            target = line.split()[1].replace("\\040", " ")
            if target == prefix or target.startswith(prefix + "/"):
                found.append(target)
    return sorted(found, key=len, reverse=True)  # children first


def _pids_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            pids.append(int(entry.name))
    return pids


class DockerEngine:
    """`with DockerEngine() as engine: engine.client.images.build(...)`."""

    def __init__(self) -> None:
        # Short path: the socket path must fit in 108 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="nbd-", dir="/tmp"))
        self.socket = self.root / "docker.sock"
        self.base_url = f"unix://{self.socket}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.client: Any = None
        self.log_path = self.root / "dockerd.log"

    def __enter__(self) -> DockerEngine:
        import docker

        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [
                "dockerd",
                "--storage-driver",
                "overlay2",
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--data-root",
                str(self.root / "data"),
                "--exec-root",
                str(self.root / "exec"),
                "--pidfile",
                str(self.root / "dockerd.pid"),
                "--host",
                self.base_url,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                self.close()
                raise RuntimeError(f"dockerd exited with {self.proc.returncode}:\n{tail}")
            if self.socket.exists():
                try:
                    self.client = docker.DockerClient(base_url=self.base_url, timeout=600)
                    self.client.ping()
                    break
                except Exception:
                    self.client = None
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError("dockerd did not answer within 60 s")
            time.sleep(0.2)
        return self

    def import_base_image(self, tar: Path, reference: str = "python:3.11-slim") -> None:
        repository, _, tag = reference.partition(":")
        self.client.api.import_image(
            src=str(tar), repository=repository, tag=tag or "latest", changes=BASE_CHANGES
        )

    def __exit__(self, *exc: object) -> None:
        self.close()

    def leftovers(self) -> dict[str, list[Any]]:
        """What survived close(): processes, mounts and files (empty lists when clean)."""
        return {
            "processes": _pids_mentioning(str(self.root)),
            "mounts": _mounts_under(self.root),
            "files": [self.root] if self.root.exists() else [],
        }

    def close(self) -> None:
        if self.client is not None:
            try:
                for container in self.client.containers.list(all=True):
                    container.remove(force=True)
                for image in self.client.images.list(all=True):
                    self.client.images.remove(image.id, force=True)
                self.client.images.prune(filters={"dangling": False})
            except Exception:
                pass  # the data root is deleted below anyway
            self.client.close()
            self.client = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        # containerd and shims dockerd started die with it; make sure, by PID.
        for pid in _pids_mentioning(str(self.root)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for target in _mounts_under(self.root):
            subprocess.run(["umount", "-l", target], capture_output=True, timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)
