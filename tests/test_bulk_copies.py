"""A bulk chunk goes from the source to the socket without a copy made in Python (issue 12).

Writes to one process wait for each other, so over a network everything the client does per
2 MiB chunk adds to every round trip. Each test pins one place where a chunk used to be
copied: the reader thread's buffer (pieces joined or sliced), the request body (a
``BytesIO`` read back in 1 MiB pieces) and the socket write (the transport joining the
body to the head). The bytes themselves are checked end to end on a real server in
``test_stdin_integrity.py``.
"""

from __future__ import annotations

import asyncio
import io
import os
from typing import Any

from tensorlake_sandbox._async._transport import file_body as afile_body
from tensorlake_sandbox._sources import aopen_source, open_source
from tensorlake_sandbox._sync._transport import file_body

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
    (afile_body if is_async else file_body)(kwargs)
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


def test_a_large_body_reaches_the_socket_as_the_bytes_it_was_made_from(make_server, monkeypatch):
    import socket

    import httpx

    from tensorlake_sandbox._sync._transport import Transport

    given: list[Any] = []
    send = socket.socket.send

    def spy(self: socket.socket, data: Any, *args: Any) -> int:
        given.append(data)
        return send(self, data, *args)

    monkeypatch.setattr(socket.socket, "send", spy)
    server = make_server()
    big = os.urandom(2 << 20)
    with httpx.Client(transport=Transport(httpx.create_ssl_context(), httpx.Limits())) as client:
        assert (
            client.post(f"{server.base_url}/api/v1/processes/1/stdin", content=iter([big])).status_code == 204
        )
    # handed to the socket itself (a view of it, as the socket takes it in parts): no copy
    assert any(isinstance(piece, memoryview) and piece.obj is big for piece in given)
    assert server.accepted_count == len(big)
