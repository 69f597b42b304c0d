"""write_stdin against a real server that misbehaves on purpose (tests/servers/fault.py).

Each test asserts how many requests the server received and exactly which bytes it
accepted: a request is resent only when the server certainly did not get it; otherwise the
writer raises DeliveryUnknownError with the exact count of bytes confirmed before it.
"""

from __future__ import annotations

import asyncio
import os
import time

import httpx
import pytest

from tensorlake_sandbox import (
    DeliveryUnknownError,
    PayloadTooLargeError,
    ProcessNotFoundError,
    RetryPolicy,
    SandboxClient,
    SandboxConnectionError,
    SandboxUnavailableError,
    StdinNotWritableError,
    awrite_stdin,
    sandbox_client,
    write_stdin,
)
from tensorlake_sandbox._sync._stdin import close_stdin, stdin_writer
from tests.closing import close_after_test
from tests.servers.fault import OK, Close, FaultServer, Reply, Slow

PID = 42
FAST_RETRY = RetryPolicy(attempts=6, base_delay=0.01, max_delay=0.05)


def client_for(server: FaultServer, timeout: float = 10.0) -> SandboxClient:
    """A client for ``server``; closed (sync and async connections) at the test's end."""
    client = sandbox_client(
        base_url=server.base_url,
        api_key="test-key",
        timeout=timeout,
    )
    close_after_test(client)
    return client


def sizes(server: FaultServer) -> list[tuple[int, int | None]]:
    return [(r.size, r.status) for r in server.stdin_requests]


def test_happy_path_chunks_in_order(make_server):
    server = make_server()
    data = os.urandom(10_000)
    assert write_stdin(client_for(server), PID, data, chunk_size=3000) == 10_000
    assert sizes(server) == [(3000, 204), (3000, 204), (3000, 204), (1000, 204)]
    assert bytes(server.accepted) == data
    assert all(r.path == f"/api/v1/processes/{PID}/stdin" for r in server.stdin_requests)


def test_connection_closed_after_body_is_delivery_unknown(make_server):
    server = make_server(plan=[OK, OK, Close()])
    data = os.urandom(5000)
    with pytest.raises(DeliveryUnknownError) as info:
        write_stdin(client_for(server), PID, data, chunk_size=1000, retry=FAST_RETRY)
    err = info.value
    assert err.bytes_delivered == 2000
    assert err.request_bytes == 1000
    assert err.status_code is None
    assert isinstance(err.__cause__.__cause__, httpx.TransportError)
    # Never resent: three requests, exactly the first two accepted.
    assert sizes(server) == [(1000, 204), (1000, 204), (1000, None)]
    assert bytes(server.accepted) == data[:2000]


@pytest.mark.parametrize("status", [502, 504, 500])
def test_gateway_errors_after_body_are_delivery_unknown(make_server, status):
    server = make_server(plan=[OK, Reply(status, "UPSTREAM_ERROR")])
    data = os.urandom(3000)
    with pytest.raises(DeliveryUnknownError) as info:
        write_stdin(client_for(server), PID, data, chunk_size=1000, retry=FAST_RETRY)
    assert info.value.status_code == status
    assert (info.value.bytes_delivered, info.value.request_bytes) == (1000, 1000)
    assert sizes(server) == [(1000, 204), (1000, status)]
    assert bytes(server.accepted) == data[:1000]


@pytest.mark.parametrize("code", ["SOMETHING_ELSE", None])
def test_503_without_not_forwarded_code_is_delivery_unknown(make_server, code):
    server = make_server(plan=[OK, Reply(503, code)])
    data = os.urandom(3000)
    with pytest.raises(DeliveryUnknownError) as info:
        write_stdin(client_for(server), PID, data, chunk_size=1000, retry=FAST_RETRY)
    assert info.value.status_code == 503
    assert (info.value.bytes_delivered, info.value.request_bytes) == (1000, 1000)
    # Not resent, and nothing after it sent: the first request's bytes only.
    assert sizes(server) == [(1000, 204), (1000, 503)]
    assert bytes(server.accepted) == data[:1000]


@pytest.mark.parametrize("code", ["SANDBOX_NOT_READY", "SANDBOX_UNREACHABLE", "AUTH_SERVICE_UNAVAILABLE"])
def test_503_not_forwarded_is_retried_once_and_delivered_once(make_server, code):
    server = make_server(plan=[OK, Reply(503, code), Reply(503, code), OK])
    data = os.urandom(2500)
    assert write_stdin(client_for(server), PID, data, chunk_size=1000, retry=FAST_RETRY) == 2500
    assert sizes(server) == [(1000, 204), (1000, 503), (1000, 503), (1000, 204), (500, 204)]
    assert bytes(server.accepted) == data


