"""End to end through the local sandbox: every byte written arrives once, in order.

A real process reads its stdin to EOF and prints the sha256 and length of what it read;
both must match what was written, for random data, random chunkings (with empty pieces),
every accepted source kind, chunk sizes above the sandbox's 2 MiB limit (413, then
halving), and one 200 MiB stream. Also: a process that exits mid-stream, and one that
stops reading (the write fails after the timeout instead of hanging).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
import os
import random
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tensorlake_api_client.api.sandbox_processes import sandbox_process_stdout
from tensorlake_sandbox import (
    DeliveryUnknownError,
    SandboxClient,
    StdinNotWritableError,
    awrite_stdin,
    write_stdin,
)
from tensorlake_sandbox._async._stdin import aclose_stdin, astdin_writer
from tensorlake_sandbox._delivery import DEFAULT_CHUNK_SIZE
from tensorlake_sandbox._sync._stdin import close_stdin, stdin_writer

# Reads stdin to EOF in 64 KiB reads; prints "<sha256> <length>".
HASHER = (
    "import sys, hashlib\n"
    "h = hashlib.sha256(); n = 0\n"
    "while b := sys.stdin.buffer.read1(65536):\n"
    "    h.update(b); n += len(b)\n"
    "print(h.hexdigest(), n)\n"
)

SYNC_KINDS = ["bytes", "bytearray", "memoryview", "bytesio", "file", "pipe", "iterable", "writer"]
ASYNC_KINDS = ["bytes", "bytesio", "iterable", "async-iterable", "async-writer"]
CHUNK_SIZES = [1000, 4096, 65536, 1 << 20, 3 << 20]


def expect(data: bytes) -> str:
    return f"{hashlib.sha256(data).hexdigest()} {len(data)}"


@pytest.fixture
def hasher(start_process, wait_finished, local_client) -> Callable[[], tuple[int, Callable[[], str]]]:
    """Start a hashing process; returns (pid, result) where result() waits and gives its line."""

    def start() -> tuple[int, Callable[[], str]]:
        info = start_process(sys.executable, "-c", HASHER, stdin="pipe")

        def result() -> str:
            wait_finished(info.pid, 60)
            out = sandbox_process_stdout.sync(info.pid, client=local_client)
            assert len(out.lines) == 1, out.lines
            return out.lines[0]

        return info.pid, result

    return start


@st.composite
def chunkings(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """Random bytes, cut at random places (so some pieces are empty)."""
    size = draw(st.one_of(st.integers(0, 64), st.integers(0, 300_000)))
    data = random.Random(draw(st.integers(0, 2**32))).randbytes(size)
    cuts = sorted(draw(st.lists(st.integers(0, size), max_size=30)))
    bounds = [0, *cuts, size]
    return data, [data[a:b] for a, b in itertools.pairwise(bounds)]


def _pipe_of(pieces: list[bytes]) -> io.BufferedReader:
    r, w = os.pipe()

    def feed() -> None:
        with open(w, "wb", buffering=0) as f:
            for p in pieces:
                f.write(p)

    threading.Thread(target=feed, daemon=True).start()
    return open(r, "rb")


def _send_sync(client: SandboxClient, pid: int, kind: str, data: bytes, pieces: list[bytes], cs: int) -> int:
    if kind == "bytes":
        return write_stdin(client, pid, data, chunk_size=cs)
    if kind == "bytearray":
        return write_stdin(client, pid, bytearray(data), chunk_size=cs)
    if kind == "memoryview":
        return write_stdin(client, pid, memoryview(b"<" + data + b">")[1:-1], chunk_size=cs)
    if kind == "bytesio":
        return write_stdin(client, pid, io.BytesIO(data), chunk_size=cs)
    if kind == "file":
        import tempfile

        with tempfile.TemporaryFile() as f:
            f.write(data)
            f.seek(0)
            return write_stdin(client, pid, f, chunk_size=cs)
    if kind == "pipe":
        with _pipe_of(pieces) as f:
            return write_stdin(client, pid, f, chunk_size=cs)
    if kind == "iterable":
        return write_stdin(client, pid, iter(pieces), chunk_size=cs)
    if kind == "writer":
        with stdin_writer(client, pid, chunk_size=cs) as w:
            for p in pieces:
                w.write(p)
        return w.bytes_delivered
    raise AssertionError(kind)


async def _send_async(
    client: SandboxClient, pid: int, kind: str, data: bytes, pieces: list[bytes], cs: int
) -> int:
    async def agen() -> AsyncIterator[bytes]:
        for p in pieces:
            yield p
            await asyncio.sleep(0)

    if kind == "bytes":
        return await awrite_stdin(client, pid, data, chunk_size=cs)
    if kind == "bytesio":
        return await awrite_stdin(client, pid, io.BytesIO(data), chunk_size=cs)
    if kind == "iterable":
        return await awrite_stdin(client, pid, iter(pieces), chunk_size=cs)
    if kind == "async-iterable":
        return await awrite_stdin(client, pid, agen(), chunk_size=cs)
    if kind == "async-writer":
        async with astdin_writer(client, pid, chunk_size=cs) as w:
            for p in pieces:
                await w.write(p)
        return w.bytes_delivered
    raise AssertionError(kind)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=chunkings(), kind=st.sampled_from(SYNC_KINDS), chunk_size=st.sampled_from(CHUNK_SIZES))
def test_sync_every_byte_once_in_order(local_client, hasher, case, kind, chunk_size):
    data, pieces = case
    pid, result = hasher()
    assert _send_sync(local_client, pid, kind, data, pieces, chunk_size) == len(data)
    if kind != "writer":
        close_stdin(local_client, pid)
    assert result() == expect(data)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=chunkings(), kind=st.sampled_from(ASYNC_KINDS), chunk_size=st.sampled_from(CHUNK_SIZES))
def test_async_every_byte_once_in_order(local_client, hasher, case, kind, chunk_size):
    data, pieces = case
    pid, result = hasher()

    async def main() -> int:
        try:
            n = await _send_async(local_client, pid, kind, data, pieces, chunk_size)
            if kind != "async-writer":
                await aclose_stdin(local_client, pid)
            return n
        finally:
            await local_client.aclose()

    assert asyncio.run(main()) == len(data)
    assert result() == expect(data)


def test_chunk_size_over_the_sandbox_limit_is_halved(local_client, hasher):
    data = os.urandom(5 << 20)
    pid, result = hasher()
    assert write_stdin(local_client, pid, data, chunk_size=4 << 20) == len(data)
    close_stdin(local_client, pid)
    assert result() == expect(data)


def test_64_mib_stream(local_client, hasher):
    rng = random.Random(64)
    digest = hashlib.sha256()

    def pieces() -> Iterator[bytes]:
        for _ in range(64):
            piece = rng.randbytes(1 << 20)
            digest.update(piece)
            yield piece

    pid, result = hasher()
    started = time.monotonic()
    n = write_stdin(local_client, pid, pieces())
    elapsed = time.monotonic() - started
    close_stdin(local_client, pid)
    print(f"64 MiB through write_stdin in {elapsed:.1f} s ({64 / elapsed:.0f} MiB/s)")
    assert n == 64 << 20
    assert result() == f"{digest.hexdigest()} {64 << 20}"


def test_process_exits_mid_stream(local_client, start_process):
    info = start_process(sys.executable, "-c", "import sys; sys.stdin.buffer.read(1000)", stdin="pipe")
    with pytest.raises(StdinNotWritableError) as caught:
        write_stdin(local_client, info.pid, iter([b"x" * 65536] * 320), chunk_size=65536)
    err = caught.value
    assert err.status_code == 400
    assert err.request_bytes == 65536
    assert err.bytes_delivered is not None
    assert err.bytes_delivered % 65536 == 0
    assert err.bytes_delivered < 320 * 65536


def test_process_that_stops_reading_fails_after_the_timeout(local_client, start_process):
    info = start_process("sleep", "60", stdin="pipe")
    started = time.monotonic()
    with pytest.raises(DeliveryUnknownError) as caught:
        write_stdin(local_client, info.pid, b"z" * (4 << 20), timeout=1.0)
    assert time.monotonic() - started < 15
    assert caught.value.bytes_delivered == 0
    assert caught.value.request_bytes == DEFAULT_CHUNK_SIZE


def test_writer_without_with_needs_an_explicit_close(local_client, hasher):
    pid, result = hasher()
    w = stdin_writer(local_client, pid)
    w.write(b"abc")
    w.write("déf")
    w.close()
    w.close()  # idempotent
    assert w.bytes_delivered == 7
    assert result() == expect("abcdéf".encode())
