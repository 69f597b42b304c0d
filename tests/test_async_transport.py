"""``sandbox_client(..., async_transport="aiohttp")``: the async path on aiohttp, against real
servers on 127.0.0.1.

Exact bytes and headers (recording server, local sandbox), one client across event loops,
``aclose()`` leaving no warnings, and the failures the stdin retry rule depends on: each must
reach it as the same httpx exception as on the default transport (tests/test_stdin_faults.py
runs its async cases on both transports too).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import io
import os
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator

import aiohttp
import httpx
import pytest

import tensorlake_sandbox
from tensorlake_api_client.api.sandbox_processes import sandbox_process_stdin
from tensorlake_api_client.types import File
from tensorlake_sandbox import (
    DeliveryUnknownError,
    RetryPolicy,
    SandboxClient,
    SandboxUnavailableError,
    aclose_stdin,
    awrite_stdin,
    sandbox_client,
)
from tensorlake_sandbox._aiohttp import SandboxAiohttpTransport, _httpx_error
from tensorlake_sandbox.local import LocalSandbox

from .servers.fault import OK, Close, FaultServer, Slow

KEY = "tl_test_key_0123456789"
PID = 42
FAST_RETRY = RetryPolicy(attempts=6, base_delay=0.01, max_delay=0.05)
TRANSPORTS = ["httpx", "aiohttp"]


def run(client: SandboxClient, coro_fn: Callable[[], object]) -> object:
    """asyncio.run(coro_fn()), closing the client's async connections in that loop."""

    async def main() -> object:
        try:
            return await coro_fn()  # type: ignore[misc]
        finally:
            await client.aclose()

    return asyncio.run(main())


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- construction --------------------------------------------------------------------------


def test_async_client_uses_a_fresh_aiohttp_transport_and_sync_stays_httpx():
    client = sandbox_client(base_url="http://127.0.0.1:9", api_key=KEY, async_transport="aiohttp")

    def transport(client: SandboxClient) -> Callable[[], object]:
        async def get() -> object:
            return client.get_async_httpx_client()._transport

        return get

    first = run(client, transport(client))
    second = run(client, transport(client))
    assert isinstance(first, SandboxAiohttpTransport)
    assert isinstance(second, SandboxAiohttpTransport)
    assert first is not second  # one per event loop
    assert isinstance(client.get_httpx_client()._transport, httpx.HTTPTransport)
    client.close()
    plain = sandbox_client(base_url="http://127.0.0.1:9", api_key=KEY, async_transport="httpx")
    assert isinstance(run(plain, transport(plain)), httpx.AsyncHTTPTransport)


# -- the default ("auto"): aiohttp where installed, unless httpx's own features are asked for ---


def _async_transport_of(client: SandboxClient) -> object:
    async def get() -> object:
        return client.get_async_httpx_client()._transport

    return run(client, get)


def test_default_async_transport_is_aiohttp_when_installed(monkeypatch):
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    client = sandbox_client(base_url="http://127.0.0.1:9", api_key=KEY)
    assert isinstance(_async_transport_of(client), SandboxAiohttpTransport)
    assert isinstance(client.get_httpx_client()._transport, httpx.HTTPTransport)  # sync stays httpx


@pytest.mark.parametrize("key", ["transport", "mounts", "proxy", "http2"])
def test_default_async_transport_is_httpx_when_httpx_args_ask_for_its_features(key):
    value = {
        "transport": httpx.AsyncHTTPTransport(),
        "mounts": {"all://": httpx.AsyncHTTPTransport()},
        "proxy": "http://127.0.0.1:3128",
        "http2": True,
    }[key]
    client = sandbox_client(base_url="http://127.0.0.1:9", api_key=KEY, httpx_args={key: value})
    assert client._async_transport == "httpx"


def test_default_async_transport_is_httpx_when_the_environment_sets_a_proxy(monkeypatch):
    # aiohttp here ignores proxy variables; httpx honours them, so a proxy user keeps httpx.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    assert sandbox_client(base_url="http://127.0.0.1:9", api_key=KEY)._async_transport == "httpx"
    no_env = sandbox_client(base_url="http://127.0.0.1:9", api_key=KEY, httpx_args={"trust_env": False})
    assert no_env._async_transport == "aiohttp"


