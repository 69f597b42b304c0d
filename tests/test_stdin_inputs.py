"""What write_stdin accepts, what it refuses (before any request), and the pure retry rule.

Accepted kinds are sent to a real recording server (tests/servers/fault.py) and compared
byte for byte; refused ones must raise a TypeError/ValueError that says what is accepted,
with the server having received nothing.
"""

from __future__ import annotations

import array
import asyncio
import io
import os
import random
from collections.abc import AsyncGenerator, AsyncIterator, Iterator

import httpx
import pytest

from tensorlake_api_client.client import AuthenticatedClient
from tensorlake_sandbox import (
    BadRequestError,
    DeliveryUnknownError,
    PayloadTooLargeError,
    ProcessNotFoundError,
    RetryPolicy,
    SandboxClient,
    SandboxError,
    SandboxUnavailableError,
    StdinNotWritableError,
    awrite_stdin,
    sandbox_client,
    write_stdin,
)
from tensorlake_sandbox._delivery import DEFAULT_CHUNK_SIZE, NOT_FORWARDED_CODES, Outcome, classify_failure
from tensorlake_sandbox._sync._stdin import stdin_writer
from tests.servers.fault import FaultServer

PID = 3


@pytest.fixture(scope="module")
def server() -> Iterator[FaultServer]:
    with FaultServer() as s:
        yield s


@pytest.fixture
def client(server: FaultServer) -> Iterator[SandboxClient]:
    server.requests.clear()
    server.accepted.clear()
    server.accepted_count = 0
    c = sandbox_client(base_url=server.base_url, api_key="test-key", timeout=10)
    yield c
    c.get_httpx_client().close()


# -- the pure rule ------------------------------------------------------------------------------


def _req() -> httpx.Request:
    return httpx.Request("POST", "http://127.0.0.1/api/v1/processes/1/stdin")


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (httpx.ConnectError("refused"), Outcome.NOT_SENT),
        (httpx.ConnectTimeout("slow connect"), Outcome.NOT_SENT),
        (httpx.PoolTimeout("pool"), Outcome.NOT_SENT),
        (httpx.ReadTimeout("slow reply", request=_req()), Outcome.UNKNOWN),
        (httpx.WriteTimeout("slow write", request=_req()), Outcome.UNKNOWN),
        (httpx.ReadError("reset", request=_req()), Outcome.UNKNOWN),
        (httpx.WriteError("broken pipe", request=_req()), Outcome.UNKNOWN),
        (httpx.RemoteProtocolError("disconnected", request=_req()), Outcome.UNKNOWN),
        (SandboxUnavailableError("x", status_code=503, code="SANDBOX_NOT_READY"), Outcome.NOT_SENT),
        (SandboxUnavailableError("x", status_code=503, code="SANDBOX_UNREACHABLE"), Outcome.NOT_SENT),
        (SandboxUnavailableError("x", status_code=503, code="AUTH_SERVICE_UNAVAILABLE"), Outcome.NOT_SENT),
        (SandboxUnavailableError("x", status_code=503, code=None), Outcome.UNKNOWN),
        (SandboxUnavailableError("x", status_code=503, code="OTHER"), Outcome.UNKNOWN),
        (SandboxUnavailableError("x", status_code=502, code="SANDBOX_NOT_READY"), Outcome.UNKNOWN),
        (SandboxUnavailableError("x", status_code=504), Outcome.UNKNOWN),
        (SandboxError("x", status_code=500), Outcome.UNKNOWN),
        (PayloadTooLargeError("x", status_code=413), Outcome.TOO_LARGE),
        (StdinNotWritableError("x", status_code=400), Outcome.REJECTED),
        (ProcessNotFoundError("x", status_code=404), Outcome.REJECTED),
        (BadRequestError("x", status_code=401), Outcome.REJECTED),
        (DeliveryUnknownError("x"), Outcome.UNKNOWN),
        (KeyboardInterrupt(), None),
        (ValueError("bug"), None),
    ],
)
def test_classify_failure(error, outcome):
    assert classify_failure(error) is outcome


