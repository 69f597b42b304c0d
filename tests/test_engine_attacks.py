"""The engine under attack (issue 20): servers and proxies on 127.0.0.1 that misbehave on purpose.

Each test names the promise it checks (README, "One engine" and "Errors"): what a failure says
was sent, that a connection out of step is never reused, that timeouts hold, that nothing leaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tensorlake_sandbox import (
    PayloadTooLargeError,
    RetryPolicy,
    SandboxConnectionError,
    SandboxTimeoutError,
    awrite_stdin,
    sandbox_client,
    write_stdin,
)
from tests.closing import close_after_test
from tests.test_engine import out_of_step_then_next

PID = 7
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.02)
Handler = Callable[[socket.socket], None]


class RawServer:
    """A listener on 127.0.0.1 whose every connection is given to ``handler`` in its own thread."""

    def __init__(self, handler: Handler) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connections = 0
        self._stopping = False
        self._handler = handler
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            if self._stopping:
                conn.close()
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            self._handler(conn)

    def stop(self) -> None:
        self._stopping = True  # closing the listener does not wake accept(): a connection does
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        self.listener.close()
        self._accepting.join(5)
        for thread in self._threads:
            thread.join(5)


@pytest.fixture
def raw_server() -> Iterator[Callable[[Handler], RawServer]]:
    servers: list[RawServer] = []

    def make(handler: Handler) -> RawServer:
        servers.append(RawServer(handler))
        return servers[-1]

    yield make
    from tests.closing import close_all

    close_all()
    for server in servers:
        server.stop()


def read_head(conn: socket.socket) -> tuple[bytes, bytes]:
    """The request head (up to its blank line) and whatever of the body came with it."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = conn.recv(65536)
        if not more:
            raise ConnectionError("closed before a head")
        data += more
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def reset(conn: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0): the rest of a body cannot be sent."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


# -- an answer sent before the body was read ------------------------------------------------------

BIG = 16 << 20  # far more than the socket buffers hold: the write fails midway


