"""The replica choice and runner-map entry forms of `runtime.serving.balancer`, with an injected
resolver (the processes-and-sockets version is test_balancing.py)."""

from __future__ import annotations

import asyncio

import pytest

from runtime.errors import NbentoError, RunnerUnreachable
from runtime.serving.balancer import BalancingOptions, ReplicaSet, parse_targets
from runtime.serving.remote import RemoteBackend
from runtime.settings import parse_runner_map


def test_entry_forms_parse_and_bad_ones_say_what_to_write() -> None:
    assert [t.url for t in parse_targets("r", "http://10.0.0.1:3000/")] == ["http://10.0.0.1:3000"]
    both = parse_targets("r", ["http://a:1", "dns+http://svc:3000"])
    assert [(t.url, t.dns) for t in both] == [("http://a:1", False), ("http://svc:3000", True)]
    for bad in ("dns+http://svc", "tcp://a:1", "http://a:1/path", "http://a:x"):
        with pytest.raises(NbentoError, match="dns\\+http://NAME:PORT"):
            parse_targets("r", bad)
    with pytest.raises(NbentoError, match="empty list"):
        parse_targets("r", [])
    assert parse_runner_map('{"r": ["http://a:1", "http://b:1"]}') == {
        "r": ["http://a:1", "http://b:1"]
    }
    with pytest.raises(NbentoError, match="list of URLs"):
        parse_runner_map('{"r": [1, 2]}')


def test_fewest_outstanding_rows_wins_and_a_failed_replica_is_skipped_then_retried() -> None:
    async def scenario() -> None:
        options = BalancingOptions(backoff_s=0.2, max_backoff_s=0.2)
        replicas = ReplicaSet("r", ["http://a:1", "http://b:1"], options=options)
        a, b = replicas.replicas["http://a:1"], replicas.replicas["http://b:1"]
        async with replicas.lease(a, 10):
            assert await replicas.choose(set()) is b
            async with replicas.lease(b, 3):
                assert await replicas.choose(set()) is b  # 3 rows out < 10
        # ties alternate
        firsts = {(await replicas.choose(set())).url for _ in range(4)}  # type: ignore[union-attr]
        assert firsts == {"http://a:1", "http://b:1"}
        replicas.failed(a, OSError("refused"))
        assert [await replicas.choose(set()) for _ in range(5)] == [b] * 5
        assert await replicas.choose({"http://a:1", "http://b:1"}) is None
        await asyncio.sleep(0.25)
        assert a.up  # back after its backoff
        await replicas.aclose()

    asyncio.run(scenario())


def test_dns_names_are_resolved_again_and_replicas_join_and_leave() -> None:
    answers = [["10.0.0.1", "10.0.0.2"], ["10.0.0.2", "10.0.0.3", "fd00::4"]]

    async def resolver(host: str, port: int) -> list[str]:
        assert (host, port) == ("runner-svc", 3000)
        return answers.pop(0) if len(answers) > 1 else answers[0]

    async def scenario() -> None:
        replicas = ReplicaSet("r", "dns+http://runner-svc:3000", resolver=resolver,
                              options=BalancingOptions(refresh_s=0.05))
        assert await replicas.choose(set()) is not None  # first call waits for the answer
        assert set(replicas.replicas) == {"http://10.0.0.1:3000", "http://10.0.0.2:3000"}
        await asyncio.sleep(0.1)
        await replicas.choose(set())
        await asyncio.sleep(0.05)  # the refresh runs beside the call
        assert set(replicas.replicas) == {
            "http://10.0.0.2:3000", "http://10.0.0.3:3000", "http://[fd00::4]:3000"
        }
        await replicas.aclose()

    asyncio.run(scenario())


def test_every_replica_down_is_one_clear_503() -> None:
    async def scenario() -> None:
        backend = RemoteBackend("scaler", ["http://127.0.0.1:9", "http://127.0.0.1:7"])
        with pytest.raises(RunnerUnreachable) as caught:
            await backend.acall("predict", ([1.0],), {})
        message = str(caught.value)
        assert "http://127.0.0.1:9 (ConnectError" in message
        assert "http://127.0.0.1:7 (ConnectError" in message
        assert "--runner scaler" in message
        assert caught.value.status == 503
        await backend.aclose()

    asyncio.run(scenario())


def test_a_name_that_resolves_to_nothing_is_a_clear_503() -> None:
    async def nothing(host: str, port: int) -> list[str]:
        raise OSError(f"Name or service not known: {host}")

    async def scenario() -> None:
        backend = RemoteBackend("scaler", "dns+http://no-such-runner:3000", resolver=nothing)
        with pytest.raises(RunnerUnreachable, match="resolved to no address"):
            await backend.acall("predict", ([1.0],), {})
        assert "dns+http://no-such-runner:3000" in backend.url
        await backend.aclose()

    asyncio.run(scenario())