def test_503_not_forwarded_gives_up_after_the_policy_attempts(make_server):
    server = make_server(plan=[OK] + [Reply(503, "SANDBOX_NOT_READY")] * 10)
    data = os.urandom(2000)
    policy = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.01)
    with pytest.raises(SandboxUnavailableError) as info:
        write_stdin(client_for(server), PID, data, chunk_size=1000, retry=policy)
    assert not isinstance(info.value, DeliveryUnknownError)
    assert (info.value.bytes_delivered, info.value.request_bytes) == (1000, 1000)
    assert sizes(server) == [(1000, 204)] + [(1000, 503)] * 3
    assert bytes(server.accepted) == data[:1000]


def test_connection_refused_then_up_is_retried(make_server):
    server = make_server(listen_after=0.3)
    data = os.urandom(4000)
    # Many short attempts, so that the retries certainly span the delay whatever the jitter.
    policy = RetryPolicy(attempts=200, base_delay=0.05, max_delay=0.05)
    assert write_stdin(client_for(server), PID, data, chunk_size=1500, retry=policy) == 4000
    assert sizes(server) == [(1500, 204), (1500, 204), (1000, 204)]
    assert bytes(server.accepted) == data


def test_connection_refused_for_good_raises_a_connection_error_with_nothing_sent(closed_port):
    client = sandbox_client(base_url=f"http://127.0.0.1:{closed_port}", api_key="k")
    close_after_test(client)
    policy = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.01)
    with pytest.raises(SandboxConnectionError) as info:
        write_stdin(client, PID, b"hello", retry=policy)
    assert info.value.may_have_been_sent is False
    assert (info.value.bytes_delivered, info.value.request_bytes) == (0, 5)
    assert isinstance(info.value.__cause__, httpx.ConnectError)


def test_reply_slower_than_timeout_is_delivery_unknown(make_server):
    server = make_server(plan=[OK, Slow(30)])
    data = os.urandom(2000)
    with pytest.raises(DeliveryUnknownError) as info:
        write_stdin(client_for(server, timeout=0.5), PID, data, chunk_size=1000, retry=FAST_RETRY)
    assert isinstance(info.value.__cause__.__cause__, httpx.ReadTimeout)
    assert (info.value.bytes_delivered, info.value.request_bytes) == (1000, 1000)
    # The server did take the second request's bytes: that is why it must not be resent.
    assert sizes(server) == [(1000, 204), (1000, 204)]
    assert bytes(server.accepted) == data


# The reply to the call after the override: far slower than the override, far faster than
# the client's own timeout.
SLOWER_THAN_OVERRIDE = 1.5


def test_timeout_override_per_call(make_server):
    server = make_server(plan=[Slow(30), Slow(SLOWER_THAN_OVERRIDE), Slow(SLOWER_THAN_OVERRIDE)])
    client = client_for(server, timeout=60)
    with pytest.raises(DeliveryUnknownError) as info:
        write_stdin(client, PID, b"x", timeout=0.3)
    assert isinstance(info.value.__cause__.__cause__, httpx.ReadTimeout)
    # The override was for that call only: the next calls (a write, then a close) wait for a
    # reply slower than 0.3 s under the client's own 60 s, and succeed.
    started = time.monotonic()
    assert write_stdin(client, PID, b"y") == 1
    assert time.monotonic() - started >= SLOWER_THAN_OVERRIDE
    with stdin_writer(client, PID) as w:
        w.write(b"z")
    assert sizes(server) == [(1, 204), (1, 204), (1, 204)]
    assert bytes(server.accepted) == b"xyz"


def test_async_timeout_override_per_call(make_server):
    server = make_server(plan=[Slow(30), Slow(SLOWER_THAN_OVERRIDE)])

    async def main() -> None:
        client = client_for(server, timeout=60)
        try:
            with pytest.raises(DeliveryUnknownError) as info:
                await awrite_stdin(client, PID, b"x", timeout=0.3)
            assert isinstance(info.value.__cause__.__cause__, httpx.ReadTimeout)
            assert await awrite_stdin(client, PID, b"y") == 1
        finally:
            await client.aclose()

    asyncio.run(main())
    assert sizes(server) == [(1, 204), (1, 204)]


