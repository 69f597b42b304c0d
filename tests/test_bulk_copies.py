"""A bulk chunk goes from the source to the socket without a copy made in Python (issue 12).

Writes to one process wait for each other, so over a network everything the client does per
2 MiB chunk adds to every round trip. Each test pins one place where a chunk used to be
copied: the reader thread's buffer (pieces joined or sliced), the request body (a
``BytesIO`` read back in 1 MiB pieces) and the socket write (httpcore slicing ``bytes``
after a partial send). The bytes themselves are checked end to end on a real server in
``test_httpx_speedups.py`` and ``test_stdin_integrity.py``.
"""

from __future__ import annotations

import asyncio
import io
import os
from typing import Any

import httpcore

from tensorlake_sandbox._bodies import aiter_file, awhole_bytes_io, iter_file, whole_bytes_io
from tensorlake_sandbox._http import _adapt_file_body
from tensorlake_sandbox._httpx_speedups import _HeadWithBodyStream
from tensorlake_sandbox._sources import aopen_source, open_source

CHUNK = 256 * 1024


class _Pieces:
    """A binary file (a pipe, say) that records each read and the bytes object it returned."""

    mode = "rb"
    closed = False

    def __init__(self, total: int) -> None:
        self.left = total
        self.asked: list[int] = []
        self.given: list[bytes] = []

    def seekable(self) -> bool:
        return False

    def read1(self, n: int) -> bytes:
        self.asked.append(n)
        k = min(n, self.left)
        self.left -= k
        piece = os.urandom(k)
        if piece:
            self.given.append(piece)
        return piece

    read = read1


def test_a_file_chunk_is_one_read_and_is_taken_as_the_same_bytes_object():
    f = _Pieces(5 * CHUNK)
    source = open_source(f, 2 * CHUNK)  # the writers' capacity: two chunks
    try:
        taken = [source.take(CHUNK) for _ in range(5)]
        assert source.take(CHUNK) == b""
    finally:
        source.close()
    assert max(f.asked) <= CHUNK  # never more than a chunk per read, so no slicing later
    assert len(f.given) == 5
    assert all(t is g for t, g in zip(taken, f.given, strict=True))


def test_the_async_path_takes_a_file_chunk_as_the_same_bytes_object_too():
    async def main() -> tuple[list[bytes], _Pieces]:
        f = _Pieces(3 * CHUNK)
        source = aopen_source(f, 2 * CHUNK)
        try:
            return [await source.atake(CHUNK) for _ in range(3)], f
        finally:
            await source.aclose()

    taken, f = asyncio.run(main())
    assert all(t is g for t, g in zip(taken, f.given, strict=True))


def _adapted(content: Any, *, is_async: bool = False) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"content": content, "headers": {"Content-Type": "application/octet-stream"}}
    if is_async:
        _adapt_file_body(kwargs, aiter_file, awhole_bytes_io)
    else:
        _adapt_file_body(kwargs, iter_file, whole_bytes_io)
    return kwargs


def test_a_large_bytes_io_body_is_streamed_as_the_bytes_it_was_made_from():
    data = os.urandom(2 << 20)
    payload = io.BytesIO(data)
    kwargs = _adapted(payload)
    pieces = list(kwargs["content"])
    assert len(pieces) == 1 and pieces[0] is data
    assert kwargs["headers"]["Content-Length"] == str(len(data))
    assert payload.tell() == len(data)  # read, as httpx reading it would leave it


def test_a_bytes_io_read_from_the_middle_sends_only_the_rest():
    data = os.urandom(200_000)
    payload = io.BytesIO(data)
    payload.seek(70_000)
    kwargs = _adapted(payload)
    assert b"".join(kwargs["content"]) == data[70_000:]
    assert kwargs["headers"]["Content-Length"] == str(len(data) - 70_000)
    assert payload.tell() == len(data)


def test_the_async_client_streams_a_large_bytes_io_as_the_same_bytes():
    data = os.urandom(2 << 20)
    kwargs = _adapted(io.BytesIO(data), is_async=True)

    async def collect() -> list[bytes]:
        return [piece async for piece in kwargs["content"]]

    pieces = asyncio.run(collect())
    assert len(pieces) == 1 and pieces[0] is data


def test_a_small_bytes_io_body_is_still_sent_as_bytes():
    kwargs = _adapted(io.BytesIO(b"hello"))
    assert kwargs["content"] == b"hello"


class _PartialSocket(httpcore.NetworkStream):
    """httpcore's sync write loop over a socket that takes at most ``step`` bytes per send."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.sent: list[Any] = []
        self.buffers: list[Any] = []

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.buffers.append(buffer)
        while buffer:  # as httpcore.SyncStream.write does
            n = min(self.step, len(buffer))
            self.sent.append(buffer[:n])
            buffer = buffer[n:]

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return b"HTTP/1.1 204 No Content\r\n\r\n"

    def close(self) -> None:
        pass


def test_a_large_body_reaches_the_socket_as_a_view_so_partial_sends_do_not_copy_it():
    inner = _PartialSocket(step=256 * 1024)
    s = _HeadWithBodyStream(inner)
    big = os.urandom(2 << 20)
    s.write(b"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 2097152\r\n\r\n")
    s.write(big)
    body = inner.buffers[-1]
    assert isinstance(body, memoryview) and body.obj is big  # slicing a view copies nothing
    assert b"".join(bytes(x) for x in inner.sent).endswith(big)
