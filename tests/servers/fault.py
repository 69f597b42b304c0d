"""A real HTTP/1.1 server on 127.0.0.1 that misbehaves on purpose, for the stdin fault tests.

Raw sockets plus h11, one thread per connection, so that it can do what a well-behaved
framework never does: drop a connection after reading a body, answer long after the
client gave up, start listening only after a delay. It records every request it received
and exactly which stdin bytes it accepted (answered 2xx), in order.

Each stdin write takes the next action from a FIFO plan (`plan`), or `OK` when the plan
is empty; bodies larger than ``max_body`` get a 413 (read in full first) without using
the plan. Closes (``/stdin/close``) follow ``close_plan`` the same way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field

import h11


@dataclass(frozen=True)
class Reply:
    """Answer with this status (and a JSON error body unless ``code`` and ``error`` are None)."""

    status: int
    code: str | None = None
    error: str | None = "injected fault"


@dataclass(frozen=True)
class Close:
    """Read the whole body, then close the connection without answering."""


@dataclass(frozen=True)
class Slow:
    """Read the whole body, accept it, and answer 204 only after ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class BodyOn204:
    """Accept the body, then answer a 204 that carries a body (a framing violation).

    The body is itself a complete 204 response, so a client that trusts the 204 reads it as
    the answer to its next request: the connection is out of step from then on. With
    ``body_after`` the body follows the head that many seconds later (another packet). With
    ``chunked`` the body is announced by ``Transfer-Encoding: chunked`` instead of a length.
    """

    body_after: float = 0.0
    chunked: bool = False


OK = Reply(204, None, None)


@dataclass(frozen=True)
class Smuggled:
    """Accept the body, then answer a 204 followed at once by a second, unasked-for 204.

    Nothing in the first answer's head announces the bytes after it: only a client that
    notices bytes left on the connection after a complete response can tell. Trusted, the
    second answer is taken as the reply to the next request on that connection.
    """


Action = Reply | Close | Slow | BodyOn204 | Smuggled

_FAKE_204 = b"HTTP/1.1 204 No Content\r\nserver: fault\r\n\r\n"
_BODY_ON_204 = b"HTTP/1.1 204 No Content\r\nserver: fault\r\ncontent-length: %d\r\n\r\n%s" % (
    len(_FAKE_204),
    _FAKE_204,
)
_SMUGGLED = _FAKE_204 + _FAKE_204
_CHUNKED_BODY_ON_204 = (
    b"HTTP/1.1 204 No Content\r\nserver: fault\r\ntransfer-encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
    % (
        len(_FAKE_204),
        _FAKE_204,
    )
)


@dataclass
class Seen:
    """One request as it arrived."""

    method: str
    path: str
    size: int
    status: int | None  # what the server answered; None when it dropped the connection


