"""The one engine (issue 20): what every connection kind and both transports promise.

* a loopback sandbox is never reached through an environment proxy, on every connection
  kind the package opens: REST (sync, async), SSE follows (`run`, `start`), the terminal's
  websocket (sync, async);
* a connection out of step (a second, smuggled response after a 204) is closed on both
  transports, the write is a `DeliveryUnknownError`, and every byte count stays exact;
* the options of the removed stacks are refused with a message saying so;
* failures say exactly whether the request may have been sent, phase by phase.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tensorlake_sandbox import (
    DeliveryUnknownError,
    RetryPolicy,
    SandboxClient,
    SandboxConnectionError,
    SandboxTimeoutError,
    arun,
    awrite_stdin,
    run,
    sandbox_client,
    start,
    write_stdin,
)
from tensorlake_sandbox._async._terminal import aopen_terminal
from tensorlake_sandbox._async._transport import AsyncTransport
from tensorlake_sandbox._sync._terminal import open_terminal
from tensorlake_sandbox._sync._transport import Transport
from tests.closing import close_after_test
from tests.servers.certs import certificates
from tests.servers.fault import OK, Slow, Smuggled

PID = 7
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02)
PROXY_VARS = ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "HTTPS_PROXY", "https_proxy")


@pytest.fixture
def proxied_env(monkeypatch, recorder):
    """Every proxy variable points at a real server that records whatever reaches it."""
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in PROXY_VARS:
        monkeypatch.setenv(name, recorder.url)
    return recorder


def test_no_connection_kind_sends_a_loopback_sandbox_to_the_proxy(local_sandbox, proxied_env):
    client = sandbox_client(base_url=local_sandbox.base_url, api_key=local_sandbox.token)
    close_after_test(client)
    # SSE: /processes/run, and a follow stream of a started process
    assert run(client, ["echo", "rest and sse"]).stdout == "rest and sse\n"
    proc = start(client, ["sh", "-c", "echo followed"], stdin=False)
    assert list(proc.stdout) == ["followed\n"]
    assert proc.wait(10) == 0
    # the websocket
    with open_terminal(client, "sh", ["-c", "exit 3"]) as term:
        b"".join(term)
        assert term.returncode == 3

    async def main() -> None:
        try:
            assert (await arun(client, ["echo", "async"])).stdout == "async\n"
            async with await aopen_terminal(client, "sh", ["-c", "exit 4"]) as aterm:
                async for _ in aterm:
                    pass
                assert aterm.returncode == 4
        finally:
            await client.aclose()

    asyncio.run(main())
    assert proxied_env.requests == []


def test_a_loopback_sandbox_ignores_a_proxy_variable_the_engine_could_not_use(local_sandbox, monkeypatch):
    """A loopback sandbox never goes through a proxy, so an environment proxy the engine refuses
    (socks5://) must not stop the client from reaching it, sync or async."""
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in PROXY_VARS:
        monkeypatch.setenv(name, "socks5://127.0.0.1:1080")
    client = close_after_test(sandbox_client(base_url=local_sandbox.base_url, api_key=local_sandbox.token))
    assert run(client, ["echo", "sync"]).stdout == "sync\n"

    async def main() -> str:
        try:
            return (await arun(client, ["echo", "async"])).stdout
        finally:
            await client.aclose()

    assert asyncio.run(main()) == "async\n"


def out_of_step_then_next(client: SandboxClient, data: bytes, mode: str) -> tuple[DeliveryUnknownError, int]:
    """Write ``data`` in 1000-byte requests (sync or async) where the second meets a connection out
    of step: the DeliveryUnknownError, then what a next write of b"next" delivered."""

    async def awrites() -> tuple[DeliveryUnknownError, int]:
        try:
            with pytest.raises(DeliveryUnknownError) as info:
                await awrite_stdin(client, PID, data, chunk_size=1000, retry=FAST)
            return info.value, await awrite_stdin(client, PID, b"next")
        finally:
            await client.aclose()

    if mode == "sync":
        with pytest.raises(DeliveryUnknownError) as info:
            write_stdin(client, PID, data, chunk_size=1000, retry=FAST)
        return info.value, write_stdin(client, PID, b"next")
    return asyncio.run(awrites())


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_smuggled_response_closes_the_connection_and_the_write_is_delivery_unknown(make_server, mode):
    server = make_server(plan=[OK, Smuggled()])
    client = sandbox_client(base_url=server.base_url, api_key="k", timeout=10)
    close_after_test(client)
    data = os.urandom(3000)

    error, written = out_of_step_then_next(client, data, mode)
    assert (error.bytes_delivered, error.request_bytes) == (1000, 1000)
    cause = error.__cause__
    assert isinstance(cause, SandboxConnectionError) and cause.may_have_been_sent
    assert "out of step" in str(cause)
    # The next write went on a fresh connection, and was answered by the server itself.
    assert written == 4
    assert bytes(server.accepted) == data[:2000] + b"next"
    assert [r.size for r in server.stdin_requests] == [1000, 1000, 4]
    assert server.connections_accepted == 2


@pytest.mark.parametrize("option", ["fast_path", "async_transport"])
def test_the_removed_options_say_they_were_removed(option):
    with pytest.raises(TypeError, match=f"{option}= was removed"):
        sandbox_client(base_url="http://127.0.0.1:1", api_key="k", **{option: True})
    with pytest.raises(TypeError, match="unexpected keyword argument 'fastpath'"):
        sandbox_client(base_url="http://127.0.0.1:1", api_key="k", fastpath=True)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _both(url: str, timeout: float = 10.0, body: bytes = b"x") -> list[BaseException]:
    """What one POST of ``body`` to ``url`` raises on the sync and on the async transport."""
    limits = httpx.Limits()
    errors: list[BaseException] = []
    with httpx.Client(transport=Transport(httpx.create_ssl_context(), limits), timeout=timeout) as c:
        try:
            c.post(url, content=body)
        except Exception as exc:
            errors.append(exc)

    async def main() -> None:
        async with httpx.AsyncClient(
            transport=AsyncTransport(httpx.create_ssl_context(), limits), timeout=timeout
        ) as c:
            try:
                await c.post(url, content=body)
            except Exception as exc:
                errors.append(exc)

    asyncio.run(main())
    return errors


def test_each_phase_of_a_failure_is_its_own_error_on_both_transports(make_server):
    refused = _both(f"http://127.0.0.1:{_closed_port()}/api/v1/processes/1/stdin")
    assert [(type(e), type(e.__cause__)) for e in refused] == [
        (SandboxConnectionError, httpx.ConnectError)
    ] * 2
    assert [e.may_have_been_sent for e in refused] == [False, False]  # type: ignore[attr-defined]
    server = make_server(plan=[Slow(5), Slow(5)])
    slow = _both(f"{server.base_url}/api/v1/processes/1/stdin", timeout=0.3)
    assert [(type(e), type(e.__cause__)) for e in slow] == [(SandboxTimeoutError, httpx.ReadTimeout)] * 2
    assert [e.may_have_been_sent for e in slow] == [True, True]  # type: ignore[attr-defined]


def test_a_client_refused_a_connection_says_nothing_was_sent_and_a_timeout_that_it_may_have():
    client = sandbox_client(base_url=f"http://127.0.0.1:{_closed_port()}", api_key="k")
    close_after_test(client)
    with pytest.raises(SandboxConnectionError) as info:
        client.get_httpx_client().get("/api/v1/processes")
    assert info.value.may_have_been_sent is False and not isinstance(info.value, SandboxTimeoutError)


def test_a_connection_reset_while_the_body_is_sent_may_have_been_sent():
    """A server that takes the head and a little of the body, then resets the connection."""
    import struct
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        for _ in range(2):  # the sync client, then the async one
            conn, _ = listener.accept()
            conn.recv(4096)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()  # RST: the rest of the body cannot be sent

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        errors = _both(f"http://127.0.0.1:{port}/api/v1/processes/1/stdin", body=os.urandom(16 << 20))
    finally:
        server.join(10)
        listener.close()
    assert [(type(e), type(e.__cause__)) for e in errors] == [(SandboxConnectionError, httpx.WriteError)] * 2
    assert [e.may_have_been_sent for e in errors] == [True, True]  # type: ignore[attr-defined]


def test_one_trust_store_whatever_the_size_of_the_request(tmp_path, monkeypatch, make_server):
    """A CA named by SSL_CERT_FILE is trusted for a 16 B write and a 3 MiB one, sync and async;
    without it, neither is sent."""
    ca, cert, key = certificates(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = make_server(ssl_context=context)
    sizes = (16, 100_000, 3 << 20)

    def writes() -> list[object]:
        client = sandbox_client(base_url=server.base_url, api_key="k", timeout=10)
        close_after_test(client)
        results: list[object] = []
        for size in sizes:
            try:
                results.append(write_stdin(client, PID, os.urandom(size), retry=FAST))
            except SandboxConnectionError as exc:
                results.append(exc.may_have_been_sent)

        async def main() -> None:
            try:
                for size in sizes:
                    try:
                        results.append(await awrite_stdin(client, PID, os.urandom(size), retry=FAST))
                    except SandboxConnectionError as exc:
                        results.append(exc.may_have_been_sent)
            finally:
                await client.aclose()

        asyncio.run(main())
        return results

    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    assert writes() == [*sizes, *sizes]
    monkeypatch.delenv("SSL_CERT_FILE")  # certifi, which does not know this CA: nothing is sent
    assert writes() == [False] * 6
    assert server.accepted_count == 2 * sum(sizes)


LOOPS = """
import asyncio, gc, os
from tensorlake_sandbox import awrite_stdin, sandbox_client
from tests.servers.fault import FaultServer

server = FaultServer().start()
client = sandbox_client(base_url=server.base_url, api_key="k")
for _ in range(3):  # never closed: each new event loop gets a new async client
    assert asyncio.run(awrite_stdin(client, 1, b"x")) == 1
gc.collect()
print("accepted", server.accepted_count, flush=True)
os._exit(0)
"""


def test_a_client_used_under_several_event_loops_leaves_no_socket_unclosed():
    proc = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", LOOPS],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert "accepted 3" in proc.stdout, proc.stderr
    assert "ResourceWarning" not in proc.stderr, proc.stderr