def test_not_forwarded_codes_are_exactly_the_documented_three():
    assert {"SANDBOX_NOT_READY", "SANDBOX_UNREACHABLE", "AUTH_SERVICE_UNAVAILABLE"} == NOT_FORWARDED_CODES


def test_default_retry_policy_is_bounded_and_small():
    policy = RetryPolicy()
    rng = random.Random(1)
    for _ in range(200):
        total = sum(policy.delay(n, rng) for n in range(1, policy.attempts))
        assert 0 <= total <= 3.1
    ceilings = [min(policy.max_delay, policy.base_delay * 2 ** (n - 1)) for n in range(1, policy.attempts)]
    assert ceilings == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert all(0 <= policy.delay(5, rng) <= 1.6 for _ in range(100))


def test_retry_policy_validation():
    with pytest.raises(ValueError):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base_delay=-1)


def test_default_chunk_size_is_the_sandbox_body_limit():
    from tensorlake_sandbox.local import DEFAULT_MAX_BODY_BYTES

    assert DEFAULT_CHUNK_SIZE == DEFAULT_MAX_BODY_BYTES == 2 * 1024 * 1024


# -- refused before any request -------------------------------------------------------------------


class _TextLike:
    mode = "r"

    def read(self, n: int = -1) -> str:
        return "text"


@pytest.mark.parametrize(
    "data",
    [42, None, 1.5, object(), io.StringIO("text"), _TextLike()],
    ids=["int", "None", "float", "object", "StringIO", "text-mode file"],
)
def test_unsupported_kinds_are_type_errors_before_any_request(server, client, data):
    with pytest.raises(TypeError, match=r"bytes|binary"):
        write_stdin(client, PID, data)
    assert server.requests == []


def test_text_mode_real_file_is_refused_with_a_hint(server, client, tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("hello")
    with open(path) as f, pytest.raises(TypeError, match="rb"):
        write_stdin(client, PID, f)
    assert server.requests == []


@pytest.mark.parametrize(
    ("pieces", "delivered"),
    [(["text"], b""), ([b"ok", "text", b"after"], b"ok"), ([1, 2], b"")],
    ids=["str-first", "str-later", "ints"],
)
def test_iterable_of_non_bytes_is_a_type_error(server, client, pieces, delivered):
    with pytest.raises(TypeError, match="yield"):
        write_stdin(client, PID, iter(pieces))
    # Whatever came before the bad piece was delivered, in order; nothing after it.
    assert bytes(server.accepted) == delivered


def test_str_first_piece_sends_nothing(server, client):
    with pytest.raises(TypeError):
        write_stdin(client, PID, ["a str"])
    assert server.requests == []


def test_async_iterable_on_the_sync_path_is_refused(server, client):
    async def agen() -> AsyncGenerator[bytes]:
        yield b"x"

    gen = agen()
    with pytest.raises(TypeError, match="awrite_stdin"):
        write_stdin(client, PID, gen)
    asyncio.run(gen.aclose())
    assert server.requests == []


def test_async_path_refuses_unsupported_kinds(server, client):
    async def main() -> None:
        with pytest.raises(TypeError, match="async iterable"):
            await awrite_stdin(client, PID, 42)

    asyncio.run(main())
    assert server.requests == []


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"chunk_size": 0}, ValueError),
        ({"chunk_size": -5}, ValueError),
        ({"chunk_size": 1.5}, TypeError),
        ({"chunk_size": True}, TypeError),
        ({"timeout": -1}, ValueError),
        ({"timeout": "1"}, ValueError),
    ],
)
def test_argument_validation(server, client, kwargs, error):
    with pytest.raises(error):
        write_stdin(client, PID, b"abc", **kwargs)
    with pytest.raises(error):
        stdin_writer(client, PID, **kwargs)
    assert server.requests == []