@dataclass
class FaultServer:
    """Start with `start()` (or as a context manager); ``base_url`` once started."""

    max_body: int | None = None
    keep_bodies: bool = True
    listen_after: float = 0.0
    plan: list[Action] = field(default_factory=list)
    close_plan: list[Action] = field(default_factory=list)
    requests: list[Seen] = field(default_factory=list)
    accepted: bytearray = field(default_factory=bytearray)
    accepted_count: int = 0
    accepted_sha256: hashlib._Hash = field(default_factory=hashlib.sha256)
    closes: int = 0
    connections_accepted: int = 0
    ssl_context: ssl.SSLContext | None = None  # serve HTTPS (the handshake runs per connection)
    bodies_after_204: int = 0  # BodyOn204 bodies sent whole

    def __post_init__(self) -> None:
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._conns: set[socket.socket] = set()
        self._listener: socket.socket | None = None
        self.port = 0

    # -- control --------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"

    @property
    def stdin_requests(self) -> list[Seen]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/stdin")]

    def start(self) -> FaultServer:
        # With listen_after, the port is bound now (nobody else can take it, even from another
        # test worker) and listened on only after the delay: until then a connection is refused.
        self._bind()
        if self.listen_after <= 0:
            self._listener.listen(64)  # type: ignore[union-attr]
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            # shutdown() wakes a thread blocked in accept(); close() alone does not.
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)
            self._listener.close()
        with self._lock:
            for conn in list(self._conns):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
        for t in self._threads:
            t.join(timeout=5)

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_accepted(self, n: int, timeout: float = 10.0) -> bool:
        """Wait until at least ``n`` stdin bytes were accepted; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self.accepted_count >= n, timeout)

    def wait_bodies_after_204(self, n: int, timeout: float = 10.0) -> bool:
        """Wait until ``n`` BodyOn204 bodies were sent whole; False on timeout."""
        with self._lock:
            return self._lock.wait_for(lambda: self.bodies_after_204 >= n, timeout)

    # -- serving --------------------------------------------------------------------------

    def _spawn(self, target: object, *args: object) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(t)
        t.start()

    def _bind(self) -> None:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        if self.ssl_context is not None:
            s = self.ssl_context.wrap_socket(s, server_side=True, do_handshake_on_connect=False)
        self._listener = s

    def _accept_loop(self) -> None:
        assert self._listener is not None
        if self.listen_after > 0:
            if self._stopping.wait(self.listen_after):
                return
            self._listener.listen(64)
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
                self.connections_accepted += 1
            self._spawn(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        h = h11.Connection(h11.SERVER)
        try:
            while not self._stopping.is_set():
                request = self._next(conn, h)
                if not isinstance(request, h11.Request):
                    return
                keep = self._handle(conn, h, request)
                if keep is None:  # answered by hand: this side starts a fresh cycle
                    h = h11.Connection(h11.SERVER)
                    continue
                if not keep:
                    return
                if h.our_state is h11.MUST_CLOSE or h.their_state is h11.MUST_CLOSE:
                    return
                h.start_next_cycle()
        except (OSError, h11.ProtocolError):
            return
        finally:
            with self._lock:
                self._conns.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def _next(self, conn: socket.socket, h: h11.Connection) -> object:
        while True:
            event = h.next_event()
            if event is h11.NEED_DATA:
                h.receive_data(conn.recv(256 * 1024))
                continue
            return event

    def _handle(self, conn: socket.socket, h: h11.Connection, request: h11.Request) -> bool | None:
        """Read the body, act; False when the connection must be dropped, None after a raw answer."""
        path = request.target.decode()
        method = request.method.decode()
        body = bytearray()
        size = 0
        while True:
            event = self._next(conn, h)
            if isinstance(event, h11.Data):
                size += len(event.data)
                if self.keep_bodies:
                    body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            else:
                return False
        action: Action = OK
        is_stdin = path.endswith("/stdin")
        is_close = path.endswith("/stdin/close")
        if is_close:
            with self._lock:
                if self.close_plan:
                    action = self.close_plan.pop(0)
                if isinstance(action, Reply) and 200 <= action.status < 300:
                    self.closes += 1
        elif not is_stdin:
            pass
        elif self.max_body is not None and size > self.max_body:
            action = Reply(413, "PAYLOAD_TOO_LARGE", f"the body is larger than {self.max_body} bytes")
        else:
            with self._lock:
                if self.plan:
                    action = self.plan.pop(0)
        if isinstance(action, Close):
            self._record(method, path, size, None)
            return False
        if isinstance(action, BodyOn204):
            self._record(method, path, size, 204)
            self._accept(body, size)
            answer = _CHUNKED_BODY_ON_204 if action.chunked else _BODY_ON_204
            head, _, rest = answer.partition(b"\r\n\r\n")
            conn.sendall(head + b"\r\n\r\n")
            self._stopping.wait(action.body_after)
            conn.sendall(rest)
            with self._lock:
                self.bodies_after_204 += 1
                self._lock.notify_all()
            return None
        if isinstance(action, Smuggled):
            self._record(method, path, size, 204)
            self._accept(body, size)
            conn.sendall(_SMUGGLED)
            return None
        if isinstance(action, Slow):
            self._record(method, path, size, 204)
            self._accept(body, size)
            self._stopping.wait(action.seconds)
            action = OK
        else:
            self._record(method, path, size, action.status)
            if is_stdin and 200 <= action.status < 300:
                self._accept(body, size)
        self._respond(conn, h, action)
        return True

    def _record(self, method: str, path: str, size: int, status: int | None) -> None:
        with self._lock:
            self.requests.append(Seen(method, path, size, status))

    def _accept(self, body: bytearray, size: int) -> None:
        with self._lock:
            if self.keep_bodies:
                self.accepted += body
                self.accepted_sha256.update(body)
            self.accepted_count += size
            self._lock.notify_all()

    def _respond(self, conn: socket.socket, h: h11.Connection, reply: Reply) -> None:
        payload = b""
        headers = [("server", "fault")]
        if reply.code is not None or reply.error is not None:
            doc = {"error": reply.error}
            if reply.code is not None:
                doc["code"] = reply.code
            payload = json.dumps(doc).encode()
            headers.append(("content-type", "application/json"))
        if reply.status != 204:
            headers.append(("content-length", str(len(payload))))
        data = h.send(h11.Response(status_code=reply.status, headers=headers))
        if payload:
            data = (data or b"") + (h.send(h11.Data(data=payload)) or b"")
        data = (data or b"") + (h.send(h11.EndOfMessage()) or b"")
        conn.sendall(data)


def wait_until(predicate: object, timeout: float = 10.0) -> bool:
    """Poll ``predicate()`` until true; False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.005)
    return False
