"""A minimal HTTP/1.1 server on loopback that answers 204 to every POST: per-call cost only.

It parses just enough HTTP to read each request's body (``Content-Length`` or chunked),
keeps connections alive, answers ``Expect: 100-continue``, and counts requests and body
bytes. ``GET /__stats`` returns ``{"requests": n, "bytes": n}`` (not counted). It accepts
any ``Host`` (the official SDK sends ``Host: <sandbox-id>.local``) and any path, so the cost
measured is the client's plus a small, fixed server cost.

Run it in its own process (`LoopbackServer`) so that it does not share the client's GIL:
``python -m bench.loopback`` prints ``PORT <n>`` and serves until stdin closes or SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from types import TracebackType

__all__ = ["LoopbackServer", "serve"]

_204 = b"HTTP/1.1 204 No Content\r\n\r\n"
_100 = b"HTTP/1.1 100 Continue\r\n\r\n"


class _Stats:
    requests = 0
    bytes = 0


class _Conn(asyncio.Protocol):
    """One connection: a small state machine over the bytes received."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        # States: "head", "body" (Content-Length left), "chunk-size", "chunk-data", "chunk-end",
        # "trailer".
        self.state = "head"
        self.left = 0
        self.method = b""
        self.path = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while self._step():
            pass

    def _step(self) -> bool:
        buf = self.buf
        if self.state == "head":
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return False
            head = bytes(buf[:end]).split(b"\r\n")
            del buf[: end + 4]
            self.method, self.path, _ = [*head[0].split(b" ", 2), b"", b""][:3]
            length = 0
            chunked = expect = False
            for line in head[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
                elif name == b"expect":
                    expect = b"100-continue" in value.lower()
            if expect and self.transport is not None:
                self.transport.write(_100)
            if chunked:
                self.state = "chunk-size"
            else:
                self.state, self.left = "body", length
            return True
        if self.state == "body":
            n = min(self.left, len(buf))
            _Stats.bytes += n
            del buf[:n]
            self.left -= n
            if self.left:
                return False
            self._respond()
            return True
        if self.state == "chunk-size":
            end = buf.find(b"\r\n")
            if end < 0:
                return False
            size = int(bytes(buf[:end]).split(b";")[0], 16)
            del buf[: end + 2]
            self.state, self.left = ("chunk-data", size) if size else ("trailer", 0)
            return True
        if self.state == "chunk-data":
            n = min(self.left, len(buf))
            _Stats.bytes += n
            del buf[:n]
            self.left -= n
            if self.left:
                return False
            self.state = "chunk-end"
            return True
        if self.state == "chunk-end":
            if len(buf) < 2:
                return False
            del buf[:2]
            self.state = "chunk-size"
            return True
        # trailer: lines until an empty one
        end = buf.find(b"\r\n")
        if end < 0:
            return False
        line_empty = end == 0
        del buf[: end + 2]
        if line_empty:
            self._respond()
        return True

    def _respond(self) -> None:
        self.state = "head"
        assert self.transport is not None
        if self.method == b"GET" and self.path == b"/__stats":
            body = json.dumps({"requests": _Stats.requests, "bytes": _Stats.bytes}).encode()
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
                + body
            )
            return
        _Stats.requests += 1
        self.transport.write(_204)


async def serve(port: int = 0) -> None:
    """Serve on 127.0.0.1:``port`` until cancelled; prints ``PORT <n>`` once listening."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Conn, "127.0.0.1", port, backlog=512)
    sock = server.sockets[0]
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    # Stop when the parent goes away (its end of our stdin closes).
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not os.read(sys.stdin.fileno(), 1) else None)
    async with server:
        await stop.wait()


class LoopbackServer:
    """The server in a child process: ``with LoopbackServer() as srv: srv.base_url``."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LoopbackServer:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "bench.loopback"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        )
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line.startswith("PORT "):
            self._proc.kill()
            raise RuntimeError(f"loopback server did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def stats(self) -> dict[str, int]:
        """Requests and body bytes the server has received so far."""
        import urllib.request

        with urllib.request.urlopen(f"{self.base_url}/__stats", timeout=10) as r:
            data: dict[str, int] = json.loads(r.read())
            return data

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            for f in (self._proc.stdin, self._proc.stdout):
                if f is not None:
                    f.close()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