def test_pid_and_client_types(server, client):
    with pytest.raises(TypeError, match="pid"):
        write_stdin(client, "3", b"abc")  # type: ignore[arg-type]
    plain = AuthenticatedClient(base_url=server.base_url, token="k")
    with pytest.raises(TypeError, match="sandbox_client"):
        write_stdin(plain, PID, b"abc")  # type: ignore[arg-type]
    assert server.requests == []


def test_lone_surrogate_fails_before_sending(server, client):
    with pytest.raises(UnicodeEncodeError):
        write_stdin(client, PID, "ok" * 1000 + "\ud800")
    assert server.requests == []


# -- accepted kinds -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", "", bytearray(), memoryview(b""), iter([]), iter([b"", b""]), io.BytesIO(b"")],
    ids=["bytes", "str", "bytearray", "memoryview", "no pieces", "empty pieces", "empty file"],
)
def test_empty_input_sends_nothing(server, client, data):
    assert write_stdin(client, PID, data) == 0
    assert server.requests == []


def test_empty_pieces_are_skipped(server, client):
    assert write_stdin(client, PID, [b"", b"a", b"", b"bc", b""]) == 3
    assert bytes(server.accepted) == b"abc"
    assert all(r.size > 0 for r in server.stdin_requests)


def test_str_is_utf8_even_when_a_character_spans_requests(server, client):
    text = "héllo wörld ✓ 🎉 " * 50
    assert write_stdin(client, PID, text, chunk_size=5) == len(text.encode())
    assert bytes(server.accepted) == text.encode()
    assert max(r.size for r in server.stdin_requests) <= 5


def test_bytes_like_kinds(server, client):
    ints = array.array("i", range(100))
    assert write_stdin(client, PID, ints, chunk_size=64) == len(ints.tobytes())
    assert bytes(server.accepted) == ints.tobytes()
    server.accepted.clear()
    data = os.urandom(1000)
    assert write_stdin(client, PID, memoryview(data)[100:900], chunk_size=300) == 800
    assert write_stdin(client, PID, bytearray(data[:10])) == 10
    assert bytes(server.accepted) == data[100:900] + data[:10]


def test_reused_mutable_buffer_is_copied_before_the_next_piece(server, client):
    def reuse() -> Iterator[bytearray]:
        buf = bytearray()
        for i in range(200):
            buf[:] = b"%04d," % i
            yield buf

    expected = b"".join(b"%04d," % i for i in range(200))
    assert write_stdin(client, PID, reuse()) == len(expected)
    assert bytes(server.accepted) == expected


def test_file_from_its_current_position(server, client, tmp_path):
    data = os.urandom(50_000)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    with open(path, "rb") as f:
        f.seek(1234)
        assert write_stdin(client, PID, f, chunk_size=8192) == len(data) - 1234
    with open(path, "rb", buffering=0) as raw:
        assert write_stdin(client, PID, raw, chunk_size=10_000) == len(data)
    assert bytes(server.accepted) == data[1234:] + data
    assert max(r.size for r in server.stdin_requests) <= 10_000


def test_large_single_piece_is_split_into_bounded_requests(server, client):
    data = os.urandom(300_000)
    assert write_stdin(client, PID, [data, b"tail"], chunk_size=65536) == len(data) + 4
    assert bytes(server.accepted) == data + b"tail"
    assert max(r.size for r in server.stdin_requests) <= 65536


def test_async_accepts_files_and_async_iterables(server, client):
    data = os.urandom(20_000)

    async def agen() -> AsyncIterator[bytes | bytearray | memoryview]:
        yield data[:5]
        yield b""
        yield bytearray(data[5:100])
        yield memoryview(data)[100:]

    async def main() -> None:
        try:
            assert await awrite_stdin(client, PID, agen(), chunk_size=4096) == len(data)
            assert await awrite_stdin(client, PID, io.BytesIO(data)) == len(data)
            assert await awrite_stdin(client, PID, "✓") == 3
        finally:
            await client.aclose()

    asyncio.run(main())
    assert bytes(server.accepted) == data + data + "✓".encode()