def test_default_async_transport_is_httpx_without_aiohttp(monkeypatch):
    monkeypatch.setitem(sys.modules, "aiohttp", None)  # not installed, as far as find_spec knows
    client = sandbox_client(base_url="http://127.0.0.1:9", api_key=KEY)
    assert isinstance(_async_transport_of(client), httpx.AsyncHTTPTransport)


def test_httpx_async_pool_keeps_every_connection_alive_under_concurrency():
    # httpx's default pool keeps 20 idle connections: 40 concurrent writes, twice, would open
    # 40 + 20 connections. Kept alive, the second burst reuses the first's 40.
    n = 40
    with FaultServer(plan=[Slow(0.3)] * (2 * n)) as server:
        client = sandbox_client(base_url=server.base_url, api_key=KEY, async_transport="httpx")

        async def bursts() -> None:
            for _ in range(2):
                await asyncio.gather(*(awrite_stdin(client, PID, b"x") for _ in range(n)))

        run(client, bursts)
        assert server.accepted_count == 2 * n
        assert server.connections_accepted == n


@pytest.mark.parametrize("key", ["transport", "mounts", "proxy", "http2"])
def test_aiohttp_refuses_httpx_args_that_bypass_it(key):
    value = {
        "transport": httpx.AsyncHTTPTransport(),
        "mounts": {"all://": httpx.AsyncHTTPTransport()},
        "proxy": "http://127.0.0.1:3128",
        "http2": True,
    }[key]
    with pytest.raises(ValueError, match=key):
        sandbox_client(
            base_url="http://127.0.0.1:9", api_key=KEY, async_transport="aiohttp", httpx_args={key: value}
        )
    # The default transport still takes them.
    sandbox_client(base_url="http://127.0.0.1:9", api_key=KEY, httpx_args={key: value})


def test_unknown_async_transport_is_refused():
    with pytest.raises(ValueError, match="async_transport"):
        sandbox_client(base_url="http://127.0.0.1:9", api_key=KEY, async_transport="requests")  # type: ignore[arg-type]


def test_missing_aiohttp_fails_at_construction_with_the_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "aiohttp", None)  # makes `import aiohttp` fail
    monkeypatch.delitem(sys.modules, "tensorlake_sandbox._aiohttp")
    monkeypatch.delattr(tensorlake_sandbox, "_aiohttp")
    with pytest.raises(ImportError, match=r'pip install "tensorlake-sandbox-client\[aiohttp\]"'):
        sandbox_client(base_url="http://127.0.0.1:9", api_key=KEY, async_transport="aiohttp")
    # The default transport does not need it.
    assert sandbox_client(base_url="http://127.0.0.1:9", api_key=KEY)._async_transport == "httpx"


# -- exact bytes and headers: recording server ----------------------------------------------


BIG = os.urandom(3 * 1024 * 1024 + 7)


@pytest.mark.parametrize(
    "data", [b"print('hello')\n", b"", bytes(range(256)) * 1000, BIG], ids=["text", "empty", "256k", "3m"]
)
def test_generated_call_sends_exact_bytes_and_the_same_headers_as_httpx(recorder, data):
    seen = {}
    for transport in TRANSPORTS:
        recorder.reset()
        client = sandbox_client(base_url=recorder.url, api_key=KEY, async_transport=transport)
        response = run(
            client,
            lambda client=client: sandbox_process_stdin.asyncio_detailed(
                PID, client=client, body=File(payload=io.BytesIO(data))
            ),
        )
        assert response.status_code == 204  # type: ignore[attr-defined]
        (received,) = recorder.requests
        assert received.method == "POST"
        assert received.path == f"/api/v1/processes/{PID}/stdin"
        assert received.headers["authorization"] == f"Bearer {KEY}"
        assert received.headers["content-type"] == "application/octet-stream"
        assert received.headers["content-length"] == str(len(data))
        assert "transfer-encoding" not in received.headers
        assert (received.length, received.sha256) == (len(data), _sha(data))
        seen[transport] = {k: v for k, v in received.headers.items() if k != "host"}
    assert seen["aiohttp"] == seen["httpx"]