def test_413_halves_and_keeps_the_smaller_size(make_server):
    # 30,000 bytes in 8 KiB chunks to a server that takes at most 3000 per request: 8192 and
    # 4096 are refused, and every later request, in this chunk and the next ones, is 2048
    # bytes: 2 refusals + 14 x 2048 + 1328 = 17 requests. Going back to 8192 for each new
    # chunk would cost two refusals per chunk (21 requests).
    server = make_server(max_body=3000)
    data = os.urandom(30_000)
    assert write_stdin(client_for(server), PID, data, chunk_size=8192) == 30_000
    assert sizes(server) == [(8192, 413), (4096, 413)] + [(2048, 204)] * 14 + [(1328, 204)]
    assert bytes(server.accepted) == data


def test_413_size_is_kept_for_a_streamed_source_too(make_server):
    # The same from an iterable of 8192-byte pieces: each new piece is sent at the kept size.
    server = make_server(max_body=3000)
    data = os.urandom(4 * 8192)
    pieces = (data[i : i + 8192] for i in range(0, len(data), 8192))
    assert write_stdin(client_for(server), PID, pieces, chunk_size=8192) == len(data)
    assert sizes(server) == [(8192, 413), (4096, 413)] + [(2048, 204)] * 16
    assert bytes(server.accepted) == data


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_small_bytes_write_refused_with_413_is_split_and_delivered_in_order(make_server, mode):
    # Bytes that fit in one chunk skip the reader (the common small write); a 413 still halves.
    server = make_server(max_body=3)
    client = client_for(server)

    async def main() -> int:
        try:
            return await awrite_stdin(client, PID, b"abcdefgh")
        finally:
            await client.aclose()

    delivered = write_stdin(client, PID, b"abcdefgh") if mode == "sync" else asyncio.run(main())
    assert delivered == 8
    assert sizes(server) == [(8, 413), (4, 413)] + [(2, 204)] * 4
    assert server.accepted == b"abcdefgh"


def test_413_on_one_byte_raises_payload_too_large(make_server):
    server = make_server(max_body=0)
    with pytest.raises(PayloadTooLargeError) as info:
        write_stdin(client_for(server), PID, b"abcd")
    assert (info.value.bytes_delivered, info.value.request_bytes) == (0, 1)
    assert sizes(server) == [(4, 413), (2, 413), (1, 413)]
    assert server.accepted == b""


def test_process_exits_mid_stream_400(make_server):
    server = make_server(plan=[OK, OK, Reply(400, "STDIN_NOT_WRITABLE")])
    data = os.urandom(5000)
    with pytest.raises(StdinNotWritableError) as info:
        write_stdin(client_for(server), PID, data, chunk_size=1000, retry=FAST_RETRY)
    assert (info.value.bytes_delivered, info.value.request_bytes) == (2000, 1000)
    assert any("2000 bytes" in note for note in info.value.__notes__)
    assert sizes(server) == [(1000, 204), (1000, 204), (1000, 400)]
    assert bytes(server.accepted) == data[:2000]


def test_404(make_server):
    server = make_server(plan=[Reply(404, "NOT_FOUND", "Process 42 not found")])
    with pytest.raises(ProcessNotFoundError) as info:
        write_stdin(client_for(server), PID, b"hello", retry=FAST_RETRY)
    assert (info.value.bytes_delivered, info.value.request_bytes) == (0, 5)
    assert len(server.stdin_requests) == 1
    assert server.accepted == b""


# The async cases run on both async transports: the retry rule must see the same failures.


def test_async_faults_match_sync(make_server):
    server = make_server(plan=[OK, Reply(503, "SANDBOX_NOT_READY"), OK, Close()])
    data = os.urandom(4000)

    async def main() -> None:
        client = client_for(server)
        try:
            with pytest.raises(DeliveryUnknownError) as info:
                await awrite_stdin(client, PID, data, chunk_size=1000, retry=FAST_RETRY)
        finally:
            await client.aclose()
        assert (info.value.bytes_delivered, info.value.request_bytes) == (2000, 1000)

    asyncio.run(main())
    assert sizes(server) == [(1000, 204), (1000, 503), (1000, 204), (1000, None)]
    assert bytes(server.accepted) == data[:2000]


def test_async_413_and_timeout(make_server):
    server = make_server(max_body=1000, plan=[OK, OK, Slow(30)])
    data = os.urandom(3000)

    async def main() -> None:
        client = client_for(server)
        try:
            with pytest.raises(DeliveryUnknownError) as info:
                await awrite_stdin(client, PID, data, chunk_size=2000, timeout=0.5)
        finally:
            await client.aclose()
        assert isinstance(info.value.__cause__.__cause__, httpx.ReadTimeout)
        assert (info.value.bytes_delivered, info.value.request_bytes) == (2000, 1000)

    asyncio.run(main())
    assert sizes(server) == [(2000, 413), (1000, 204), (1000, 204), (1000, 204)]
    assert bytes(server.accepted) == data


