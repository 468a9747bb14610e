"""Faults from the network side against one real `nbento serve` on 127.0.0.1: 300 clients
trickling their headers a byte a second, a 1 GB upload, and a burst of ten times the queue
bound. Each is refused or cut off cleanly while other clients keep being served, and the
server's resident memory (VmRSS) stays bounded."""

from __future__ import annotations

import re
import select
import selectors
import socket
import statistics
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.faults.conftest import RssPeak, make_service, rss_kib
from tests.runtime.serving_support import ServerProcess, running_server

READ_TIMEOUT_S = 8.0
QUEUE_ROWS = 64
HEAD_WAIT_S = 5.0
CONFIG = f"""
http:
  read_timeout_s: {READ_TIMEOUT_S}
runners:
  scaler:
    batching: {{max_batch_size: 8, max_latency_ms: 2, max_queue_rows: {QUEUE_ROWS}}}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("http-faults")
    svc = make_service(root, batch_delay_s=0.01, config=CONFIG)
    env = {"NBENTO_HOME": str(root / "home")}
    with running_server(svc, "--config", str(root / "config.yaml"), env=env) as proc:
        yield proc


def host_port(server: ServerProcess) -> tuple[str, int]:
    host, _, port = server.url.removeprefix("http://").rpartition(":")
    return host, int(port)


def assert_serves(server: ServerProcess) -> None:
    assert server.proc.poll() is None, server.log()
    r = httpx.post(f"{server.url}/double", json=[1, 2], timeout=10)
    assert (r.status_code, r.json()) == (200, [2.0, 4.0]), r.text


# -- 300 slow clients ----------------------------------------------------------------------
# tests/runtime/serving/test_security_http.py checks the head limits and a short trickle
# (1.2 s); this is the long one: a byte a second per client until the head timeout.


@pytest.mark.slow
def test_300_clients_trickling_a_byte_a_second_do_not_slow_others(server: ServerProcess) -> None:
    host, port = host_port(server)
    head = b"POST /double HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 1000
    slow = [socket.create_connection((host, port), timeout=5) for _ in range(300)]
    latencies: list[float] = []
    try:
        started = time.monotonic()
        step = 0
        with httpx.Client(timeout=10) as client:
            while time.monotonic() - started < READ_TIMEOUT_S - 1.5:
                for sock in slow:
                    try:
                        sock.sendall(head[step:step + 1])
                    except OSError:
                        pass
                step += 1
                second_ends = time.monotonic() + 1.0
                while time.monotonic() < second_ends:  # normal clients meanwhile
                    t0 = time.monotonic()
                    r = client.post(f"{server.url}/double", json=[step])
                    latencies.append(time.monotonic() - t0)
                    assert r.status_code == 200, r.text
                    time.sleep(0.05)
        # every trickling client is cut off by the head timeout (408 or closed), none kept
        deadline = started + READ_TIMEOUT_S + 10
        cut_off = 0
        for sock in slow:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                answer = b""
            cut_off += answer == b"" or answer.startswith(b"HTTP/1.1 408")
    finally:
        for sock in slow:
            sock.close()
    p95 = statistics.quantiles(latencies, n=20)[-1]
    assert len(latencies) > 50 and p95 < 0.25, (len(latencies), p95, max(latencies))
    assert cut_off == len(slow)
    assert_serves(server)


# -- a 1 GB upload ---------------------------------------------------------------------------


def upload(
    server: ServerProcess, head: bytes, chunk: bytes, limit: int, head_wait: float
) -> tuple[bytes, int]:
    """Send `head`, wait up to `head_wait` s for an answer (as curl waits for `100 Continue`),
    then send `chunk` after `chunk` (up to `limit` bytes) until the server answers; returns the
    answer and how many body bytes had been sent when it came (bytes the kernel buffered
    count as sent, so only 0 says exactly that the body was never needed)."""
    host, port = host_port(server)
    sent = 0
    answer = b""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(head)
        sock.setblocking(False)
        pending = memoryview(chunk)
        early, _, _ = select.select([sock], [], [], head_wait)
        deadline = time.monotonic() + 30
        while not early and sent < limit and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 1.0)
            if readable:
                break
            if writable:
                try:
                    n = sock.send(pending)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:  # reset after the answer: read what came
                    break
                sent += n
                pending = pending[n:] or memoryview(chunk)
        sock.setblocking(True)
        sock.settimeout(10)
        try:
            while data := sock.recv(65536):
                answer += data
                if b"\r\n\r\n" in answer and answer.endswith(b"}}"):
                    break
        except OSError:
            pass
    return answer, sent


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_1_gb_upload_is_refused_before_it_is_read(server: ServerProcess, framing: str) -> None:
    total = 10**9
    if framing == "content-length":
        head = (b"POST /double HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % total)
        chunk = b"[" + b"1," * 32767 + b"1"
        wait = HEAD_WAIT_S
    else:  # no length up front: the gateway counts what arrives
        head = (b"POST /double HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
        piece = b"1," * 32768
        chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
        wait = 0.0
    with RssPeak(server.pid) as rss:
        answer, sent = upload(server, head, chunk, total, wait)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"body_too_large" in answer and b"max_body_bytes" in answer
    assert sent < total // 10, sent  # answered long before the client finished
    if framing == "content-length":  # refused from the head: no body byte was needed
        assert sent == 0, sent
        assert rss.peak - rss.before < 8 * 1024, (rss.before, rss.peak)  # KiB
    else:  # read up to max_body_bytes (16 MiB by default), then refused
        assert rss.peak - rss.before < 48 * 1024, (rss.before, rss.peak)
    assert_serves(server)


# -- ten times the queue bound in one burst -----------------------------------------------


def burst(server: ServerProcess, n: int) -> list[tuple[int, str | None, float]]:
    """`n` requests sent at once over `n` connections opened beforehand (raw sockets: an
    HTTP client library in this process would be slower than the server it measures); each
    answer's status, Retry-After and seconds from the send."""
    host, port = host_port(server)
    socks = [socket.create_connection((host, port), timeout=10) for _ in range(n)]
    answers: dict[socket.socket, bytes] = {s: b"" for s in socks}
    done: dict[socket.socket, float] = {}
    try:
        with selectors.DefaultSelector() as sel:
            sent_at = time.monotonic()
            for i, sock in enumerate(socks):
                body = b"[%d]" % i
                sock.sendall(b"POST /double HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(body), body))
                sock.setblocking(False)
                sel.register(sock, selectors.EVENT_READ)
            deadline = sent_at + 60
            while len(done) < n and time.monotonic() < deadline:
                for key, _ in sel.select(1.0):
                    sock = key.fileobj  # type: ignore[assignment]
                    data = sock.recv(65536)
                    answers[sock] += data
                    head, sep, body = answers[sock].partition(b"\r\n\r\n")
                    length = re.search(rb"(?i)content-length: (\d+)", head)
                    if not data or (sep and length and len(body) >= int(length.group(1))):
                        done[sock] = time.monotonic() - sent_at
                        sel.unregister(sock)
    finally:
        for sock in socks:
            sock.close()
    out = []
    for sock in socks:
        raw = answers[sock]
        status = int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.1 ") else 0
        retry = re.search(rb"(?i)retry-after: (\d+)", raw)
        out.append((status, retry.group(1).decode() if retry else None, done.get(sock, 99.0)))
    return out


@pytest.mark.slow
def test_a_burst_of_ten_times_the_queue_bound_is_shed_and_recovered(server: ServerProcess) -> None:
    n = 10 * QUEUE_ROWS
    assert_serves(server)
    with RssPeak(server.pid) as rss:
        answers = burst(server, n)
    after = rss_kib(server.pid)
    statuses = [s for s, _, _ in answers]
    assert set(statuses) == {200, 503}, sorted(set(statuses))
    shed = [(retry, seconds) for s, retry, seconds in answers if s == 503]
    # the queue holds 64 rows and batches of 8 take 10 ms: most of the burst cannot wait
    assert len(shed) >= n // 3, len(shed)
    assert all(retry and int(retry) >= 1 for retry, _ in shed)
    slowest = max(seconds for _, seconds in shed)
    assert slowest < 2.0, slowest  # refused at once, not after waiting in line
    # bounded: the burst costs the server a few MB of buffers, not a copy per queued request
    grew = rss.peak - rss.before
    assert grew < 100 * 1024, (rss.before, rss.peak, after)
    print(f"burst of {n}: {len(shed)} shed (slowest 503 {slowest:.2f}s), VmRSS before "
          f"{rss.before} KiB, peak {rss.peak}, after {after}")
    for _ in range(20):  # recovered: plain requests are served again
        assert_serves(server)