def test_open_file_streams_from_its_position_with_content_length(recorder, tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(BIG)
    client = sandbox_client(base_url=recorder.url, api_key=KEY, async_transport="aiohttp")
    with path.open("rb") as f:
        f.seek(1000)

        async def send() -> object:
            return await sandbox_process_stdin.asyncio_detailed(PID, client=client, body=File(payload=f))

        assert run(client, send).status_code == 204  # type: ignore[attr-defined]
    (received,) = recorder.requests
    assert received.headers["content-length"] == str(len(BIG) - 1000)
    assert "transfer-encoding" not in received.headers
    assert (received.length, received.sha256) == (len(BIG) - 1000, _sha(BIG[1000:]))


def test_one_client_across_two_asyncio_runs_with_aclose_leaves_no_warnings(recorder):
    # fast_path=False: these small writes must go through the aiohttp session under test.
    client = sandbox_client(base_url=recorder.url, api_key=KEY, async_transport="aiohttp", fast_path=False)
    sessions = []

    async def write(i: int) -> None:
        await awrite_stdin(client, i, b"x%d" % i)
        transport = client.get_async_httpx_client()._transport
        assert isinstance(transport, SandboxAiohttpTransport)
        sessions.append(transport.session)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(2):
            run(client, lambda i=i: write(i))
        gc.collect()
    assert [str(w.message) for w in caught] == []
    assert [(r.path, r.head) for r in recorder.requests] == [
        (f"/api/v1/processes/{i}/stdin", b"x%d" % i) for i in range(2)
    ]
    assert len(sessions) == 2 and sessions[0] is not sessions[1]
    assert all(isinstance(s, aiohttp.ClientSession) and s.closed for s in sessions)


@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_without_aclose_aiohttp_warns_unclosed_session(recorder):
    """Control for the test above: its warning check does see an unclosed session."""
    client = sandbox_client(base_url=recorder.url, api_key=KEY, async_transport="aiohttp", fast_path=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(awrite_stdin(client, 1, b"x"))
        client = None  # type: ignore[assignment]
        gc.collect()
    assert any("Unclosed client session" in str(w.message) for w in caught)


@pytest.mark.filterwarnings("ignore::ResourceWarning", "ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_second_asyncio_run_without_aclose_still_works(recorder):
    client = sandbox_client(base_url=recorder.url, api_key=KEY, async_transport="aiohttp")
    for i in range(2):
        asyncio.run(awrite_stdin(client, i, b"y"))
    run(client, lambda: awrite_stdin(client, 2, b"y"))
    gc.collect()
    assert [r.path for r in recorder.requests] == [f"/api/v1/processes/{i}/stdin" for i in range(3)]


# -- exact bytes: the local sandbox, real processes ----------------------------------------


def test_local_sandbox_receives_exact_bytes_through_aiohttp(
    local_sandbox: LocalSandbox, local_client: SandboxClient, start_process, wait_finished, tmp_path
):
    from tensorlake_api_client.api.sandbox_processes import sandbox_process_stdout

    procs = [start_process("sha256sum", stdin="pipe") for _ in range(3)]
    datas = [os.urandom(n) for n in (1, 300_000, 1_500_000)]
    path = tmp_path / "body.bin"
    path.write_bytes(datas[2])
    client = sandbox_client(
        base_url=local_sandbox.base_url, api_key=local_sandbox.token, async_transport="aiohttp"
    )

    async def main() -> None:
        # Two through the stdin writer (concurrently), one as a streamed file body.
        await asyncio.gather(
            awrite_stdin(client, procs[0].pid, datas[0]),
            awrite_stdin(client, procs[1].pid, datas[1], chunk_size=100_000),
        )
        with path.open("rb") as f:
            r = await sandbox_process_stdin.asyncio_detailed(
                procs[2].pid, client=client, body=File(payload=f)
            )
        assert r.status_code == 204
        for p in procs:
            await aclose_stdin(client, p.pid)

    run(client, main)
    for p, data in zip(procs, datas, strict=True):
        assert wait_finished(p.pid).exit_code == 0
        out = sandbox_process_stdout.sync(p.pid, client=local_client)
        assert out.lines == [f"{_sha(data)}  -"]


# -- faults: the retry rule sees the right httpx exception ----------------------------------


def fault_run(
    url: str, transport: str, call: Callable[[SandboxClient], object], timeout: float = 10.0
) -> object:
    client = sandbox_client(base_url=url, api_key="k", timeout=timeout, async_transport=transport)  # type: ignore[arg-type]
    return run(client, lambda: call(client))


def sizes(server: FaultServer) -> list[tuple[int, int | None]]:
    return [(r.size, r.status) for r in server.stdin_requests]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_connection_refused_then_up_is_retried_with_exact_bytes(make_server, transport):
    server = make_server(listen_after=0.3)
    data = os.urandom(4000)
    policy = RetryPolicy(attempts=200, base_delay=0.05, max_delay=0.05)
    written = fault_run(
        server.base_url, transport, lambda c: awrite_stdin(c, PID, data, chunk_size=1500, retry=policy)
    )
    assert written == 4000
    assert sizes(server) == [(1500, 204), (1500, 204), (1000, 204)]
    assert bytes(server.accepted) == data


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_connection_refused_is_a_connect_error(transport):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    policy = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.01)
    with pytest.raises(SandboxUnavailableError) as info:
        fault_run(
            f"http://127.0.0.1:{port}", transport, lambda c: awrite_stdin(c, PID, b"hello", retry=policy)
        )
    assert type(info.value.__cause__) is httpx.ConnectError
    assert (info.value.bytes_delivered, info.value.request_bytes) == (0, 5)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_drop_after_body_is_delivery_unknown_and_not_resent(make_server, transport):
    server = make_server(plan=[OK, Close()])
    data = os.urandom(3000)
    with pytest.raises(DeliveryUnknownError) as info:
        fault_run(
            server.base_url,
            transport,
            lambda c: awrite_stdin(c, PID, data, chunk_size=1000, retry=FAST_RETRY),
        )
    cause = info.value.__cause__
    assert isinstance(cause, httpx.TransportError)
    assert not isinstance(cause, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
    assert (info.value.bytes_delivered, info.value.request_bytes) == (1000, 1000)
    assert sizes(server) == [(1000, 204), (1000, None)]
    assert bytes(server.accepted) == data[:1000]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_slow_reply_is_a_read_timeout_with_the_per_call_timeout(make_server, transport):
    server = make_server(plan=[OK, Slow(30)])
    data = os.urandom(2000)
    started = time.monotonic()
    with pytest.raises(DeliveryUnknownError) as info:
        fault_run(
            server.base_url,
            transport,
            # The client waits 60 s; this call only 0.5 s.
            lambda c: awrite_stdin(c, PID, data, chunk_size=1000, retry=FAST_RETRY, timeout=0.5),
            timeout=60,
        )
    assert time.monotonic() - started < 10
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)
    assert (info.value.bytes_delivered, info.value.request_bytes) == (1000, 1000)
    assert sizes(server) == [(1000, 204), (1000, 204)]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_413_halves_with_exact_bytes(make_server, transport):
    server = make_server(max_body=3000)
    data = os.urandom(10_000)
    written = fault_run(server.base_url, transport, lambda c: awrite_stdin(c, PID, data, chunk_size=8192))
    assert written == 10_000
    assert sizes(server) == [
        (8192, 413),
        (4096, 413),
        (2048, 204),
        (2048, 204),
        (2048, 204),
        (2048, 204),
        (1808, 204),
    ]
    assert bytes(server.accepted) == data


@contextlib.contextmanager
def raw_server(handle: Callable[[socket.socket], None]) -> Iterator[str]:
    """A listener on 127.0.0.1 that hands each connection to ``handle`` in a thread."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    conns: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            conns.append(conn)
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        for conn in conns:
            conn.close()
        thread.join(5)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_server_that_stops_reading_is_a_write_timeout(transport):
    """aiohttp has no write timeout of its own: the shim's watchdog must give one."""
    stop = threading.Event()

    def never_read(conn: socket.socket) -> None:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stop.wait(30)

    data = os.urandom(32 * 1024 * 1024)
    started = time.monotonic()
    with raw_server(never_read) as url, pytest.raises(DeliveryUnknownError) as info:
        try:
            fault_run(url, transport, lambda c: awrite_stdin(c, PID, data, chunk_size=len(data), timeout=0.5))
        finally:
            stop.set()
    assert time.monotonic() - started < 15
    assert isinstance(info.value.__cause__, httpx.WriteTimeout)
    assert info.value.bytes_delivered == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_reset_after_body_is_delivery_unknown(transport):
    # The first request is answered 204; the connection of the second is reset (RST) once its
    # whole body arrived. The bodies the server read are recorded, in order.
    bodies: list[bytes] = []

    def reset_after_body(conn: socket.socket) -> None:
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            head, _, buf = buf.partition(b"\r\n\r\n")
            length = int(
                next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))[15:]
            )
            while len(buf) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            bodies.append(buf[:length])
            buf = buf[length:]
            if len(bodies) == 1:
                conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
                continue
            # SO_LINGER 0: close() sends RST instead of FIN.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            conn.close()
            return

    data = os.urandom(5000)
    with raw_server(reset_after_body) as url, pytest.raises(DeliveryUnknownError) as info:
        fault_run(url, transport, lambda c: awrite_stdin(c, PID, data, chunk_size=2000, retry=FAST_RETRY))
    cause = info.value.__cause__
    assert isinstance(cause, httpx.TransportError)
    assert not isinstance(cause, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
    err = info.value
    assert (err.bytes_delivered, err.request_bytes, err.status_code) == (2000, 2000, None)
    # Exactly two requests, never resent: the first accepted, the second's fate unknown.
    assert bodies == [data[:2000], data[2000:4000]]


# -- the mapping itself ---------------------------------------------------------------------

_KEY = type("Key", (), {"ssl": None, "host": "h", "port": 1})()

MAPPING = [
    (aiohttp.ClientConnectorError(_KEY, ConnectionRefusedError(111, "refused")), httpx.ConnectError),
    (aiohttp.ClientConnectorDNSError(_KEY, OSError(-2, "no such host")), httpx.ConnectError),
    (aiohttp.ClientProxyConnectionError(_KEY, ConnectionRefusedError(111, "refused")), httpx.ConnectError),
    (aiohttp.ConnectionTimeoutError("connect"), httpx.ConnectTimeout),
    (aiohttp.SocketTimeoutError("read"), httpx.ReadTimeout),
    (aiohttp.ServerTimeoutError("timeout"), httpx.TimeoutException),
    (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError),
    (aiohttp.ClientOSError(104, "Connection reset by peer"), httpx.ReadError),
    (aiohttp.ClientConnectionResetError("reset"), httpx.ReadError),
    (aiohttp.ClientConnectionError("Failed to send bytes"), httpx.ReadError),
    (aiohttp.ClientPayloadError("truncated"), httpx.ReadError),
    (aiohttp.ClientResponseError(None, (), status=400, message="bad status line"), httpx.RemoteProtocolError),  # type: ignore[arg-type]
    (aiohttp.NonHttpUrlClientError("ftp://x"), httpx.UnsupportedProtocol),
]


@pytest.mark.parametrize(("error", "expected"), MAPPING, ids=[type(e).__name__ for e, _ in MAPPING])
def test_aiohttp_errors_map_to_the_httpx_error_for_the_retry_rule(error, expected):
    mapped = _httpx_error(error)
    assert type(mapped) is expected


def test_non_aiohttp_errors_are_left_alone():
    assert _httpx_error(ValueError("x")) is None
    assert _httpx_error(OSError(5, "EIO")) is None