@pytest.mark.parametrize("action", [Close(), Reply(502)], ids=["dropped", "502"])
def test_close_stdin_is_not_retried_when_it_may_have_arrived(make_server, action):
    server = make_server(close_plan=[action, OK])
    with pytest.raises(DeliveryUnknownError, match="may or may not have arrived"):
        close_stdin(client_for(server), PID, retry=FAST_RETRY)
    assert len(server.requests) == 1


def test_close_stdin_is_retried_when_the_proxy_did_not_forward_it(make_server):
    server = make_server(close_plan=[Reply(503, "SANDBOX_NOT_READY"), OK])
    close_stdin(client_for(server), PID, retry=FAST_RETRY)
    assert [r.status for r in server.requests] == [503, 204]
    assert server.closes == 1


def test_close_stdin_404_is_not_retried(make_server):
    server = make_server(close_plan=[Reply(404, "NOT_FOUND")])
    with pytest.raises(ProcessNotFoundError):
        close_stdin(client_for(server), PID, retry=FAST_RETRY)
    assert len(server.requests) == 1


def test_writer_sends_eof_on_normal_exit_and_counts(make_server):
    server = make_server()
    with stdin_writer(client_for(server), PID) as w:
        assert w.write(b"abc") == 3
        assert w.write(iter([b"de", b"f"])) == 3
        assert w.bytes_delivered == 6
    assert w.closed
    assert server.closes == 1
    assert bytes(server.accepted) == b"abcdef"
    with pytest.raises(ValueError, match="closed"):
        w.write(b"more")


def test_writer_sends_eof_on_a_user_exception(make_server):
    server = make_server()
    with pytest.raises(RuntimeError, match="boom"), stdin_writer(client_for(server), PID) as w:
        w.write(b"abc")
        raise RuntimeError("boom")
    assert server.closes == 1


def test_writer_leaves_stdin_open_when_delivery_is_unknown(make_server):
    server = make_server(plan=[OK, Close()])
    with pytest.raises(DeliveryUnknownError) as info, stdin_writer(client_for(server), PID) as w:
        w.write(b"abc")
        w.write(b"def")
    assert server.closes == 0
    assert w.bytes_delivered == 3
    assert any("left open" in note for note in info.value.__notes__)


@pytest.mark.parametrize("failure", [Reply(400, "STDIN_NOT_WRITABLE"), Close()], ids=["400", "dropped"])
def test_seekable_file_is_left_after_the_delivered_bytes_for_an_exact_resume(make_server, tmp_path, failure):
    data = os.urandom(50_000)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    first = make_server(plan=[OK, OK, failure])
    with open(path, "rb") as f:
        f.seek(100)
        expected = StdinNotWritableError if isinstance(failure, Reply) else DeliveryUnknownError
        with pytest.raises(expected) as info:
            write_stdin(client_for(first), PID, f, chunk_size=4000, retry=FAST_RETRY)
        # Exactly this class: a 400 taken for "delivery unknown" (or the reverse) fails here.
        assert type(info.value) is expected
        assert (info.value.bytes_delivered, info.value.request_bytes) == (8000, 4000)
        assert f.tell() == 100 + 8000
        second = make_server()
        assert write_stdin(client_for(second), PID, f, chunk_size=4000) == len(data) - 8100
    assert bytes(first.accepted) + bytes(second.accepted) == data[100:]


def test_async_rewinds_a_seekable_file_too(make_server):
    import io

    data = os.urandom(10_000)
    server = make_server(plan=[OK, Reply(404, "NOT_FOUND")])
    f = io.BytesIO(data)

    async def main() -> None:
        client = client_for(server)
        try:
            with pytest.raises(ProcessNotFoundError):
                await awrite_stdin(client, PID, f, chunk_size=3000)
        finally:
            await client.aclose()

    asyncio.run(main())
    assert f.tell() == 3000
    assert bytes(server.accepted) == data[:3000]


def test_on_progress_reports_each_confirmed_request_only(make_server):
    server = make_server(max_body=3000, plan=[OK, Reply(503, "SANDBOX_NOT_READY"), OK, Close()])
    seen: list[int] = []
    with pytest.raises(DeliveryUnknownError):
        write_stdin(client_for(server), PID, os.urandom(20_000), chunk_size=4000, on_progress=seen.append)
    # 4000 -> 413, then 2000-byte requests: OK, 503 (retried), OK, dropped.
    assert seen == [2000, 2000]
    with pytest.raises(TypeError, match="on_progress"):
        write_stdin(client_for(server), PID, b"x", on_progress=42)  # type: ignore[arg-type]
