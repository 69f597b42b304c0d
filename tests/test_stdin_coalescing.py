"""Coalescing and promptness of write_stdin, against a real recording server (tests/servers/fault.py).

Many small pieces must become few requests, yet a piece must reach the server while the
source is blocked (nothing held back waiting for more). The source's own errors and the
helper thread/task's lifetime are checked here too: nothing leaks or hangs.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from tensorlake_sandbox import (
    ProcessNotFoundError,
    SandboxClient,
    awrite_stdin,
    sandbox_client,
    write_stdin,
)
from tests.servers.fault import FaultServer, Reply, wait_until

PID = 7
LINES = [b"line %06d\n" % i for i in range(100_000)]


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as s:
        yield s


@pytest.fixture
def client(server: FaultServer) -> Iterator[SandboxClient]:
    c = sandbox_client(base_url=server.base_url, api_key="test-key", timeout=10)
    yield c
    c.get_httpx_client().close()


def reader_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "tensorlake-stdin-reader"]


def test_100k_short_lines_become_few_requests(server, client):
    assert write_stdin(client, PID, iter(LINES)) == len(b"".join(LINES))
    assert bytes(server.accepted) == b"".join(LINES)
    count = len(server.stdin_requests)
    print(f"100,000 lines -> {count} requests")
    assert count < 1000
    assert wait_until(lambda: not reader_threads(), 5)


def test_100k_short_lines_async(server, client):
    async def lines() -> AsyncIterator[bytes]:
        for line in LINES:
            yield line

    async def main() -> int:
        try:
            return await awrite_stdin(client, PID, lines())
        finally:
            await client.aclose()

    assert asyncio.run(main()) == len(b"".join(LINES))
    assert bytes(server.accepted) == b"".join(LINES)
    assert len(server.stdin_requests) < 1000


def test_async_path_takes_a_sync_iterable_too(server, client):
    async def main() -> int:
        try:
            return await awrite_stdin(client, PID, iter(LINES))
        finally:
            await client.aclose()

    assert asyncio.run(main()) == len(b"".join(LINES))
    assert bytes(server.accepted) == b"".join(LINES)
    assert len(server.stdin_requests) < 1000


def test_piece_is_sent_while_the_generator_is_blocked(server, client):
    def interactive() -> Iterator[bytes]:
        yield b"first\n"
        # Blocked until the server has the first piece: a writer that waits for more
        # before sending would never get here in time.
        if not server.wait_accepted(6, timeout=10):
            raise AssertionError("the first piece was held back while the source was blocked")
        yield b"second\n"

    assert write_stdin(client, PID, interactive()) == 13
    assert bytes(server.accepted) == b"first\nsecond\n"
    assert [r.size for r in server.stdin_requests] == [6, 7]


def test_piece_is_sent_while_the_async_generator_is_blocked(server, client):
    async def interactive() -> AsyncIterator[bytes]:
        yield b"first\n"
        for _ in range(1000):
            if server.accepted_count >= 6:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the first piece was held back while the source was blocked")
        yield b"second\n"

    async def main() -> int:
        try:
            return await awrite_stdin(client, PID, interactive())
        finally:
            await client.aclose()

    assert asyncio.run(main()) == 13
    assert bytes(server.accepted) == b"first\nsecond\n"


@pytest.mark.parametrize("use_async", [False, True])
def test_pipe_bytes_are_sent_while_the_pipe_stays_open(server, client, use_async):
    r, w = os.pipe()
    result: list[int] = []

    def run() -> None:
        with open(r, "rb") as f:
            if use_async:

                async def main() -> int:
                    try:
                        return await awrite_stdin(client, PID, f)
                    finally:
                        await client.aclose()

                result.append(asyncio.run(main()))
            else:
                result.append(write_stdin(client, PID, f))

    t = threading.Thread(target=run)
    t.start()
    try:
        os.write(w, b"hello ")
        assert server.wait_accepted(6, timeout=10), "bytes in the pipe were held back"
        os.write(w, b"world")
        assert server.wait_accepted(11, timeout=10)
    finally:
        os.close(w)
        t.join(timeout=10)
    assert result == [11]
    assert bytes(server.accepted) == b"hello world"


def test_source_error_propagates_after_the_bytes_before_it(server, client):
    def failing() -> Iterator[bytes]:
        yield b"abc"
        yield b"def"
        raise ValueError("source broke")

    with pytest.raises(ValueError, match="source broke") as info:
        write_stdin(client, PID, failing())
    assert bytes(server.accepted) == b"abcdef"
    assert any("all 6 bytes it gave before were delivered" in n for n in info.value.__notes__)
    assert wait_until(lambda: not reader_threads(), 5)


def test_source_base_exception_propagates(server, client):
    def interrupted() -> Iterator[bytes]:
        yield b"abc"
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_stdin(client, PID, interrupted())
    assert bytes(server.accepted) == b"abc"


def test_async_source_error_propagates(server, client):
    async def failing() -> AsyncIterator[bytes]:
        yield b"abc"
        raise ValueError("source broke")

    async def main() -> None:
        try:
            with pytest.raises(ValueError, match="source broke"):
                await awrite_stdin(client, PID, failing())
        finally:
            await client.aclose()

    asyncio.run(main())
    assert bytes(server.accepted) == b"abc"


def test_write_error_stops_and_closes_the_generator(server, client):
    closed = threading.Event()

    def endless() -> Iterator[bytes]:
        try:
            while True:
                yield b"x" * 1000
        finally:
            closed.set()

    server.plan.append(Reply(404, "NOT_FOUND"))
    with pytest.raises(ProcessNotFoundError):
        write_stdin(client, PID, endless())
    assert closed.wait(5)
    assert wait_until(lambda: not reader_threads(), 5)


def test_write_error_does_not_wait_for_a_blocked_source(server, client):
    release = threading.Event()

    def stuck() -> Iterator[bytes]:
        yield b"x"
        release.wait(30)
        yield b"y"

    server.plan.append(Reply(404, "NOT_FOUND"))
    try:
        with pytest.raises(ProcessNotFoundError):
            write_stdin(client, PID, stuck())
    finally:
        release.set()
    # The reader was blocked inside the source; it exits once the source returns.
    assert wait_until(lambda: not reader_threads(), 5)


def test_cancellation_stops_the_reader_task_and_closes_the_async_generator(server, client):
    finalized = asyncio.Event()
    started = asyncio.Event()

    async def forever() -> AsyncIterator[bytes]:
        try:
            yield b"x"
            while server.accepted_count < 1:
                await asyncio.sleep(0.01)
            started.set()
            await asyncio.Event().wait()
            yield b"never"
        finally:
            finalized.set()

    async def main() -> None:
        task = asyncio.create_task(awrite_stdin(client, PID, forever()))
        await asyncio.wait_for(started.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert finalized.is_set()
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        assert others == []
        await client.aclose()

    asyncio.run(main())
    assert bytes(server.accepted) == b"x"


def test_async_timeout_around_a_blocked_source(server, client):
    async def slow() -> AsyncIterator[bytes]:
        yield b"ab"
        await asyncio.sleep(30)
        yield b"cd"

    async def main() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(awrite_stdin(client, PID, slow()), 1.0)
        await client.aclose()

    asyncio.run(main())
    assert bytes(server.accepted) == b"ab"
