"""A TCP proxy on 127.0.0.1 in front of a real server that cuts Server-Sent Event streams mid-way.

Every request gets its own upstream connection (the proxy rewrites ``Connection: close``
into the request head, so nothing is reused). For requests whose path contains
``/follow`` (or ``/processes/run``), the n-th such response that succeeds (200) is cut after ``cuts[n]``
complete events plus a few bytes of the next one (events are counted by their
``data:`` lines): the sockets are shut down without the
final chunk, exactly what a proxy or network failure does. Once ``cuts`` is used up,
streams pass through whole. ``cut_all=True`` cuts every stream after ``cuts[0]`` events.
``keep_upstream=True`` cuts only the client's side: the server sees nothing wrong and its
stream goes on (drained and dropped) until the server ends it, as behind a proxy whose
client-side connection failed; so only the client can stop what the stream was for.
``hide_run=True`` makes the server look like one without ``POST /processes/run``: that request
goes to a path the server does not serve, and its 404 comes back.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field


@dataclass
class DroppingProxy:
    upstream_port: int
    cuts: list[int] = field(default_factory=list)
    cut_all: bool = False
    hide_run: bool = False
    keep_upstream: bool = False
    streams_seen: int = 0
    streams_cut: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._socks: set[socket.socket] = set()
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> DroppingProxy:
        threading.Thread(target=self._accept_loop, daemon=True).start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for s in list(self._socks):
                self._kill(s)

    def __enter__(self) -> DroppingProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @staticmethod
    def _kill(s: socket.socket) -> None:
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            s.close()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _cut_for_this_stream(self) -> int | None:
        with self._lock:
            n = self.streams_seen
            self.streams_seen += 1
            if self.cut_all and self.cuts:
                return self.cuts[0]
            return self.cuts[n] if n < len(self.cuts) else None

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        with self._lock:
            self._socks.update((client, upstream))
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                data = client.recv(65536)
                if not data:
                    return
                head += data
            head_part, _, rest = head.partition(b"\r\n\r\n")
            lines = [ln for ln in head_part.split(b"\r\n") if not ln.lower().startswith(b"connection:")]
            target = lines[0].split(b" ")[1].decode()
            if self.hide_run and target.endswith("/processes/run"):
                lines[0] = lines[0].replace(target.encode(), b"/api/v1/no-run-endpoint-here", 1)
            upstream.sendall(b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n" + rest)
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            streaming = "/follow" in target or target.endswith("/processes/run")
            self._pipe(upstream, client, streaming)
        except OSError:
            pass
        finally:
            self._kill(client)
            self._kill(upstream)
            with self._lock:
                self._socks.difference_update((client, upstream))

    def _pipe(self, src: socket.socket, dst: socket.socket, streaming: bool = False) -> None:
        seen = b""
        events = 0
        cut: int | None = None
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    # With keep_upstream, the client going away is not passed on (no half-close).
                    if not self.keep_upstream:
                        with contextlib.suppress(OSError):
                            dst.shutdown(socket.SHUT_WR)
                    return
                if streaming and not seen:
                    # Only a successful event stream counts (a 404 for a missing /run does not).
                    cut = self._cut_for_this_stream() if data.startswith(b"HTTP/1.1 200") else None
                    streaming = False
                if cut is not None:
                    seen += data
                    start = len(seen) - len(data)
                    # Each event has one data line: the (cut+1)-th "data:" starts the event to cut
                    # into, so send up to 3 bytes past it ("dat") and drop the connection.
                    pos = seen.find(b"data:", max(0, start - 4))
                    while pos >= 0:
                        events += 1
                        if events == cut + 1:
                            dst.sendall(seen[start : pos + 3])
                            with self._lock:
                                self.streams_cut += 1
                            self._kill(dst)
                            while self.keep_upstream and src.recv(65536):
                                pass
                            self._kill(src)
                            return
                        pos = seen.find(b"data:", pos + 5)
                dst.sendall(data)
        except OSError:
            return