def early_answer(status: bytes) -> Handler:
    """Answer ``status`` on seeing the head, then close at once with the body unread (an RST)."""

    def handler(conn: socket.socket) -> None:
        read_head(conn)
        conn.sendall(b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        reset(conn)

    return handler


def post_both(url: str, body: bytes) -> list[BaseException | int]:
    """POST ``body`` to a stdin path with a sandbox client's sync, then async httpx client."""
    client = close_after_test(sandbox_client(base_url=url, api_key="k", timeout=10))
    path = f"/api/v1/processes/{PID}/stdin"
    results: list[BaseException | int] = []
    try:
        results.append(client.get_httpx_client().post(path, content=body).status_code)
    except Exception as exc:
        results.append(exc)

    async def main() -> None:
        try:
            results.append((await client.get_async_httpx_client().post(path, content=body)).status_code)
        except Exception as exc:
            results.append(exc)
        finally:
            await client.aclose()

    asyncio.run(main())
    return results


def test_an_error_answered_before_the_body_was_read_is_raised_not_lost_to_the_failed_write(raw_server):
    """A proxy answers 413 on seeing a large Content-Length and resets the connection: the 413
    (nothing was written) is what the call raises, as httpx's own transport did, not a write
    failure that may have delivered the bytes."""
    server = raw_server(early_answer(b"413 Payload Too Large"))
    results = post_both(server.url, os.urandom(BIG))
    assert [type(r) for r in results] == [PayloadTooLargeError] * 2, results


def test_a_success_answered_before_the_body_was_read_is_no_delivery(raw_server):
    """A 204 sent before the body was read, then a reset: the body was not all sent, so the call
    fails saying it may have been sent; the 204 never counts as the body's delivery."""
    server = raw_server(early_answer(b"204 No Content"))
    results = post_both(server.url, os.urandom(BIG))
    assert [type(r) for r in results] == [SandboxConnectionError] * 2, results
    assert [r.may_have_been_sent for r in results] == [True, True]  # type: ignore[union-attr]
    assert [type(r.__cause__) for r in results] == [httpx.WriteError] * 2  # type: ignore[union-attr]


# -- a TLS connection read and written by two threads at once (a sync terminal's websocket) ------

TWO_THREADS = """
import select, socket, ssl, sys, threading
import httpx
from tensorlake_sandbox._sync._transport import Transport
from tensorlake_sandbox._transports._factory import LIMITS

ca, cert, key = sys.argv[1:4]
server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
server_context.load_cert_chain(cert, key)
listener = socket.create_server(("127.0.0.1", 0))
WRITES, SIZE, CONNECTIONS = 30, 64 * 1024, 40  # pastes of 64 KiB
results = []

def piece(i):
    return (b"%015d\\n" % i) * (SIZE // 16)

def serve(raw):
    # One thread drives the server's TLS object (reads, and output all along as a busy terminal
    # sends it): OpenSSL must not be used by two threads at once on this side either.
    with server_context.wrap_socket(raw, server_side=True) as tls:
        head = b""
        while b"\\r\\n\\r\\n" not in head:
            head += tls.recv(4096)
        tls.sendall(b"HTTP/1.1 101 Switching Protocols\\r\\nupgrade: x\\r\\nconnection: upgrade\\r\\n\\r\\n")
        tls.setblocking(False)
        got = b""
        try:
            while len(got) < WRITES * SIZE:
                readable, writable, _ = select.select([tls], [tls], [], 10)
                if not readable and not writable:
                    break
                if readable or tls.pending():
                    try:
                        more = tls.recv(65536)
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        more = None
                    if more == b"":
                        break
                    got += more or b""
                if writable:
                    try:
                        tls.send(b"o" * 256)
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        pass
            results.append(got == b"".join(piece(i) for i in range(WRITES)) or "short")
        except (ssl.SSLError, OSError) as exc:
            results.append(str(exc))

def accept():
    while True:
        raw, _ = listener.accept()
        threading.Thread(target=serve, args=(raw,), daemon=True).start()

threading.Thread(target=accept, daemon=True).start()
url = f"https://127.0.0.1:{listener.getsockname()[1]}/ws"
upgrade = {"connection": "upgrade", "upgrade": "x"}
with httpx.Client(transport=Transport(ssl.create_default_context(cafile=ca), LIMITS), timeout=10) as client:
    for n in range(CONNECTIONS):
        stream = client.get(url, headers=upgrade).extensions["network_stream"]

        def read():  # as httpx-ws's background thread reads
            try:
                while stream.read(65536):
                    pass
            except Exception:
                pass

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            for i in range(WRITES):
                stream.write(piece(i))
        except Exception as exc:
            results.append(repr(exc))
        while len(results) <= n:
            threading.Event().wait(0.01)
        stream.close()
        reader.join(10)
bad = [r for r in results if r is not True]
print("intact", len(results) - len(bad), "of", len(results), bad[:3], flush=True)
"""


def test_a_tls_connection_read_and_written_by_two_threads_at_once_stays_intact(tmp_path):
    """A sync terminal's websocket is read by httpx-ws's thread while another thread writes; over
    TLS both go through one `ssl.SSLObject` and its memory buffers. Every record of 64 KiB pastes
    arrives intact and in order (no "bad record mac", no heap corruption killing the interpreter)."""
    from tests.servers.certs import certificates

    ca, cert, key = certificates(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", TWO_THREADS, str(ca), str(cert), str(key)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert "intact 40 of 40" in proc.stdout, (proc.stdout, proc.stderr[-2000:])


# -- TLS records after a complete answer ----------------------------------------------------------


@pytest.fixture
def tls_server(tmp_path, monkeypatch, raw_server) -> Callable[[Handler], RawServer]:
    """``raw_server`` with TLS (a certificate for 127.0.0.1 from a CA that SSL_CERT_FILE names)."""
    from tests.servers.certs import certificates

    ca, cert, key = certificates(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    def make(handler: Handler) -> RawServer:
        def tls(conn: socket.socket) -> None:
            with context.wrap_socket(conn, server_side=True) as wrapped:
                handler(wrapped)

        server = raw_server(tls)
        server.url = server.url.replace("http://", "https://")
        return server

    return make


def read_request(conn: socket.socket) -> bytes:
    """One whole request (head and Content-Length body); its body."""
    head, body = read_head(conn)
    while len(body) < content_length(head):
        body += conn.recv(65536)
    return body


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_an_answer_smuggled_in_a_tls_record_of_its_own_closes_the_connection(tls_server, mode):
    """The second write's 204 is followed by a second 204 in a TLS record of its own (one TCP
    read brings both): the write is DeliveryUnknownError, and the next write goes on a fresh
    connection, answered by the server, not by the smuggled 204 (README, "One engine")."""
    accepted = bytearray()

    def handler(conn: socket.socket) -> None:
        for n in itertools.count():
            accepted.extend(read_request(conn))
            if n == 0:
                conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
            elif n == 1:  # two writes: two records, sent at once
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
                conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
                conn.sendall(b"HTTP/1.1 204 No Content\r\nx-smuggled: 1\r\n\r\n")
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
            else:
                conn.sendall(b"HTTP/1.1 500 Out Of Step\r\ncontent-length: 0\r\n\r\n")

    server = tls_server(handler)
    client = close_after_test(sandbox_client(base_url=server.url, api_key="k", timeout=10))
    data = os.urandom(3000)

    error, written = out_of_step_then_next(client, data, mode)
    assert (error.bytes_delivered, error.request_bytes) == (1000, 1000)
    assert "out of step" in str(error.__cause__)
    assert written == 4
    assert bytes(accepted) == data[:2000] + b"next"
    assert server.connections == 2


def test_a_tls_close_notify_after_an_answer_is_never_written_to(tls_server):
    """A server ends its answer with a close_notify (no ``Connection: close``), in the same TCP
    segment, and leaves the socket open: the next request goes on a fresh connection instead of
    failing on the closed one (where it may count as sent)."""

    def handler(conn: socket.socket) -> None:
        read_request(conn)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        conn.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
        conn.setblocking(False)
        with contextlib.suppress(ssl.SSLWantReadError):
            conn.unwrap()  # type: ignore[attr-defined]  # the close_notify, corked with the answer
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
        conn.setblocking(True)
        with contextlib.suppress(OSError):
            while conn.recv(65536):  # open until the client closes
                pass

    server = tls_server(handler)
    client = close_after_test(sandbox_client(base_url=server.url, api_key="k", timeout=10))
    assert [write_stdin(client, PID, b"x" * n) for n in (1, 2, 3)] == [1, 2, 3]
    assert server.connections == 3


def test_a_body_shorter_than_its_content_length_is_not_blamed_on_the_server(raw_server):
    """A body that ends before its declared length (a file truncated while it is sent) fails the
    call as the request's fault, saying it may have been sent, never "the server broke" it."""
    server = raw_server(lambda conn: read_head(conn) and conn.recv(65536))
    client = close_after_test(sandbox_client(base_url=server.url, api_key="k", timeout=10))
    with pytest.raises(SandboxConnectionError) as info:
        client.get_httpx_client().post(
            f"/api/v1/processes/{PID}/stdin", content=iter([b"abc"]), headers={"Content-Length": "10"}
        )
    assert info.value.may_have_been_sent
    assert "the request's body broke the HTTP exchange" in str(info.value), str(info.value)


# -- a proxy that trickles its answer -------------------------------------------------------------


def trickle_a_tunnel(conn: socket.socket) -> None:
    """Take a CONNECT, then answer 200 one byte every 0.05 s (a head of 80 bytes: 4 s)."""
    read_head(conn)
    for byte in b"HTTP/1.1 200 Connection established\r\nx-padding: " + b"a" * 40 + b"\r\n\r\n":
        conn.sendall(bytes([byte]))
        threading.Event().wait(0.05)  # the trickle itself, not a synchronisation


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_proxy_that_trickles_its_answer_is_bounded_by_the_connect_timeout(raw_server, monkeypatch, mode):
    proxy = raw_server(trickle_a_tunnel)
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    client = close_after_test(
        sandbox_client(
            base_url="https://sandbox.invalid", api_key="k", timeout=httpx.Timeout(10, connect=0.5)
        )
    )

    async def awrite() -> int:
        try:
            return await awrite_stdin(client, PID, b"x", retry=RetryPolicy(attempts=1))
        finally:
            await client.aclose()

    started = time.monotonic()
    with pytest.raises(SandboxTimeoutError) as info:
        if mode == "sync":
            write_stdin(client, PID, b"x", retry=RetryPolicy(attempts=1))
        else:
            asyncio.run(awrite())
    assert time.monotonic() - started < 2
    assert info.value.may_have_been_sent is False


def test_a_proxy_that_writes_into_the_tunnel_before_tls_is_refused_and_nothing_is_sent(
    raw_server, monkeypatch
):
    """Bytes after the proxy's 200 and before our TLS hello are the proxy's own, not the sandbox's:
    the tunnel is refused with a message that says so (not "refused: 200"), and nothing was sent."""

    def chatty(conn: socket.socket) -> None:
        read_head(conn)
        conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")

    proxy = raw_server(chatty)
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    client = close_after_test(sandbox_client(base_url="https://sandbox.invalid", api_key="k", timeout=5))
    with pytest.raises(SandboxConnectionError) as info:
        write_stdin(client, PID, b"x", retry=RetryPolicy(attempts=1))
    assert info.value.may_have_been_sent is False
    assert "the proxy sent bytes of its own into the tunnel" in str(info.value), str(info.value)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_server_that_stops_reading_the_body_times_the_write_out(raw_server, mode):
    """A body the server stops reading fills the socket buffers; the write timeout ends the call
    (it may have been sent) instead of a send that blocks for ever."""
    stop = threading.Event()

    def deaf(conn: socket.socket) -> None:
        read_head(conn)
        stop.wait(30)  # holds the connection open and reads nothing more

    server = raw_server(deaf)
    client = close_after_test(
        sandbox_client(base_url=server.url, api_key="k", timeout=httpx.Timeout(10, write=0.5))
    )

    big = bytes(64 << 20)  # more than loopback's socket buffers hold: the send itself must wait
    path = f"/api/v1/processes/{PID}/stdin"

    async def apost() -> None:
        try:
            await client.get_async_httpx_client().post(path, content=big)
        finally:
            await client.aclose()

    started = time.monotonic()
    try:
        with pytest.raises(SandboxTimeoutError) as info:
            if mode == "sync":
                client.get_httpx_client().post(path, content=big)
            else:
                asyncio.run(apost())
    finally:
        stop.set()
    assert time.monotonic() - started < 5
    assert info.value.may_have_been_sent
    assert isinstance(info.value.__cause__, httpx.WriteTimeout), repr(info.value.__cause__)


# -- a process with many open files ---------------------------------------------------------------

MANY_FILES = """
import asyncio, os, resource
from tensorlake_sandbox import awrite_stdin, sandbox_client, write_stdin
from tests.servers.fault import FaultServer

soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if hard != resource.RLIM_INFINITY and hard < 2048:
    print("skip: the hard limit on open files is", hard, flush=True)
    raise SystemExit(0)
resource.setrlimit(resource.RLIMIT_NOFILE, (2048, hard))
server = FaultServer().start()
held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]  # sockets from now on: above 1023
client = sandbox_client(base_url=server.base_url, api_key="k")
sizes = [write_stdin(client, 1, b"x") for _ in range(5)]

async def main():
    try:
        return [await awrite_stdin(client, 1, b"y") for _ in range(5)]
    finally:
        await client.aclose()

sizes += asyncio.run(main())
client.close()
print("writes", sum(sizes), "connections", server.connections_accepted, flush=True)
"""


def test_idle_connections_are_reused_in_a_process_with_more_than_1024_open_files():
    """A socket numbered above 1023 (a busy process) cannot go to select(): every idle
    connection was taken for stale and each request opened a new one (a TLS handshake per write)."""
    proc = subprocess.run(
        [sys.executable, "-c", MANY_FILES],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    if proc.stdout.startswith("skip:"):
        pytest.skip(proc.stdout.strip())
    assert "writes 10 connections 2" in proc.stdout, (proc.stdout, proc.stderr[-2000:])


# -- fork --------------------------------------------------------------------------------------------

FORKED = """
import gc, os
from tensorlake_sandbox import sandbox_client, write_stdin
from tests.servers.fault import FaultServer

server = FaultServer().start()
client = sandbox_client(base_url=server.base_url, api_key="k")
assert write_stdin(client, 1, b"a") == 1  # one idle connection, the parent's
pid = os.fork()
if pid == 0:
    written = write_stdin(client, 1, b"b")  # a connection of its own
    client.close()
    gc.collect()
    os._exit(0 if written == 1 else 3)
_, status = os.waitpid(pid, 0)
assert write_stdin(client, 1, b"c") == 1  # the parent's idle connection, still fine
client.close()
print("child", os.waitstatus_to_exitcode(status), "connections", server.connections_accepted,
      "accepted", bytes(server.accepted), flush=True)
"""


def test_a_forked_child_closes_its_copies_of_the_parents_idle_sockets_and_never_uses_them():
    """The child writes on a connection of its own and closes its copies of the parent's idle
    sockets (no ResourceWarning); the parent goes on with its idle connection."""
    proc = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", FORKED],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert "child 0 connections 2 accepted b'abc'" in proc.stdout, (proc.stdout, proc.stderr[-2000:])
    assert "ResourceWarning" not in proc.stderr, proc.stderr[-2000:]


FORKED_WHILE_LOCKED = """
import os, signal, threading, httpx
from tensorlake_sandbox._sync._transport import Transport
from tests.servers.fault import FaultServer

server = FaultServer().start()
transport = Transport(httpx.create_ssl_context(), httpx.Limits())
held, release = threading.Event(), threading.Event()

def hold():  # another thread inside the pool at the moment of the fork
    with transport._lock:
        held.set()
        release.wait()

threading.Thread(target=hold, daemon=True).start()
held.wait()
pid = os.fork()
if pid == 0:
    signal.alarm(10)  # a deadlocked child is killed, and says so by its exit status
    with httpx.Client(transport=transport, timeout=5) as client:
        status = client.post(server.base_url + "/api/v1/processes/1/stdin", content=b"x").status_code
    os._exit(0 if status == 204 else 3)
release.set()
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status), flush=True)
"""


def test_a_child_forked_while_another_thread_held_the_pool_does_not_deadlock():
    """A lock held by a thread that does not exist in the child would never be released: the
    child's transport starts with a fresh one."""
    proc = subprocess.run(
        [sys.executable, "-c", FORKED_WHILE_LOCKED],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert "child 0" in proc.stdout, (proc.stdout, proc.stderr[-2000:])


def test_a_request_body_that_fails_mid_way_fails_the_call_at_once(raw_server):
    """A body whose source fails (an I/O error reading a file) ends the call at once, saying it
    may have been sent; the engine does not wait out the read timeout for an early answer that
    only a server that closed the connection could have sent."""

    def drain(conn: socket.socket) -> None:
        while conn.recv(65536):
            pass

    server = raw_server(drain)
    client = close_after_test(sandbox_client(base_url=server.url, api_key="k", timeout=5))

    def body() -> Iterator[bytes]:
        yield os.urandom(1 << 20)
        raise OSError(5, "Input/output error")

    started = time.monotonic()
    with pytest.raises(SandboxConnectionError) as info:
        client.get_httpx_client().post(
            f"/api/v1/processes/{PID}/stdin", content=body(), headers={"Content-Length": str(2 << 20)}
        )
    assert time.monotonic() - started < 2.5
    assert info.value.may_have_been_sent and "Input/output error" in str(info.value)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_certificate_for_another_host_is_refused_before_anything_is_sent(tls_server, mode):
    """The server's certificate names 127.0.0.1 only, from a trusted CA: reached as localhost,
    the handshake fails, nothing of the request leaves, and the server reads no request."""
    requests: list[bytes] = []
    server = tls_server(lambda conn: requests.append(read_request(conn)))
    url = server.url.replace("127.0.0.1", "localhost")
    client = close_after_test(sandbox_client(base_url=url, api_key="k", timeout=10))

    async def awrite() -> int:
        try:
            return await awrite_stdin(client, PID, b"x", retry=RetryPolicy(attempts=1))
        finally:
            await client.aclose()

    with pytest.raises(SandboxConnectionError) as info:
        if mode == "sync":
            write_stdin(client, PID, b"x", retry=RetryPolicy(attempts=1))
        else:
            asyncio.run(awrite())
    assert info.value.may_have_been_sent is False
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert "CERTIFICATE_VERIFY_FAILED" in str(info.value) and requests == []
