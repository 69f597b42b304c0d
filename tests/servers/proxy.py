"""A real HTTP CONNECT proxy on 127.0.0.1, for the tests of a sandbox reached through a proxy.

It answers ``CONNECT host:port`` the way a corporate proxy does: it resolves ``host`` itself
(from ``names``, nothing else: the network rule is loopback only, so any other target gets a
403 and no DNS query is ever made), connects onward, answers ``200 Connection established``
and relays bytes both ways until either side closes. With TLS inside the tunnel, all it sees
after the CONNECT head is ciphertext.

What it saw is recorded per connection (`Tunnel`): the request line, the headers, and every
byte it relayed in each direction, so a test can assert what a proxy could read. ``auth``
(``"user:pass"``) requires ``Proxy-Authorization: Basic ...`` and answers 407 without it;
``refuse`` (a status, e.g. 502) answers every CONNECT with that status and an HTML page, as
real proxies do, and connects nowhere; ``refuse="close"`` closes the connection without an
answer, ``refuse="silence"`` never answers. ``established`` is the answer that opens a tunnel
(``HTTP/1.0``, or with headers, as some proxies send it); ``trickle=True`` sends it one byte at
a time. Anything but CONNECT (a plain forward-proxy request) is recorded and answered 405.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["ConnectProxy", "Tunnel"]

MAX_HEAD = 64 * 1024
ESTABLISHED = b"HTTP/1.1 200 Connection established\r\n\r\n"
REASONS = {
    403: "Forbidden",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    502: "Bad Gateway",
}


@dataclass
class Tunnel:
    """One client connection to the proxy: what it asked for and what went through it."""

    request_line: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    status: int = 0  # what the proxy answered (200: a tunnel was opened)
    head: bytes = b""  # the request head as received, byte for byte
    upstream: bytearray = field(default_factory=bytearray)  # relayed client -> sandbox
    downstream: bytearray = field(default_factory=bytearray)  # relayed sandbox -> client

    def header(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def seen(self) -> bytes:
        """Every byte the proxy could read on this connection, both directions."""
        return self.head + bytes(self.upstream) + bytes(self.downstream)


class ConnectProxy:
    """``with ConnectProxy(names={"sandbox.test": "127.0.0.1"}) as proxy: proxy.url``."""

    def __init__(
        self,
        *,
        names: dict[str, str] | None = None,
        auth: str | None = None,
        refuse: int | Literal["close", "silence"] | None = None,
        established: bytes = ESTABLISHED,
        trickle: bool = False,
    ) -> None:
        self.names = {k.lower(): v for k, v in (names or {}).items()}
        for address in self.names.values():
            if address != "127.0.0.1":
                raise ValueError("the proxy connects to 127.0.0.1 only")
        self.expected_auth = None if auth is None else "Basic " + base64.b64encode(auth.encode()).decode()
        self.refuse = refuse
        self.established = established
        self.trickle = trickle
        self.tunnels: list[Tunnel] = []
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ConnectProxy:
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        for t in list(self._threads):
            t.join(5)
        for s in socks:
            s.close()

    def __enter__(self) -> ConnectProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def connects(self) -> list[str]:
        """The request lines received, in order."""
        return [t.request_line for t in self.tunnels]

    def _spawn(self, target: object, *args: object) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads.append(thread)
        thread.start()
        return thread

    def _track(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._socks.add(sock)
        return sock

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self._spawn(self._serve, self._track(conn))

    def _serve(self, conn: socket.socket) -> None:
        tunnel = Tunnel()
        with self._lock:
            self.tunnels.append(tunnel)
        buf = b""
        try:
            while b"\r\n\r\n" not in buf and len(buf) < MAX_HEAD:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            head, _, rest = buf.partition(b"\r\n\r\n")
            tunnel.head = head + b"\r\n\r\n"
            lines = head.decode("latin-1").split("\r\n")
            tunnel.request_line = lines[0]
            for line in lines[1:]:
                name, _, value = line.partition(":")
                tunnel.headers.append((name.strip(), value.strip()))
            upstream = self._open(tunnel, conn)
            if upstream is None:
                return
            if rest:
                tunnel.upstream += rest
                upstream.sendall(rest)
            back = self._spawn(self._relay, upstream, conn, tunnel.downstream)
            self._relay(conn, upstream, tunnel.upstream)
            back.join()  # until the sandbox closes its side too (or `stop` shuts both down)
            upstream.close()
        except OSError:
            pass
        finally:
            conn.close()

    def _answer(self, tunnel: Tunnel, conn: socket.socket, status: int, extra: str = "") -> None:
        tunnel.status = status
        reason = REASONS.get(status, "Refused")
        page = f"<html><body><h1>{status} {reason}</h1>The proxy did not open the tunnel.</body></html>\n"
        conn.sendall(
            f"HTTP/1.1 {status} {reason}\r\n{extra}Content-Type: text/html\r\n"
            f"Content-Length: {len(page)}\r\nConnection: close\r\n\r\n{page}".encode()
        )

    def _open(self, tunnel: Tunnel, conn: socket.socket) -> socket.socket | None:
        """The onward connection for a CONNECT, or None once the refusal is answered."""
        method, _, rest = tunnel.request_line.partition(" ")
        target = rest.partition(" ")[0]
        if method != "CONNECT":
            self._answer(tunnel, conn, 405)
            return None
        if self.expected_auth is not None and tunnel.header("Proxy-Authorization") != [self.expected_auth]:
            self._answer(tunnel, conn, 407, 'Proxy-Authenticate: Basic realm="test"\r\n')
            return None
        if self.refuse == "silence":
            while conn.recv(65536):  # until the client gives up (or `stop`)
                pass
            return None
        if self.refuse == "close":
            return None
        if self.refuse is not None:
            self._answer(tunnel, conn, self.refuse)
            return None
        host, _, port = target.rpartition(":")
        address = self.names.get(host.lower())
        if address != "127.0.0.1" or not port.isdigit():  # loopback only, whatever `names` became
            self._answer(tunnel, conn, 403)
            return None
        try:
            upstream = self._track(socket.create_connection((address, int(port)), timeout=5))
        except OSError:
            self._answer(tunnel, conn, 502)
            return None
        upstream.settimeout(None)
        tunnel.status = 200
        if self.trickle:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for i in range(len(self.established)):
                conn.sendall(self.established[i : i + 1])
        else:
            conn.sendall(self.established)
        return upstream

    @staticmethod
    def _relay(src: socket.socket, dst: socket.socket, record: bytearray) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                record += data
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
