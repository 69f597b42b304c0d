"""Interactive terminals in a sandbox: a PTY session over REST plus its binary websocket.

Written once, async, here (`AsyncTerminal`); `scripts/unasync.py` generates
``_sync/_terminal.py`` (`Terminal`) from it. Where a task and a thread really differ (the ``on_output`` pump,
waiting for a frame, closing httpx-ws's session) the named helpers of `_backend` do it.

>>> with Terminal.open(client, "sh") as term:  # doctest: +SKIP
...     term.write("echo $((6*7)); exit 5\\n")
...     output = b"".join(term)  # bytes as they arrive, until the program exits
...     term.returncode
5

Output is bytes exactly as the terminal produced them (never split into lines; a UTF-8
character may be split across chunks: ``iter_text`` decodes incrementally).
``detach`` leaves the program running; ``attach`` reconnects with the
session's ID and token, and the server replays its history (the last 1 MiB of output).

The websocket is `httpx-ws` on an httpx client made by the package's one client factory
(`_transports._factory.make_client`) from ``client``'s settings, so everything that applies to
the other calls (no proxy for a loopback URL, trust, timeouts, ``httpx_args``) applies here.
The session's token goes in the ``X-PTY-Token`` header only, never in the URL (URLs end up in
proxy logs).

A reader may pause as long as it likes: the websocket keeps being read in the background
(answering the sandbox's pings) while up to `QUEUE_FRAMES` frames (4 KiB each from the
sandbox) wait unread; past that the connection is not read, and the sandbox holds the
program back (flow control, as on a real terminal), so memory stays bounded and nothing is
lost. The client sends no keepalive pings of its own: a ping it could not see answered
while it deliberately stopped reading would drop a healthy connection. If the connection
does drop, reading raises `TerminalClosedError` (with the close code), and leaving the
``with`` block leaves the program running (detached) so that it can be reattached.
"""

from __future__ import annotations

import codecs
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Self, Unpack

import httpx
from httpx_ws import (
    AsyncWebSocketSession,
    WebSocketDisconnect,
    WebSocketInvalidTypeReceived,
    WebSocketNetworkError,
    WebSocketUpgradeError,
    aconnect_ws,
)

from tensorlake_api_client.api.sandbox_pty import sandbox_pty_create, sandbox_pty_kill, sandbox_pty_resize
from tensorlake_api_client.client import AuthenticatedClient
from tensorlake_api_client.models import CreatePtyRequest, PtyResizeRequest
from tensorlake_api_client.models.create_pty_request_env import CreatePtyRequestEnv

from .._backend import (
    AsyncLock,
    AsyncWebSocket,
    AsyncWorker,
    adeliver,
    areceive_frame,
    deadline_after,
    remaining,
)
from .._errors import SandboxConnectionError, SandboxError, error_for_response, transport_error
from .._terminal_protocol import (
    CLOSE_GOING_AWAY,
    READY_FRAME,
    TOKEN_HEADER,
    TerminalClosedError,
    TerminalNotFoundError,
    TerminalOptions,
    check_open_args,
    check_options,
    check_size,
    close_error,
    exit_code_from_reason,
    input_frames,
    parse_frame,
    resize_frame,
)
from .._transports._factory import make_client

__all__ = ["QUEUE_FRAMES", "AsyncTerminal", "aattach_terminal", "aopen_terminal"]

# Frames received but not yet read (each at most 4 KiB + 1 from a Tensorlake sandbox).
QUEUE_FRAMES = 1024
# Bytes read from the socket at a time.
_READ_SIZE = 64 * 1024
DEFAULT_CONNECT_TIMEOUT = 10.0
# A blocked read waits in slices of this many seconds, so that a detach (from another thread
# on the sync side) ends it.
_POLL = 0.25
# What a websocket receive raises for a text frame (ignored), a close, a dropped connection.
_RECEIVE_ERRORS = (WebSocketInvalidTypeReceived, WebSocketDisconnect, WebSocketNetworkError)

# Called with every chunk of output by a pump of its own (a task, or a thread on the sync
# side); on the async side it may return an awaitable, which is awaited.
OnOutput = Callable[[bytes], Any]


def _ws_path(session_id: str) -> str:
    if not session_id or "/" in session_id or not session_id.isprintable():
        raise ValueError(f"not a PTY session ID: {session_id!r}")
    return f"/api/v1/pty/{session_id}/ws"


def _check_token(token: object) -> str:
    if not isinstance(token, str):
        raise TypeError(f"token must be a str, not {type(token).__name__}")
    if not token or not token.isascii() or any(c.isspace() or not c.isprintable() for c in token):
        raise ValueError("token must be the session's token (printable ASCII, no whitespace)")
    return token


@contextlib.contextmanager
def _connect_errors() -> Iterator[None]:
    """A refused upgrade as the sandbox's error; a transport failure as a `SandboxConnectionError`."""
    try:
        yield
    except WebSocketUpgradeError as exc:
        raise error_for_response(exc.response) from None
    except httpx.TransportError as exc:  # from httpx-ws itself (the client's own are mapped already)
        raise transport_error(exc) from exc


def _create_request(command: object, args: object, options: TerminalOptions) -> CreatePtyRequest:
    rows, cols, env, cwd = check_options(options)
    command, arg_list, env_dict, cwd_str = check_open_args(command, args, env, cwd)
    body = CreatePtyRequest(command=command, args=arg_list, rows=rows, cols=cols)
    if env_dict is not None:
        body.env = CreatePtyRequestEnv.from_dict(env_dict)
    if cwd_str is not None:
        body.working_dir = cwd_str
    return body


class _State:
    """What both terminals know: the session, the exit, the close."""

    def __init__(
        self,
        client: AuthenticatedClient,
        session_id: str,
        token: str,
        *,
        on_output: OnOutput | None = None,
    ) -> None:
        self.client = client
        self.session_id = session_id
        self._token = token
        self.returncode: int | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self.eof = False
        self.detached = False
        self._on_output = on_output
        self._setup()

    def _setup(self) -> None:
        """The connection's own state (set up by each terminal class)."""

    @property
    def token(self) -> str:
        """The session's token: reattach with it. Secret: keep it out of logs and shell history."""
        return self._token

    def __repr__(self) -> str:
        state = (
            f"returncode={self.returncode}"
            if self.returncode is not None
            else ("detached" if self.detached else "running")
        )
        return f"<{type(self).__name__} session_id={self.session_id!r} {state}>"

    def _on_frame(self, frame: bytes) -> bytes | None:
        parsed = parse_frame(frame)
        if parsed is None:
            return None
        kind, value = parsed
        if kind == "exit":
            self.returncode = value
            return None
        return value  # type: ignore[no-any-return]

    def _received(self, received: bytes | Exception) -> bytes:
        """A frame or receive error from the websocket: the output it carries (b"" for none).

        A close or a dropped connection is recorded (`eof`); a text frame is ignored.
        """
        if isinstance(received, WebSocketDisconnect):
            self._on_close(received.code, received.reason)
        elif isinstance(received, WebSocketNetworkError):
            self._on_close(1006, "")
        elif isinstance(received, bytes):
            return self._on_frame(received) or b""
        return b""

    def _ws_options(self, timeout: float) -> dict[str, Any]:
        """httpx-ws's options for this session's websocket (the token in a header, never the URL)."""
        return {
            "headers": {TOKEN_HEADER: self.token},
            "timeout": timeout,
            "queue_size": QUEUE_FRAMES,
            "max_message_size_bytes": _READ_SIZE,
            # No client pings: see the module docs (the sandbox's pings are answered).
            "keepalive_ping_interval_seconds": None,
        }

    def _not_connected(self) -> TerminalClosedError:
        return TerminalClosedError(
            "the terminal is not connected (it exited, was detached or closed)",
            close_code=self.close_code,
            reason=self.close_reason,
        )

    def _on_close(self, code: int | None, reason: str) -> None:
        self.eof = True
        self.close_code, self.close_reason = code, reason
        if self.returncode is None:
            self.returncode = exit_code_from_reason(reason)

    def _exit_may_pass(self, err: SandboxError, exc: BaseException | None) -> bool:
        """Whether leaving a ``with`` block may pass over ``err``, a failure to close the session.

        It may when the block is raising already (``err`` becomes a note on that exception),
        and when the sandbox went away with the connection (the websocket closed, and the kill
        cannot reach it): the session ended with its sandbox, and ``wait`` said so.
        """
        if exc is not None:
            exc.add_note(f"closing terminal session {self.session_id} also failed: {err}")
            return True
        return self.eof and isinstance(err, SandboxConnectionError)

    def _result(self) -> int:
        if self.returncode is not None:
            return self.returncode
        raise close_error(self.close_code, self.close_reason)

    def _ended(self) -> bytes:
        """The end of the output: b"" after an exit (or a detach); TerminalClosedError otherwise."""
        if self.returncode is not None or self.detached:
            return b""
        err = close_error(self.close_code, self.close_reason)
        err.add_note(
            f"the program may still be running: reattach with AsyncTerminal.attach(client, "
            f"{self.session_id!r}, token) (the token is this terminal's .token)"
        )
        raise err

    @property
    def _dropped(self) -> bool:
        """The connection ended without an exit code: the program may still be running."""
        return self.eof and self.returncode is None and self.close_code != CLOSE_GOING_AWAY


class AsyncTerminal(_State):
    """A program on a terminal in a sandbox, over a websocket. Build one with ``open`` (or ``attach``).

    Iterate it (or call ``read``) for output chunks as they arrive; ``write`` sends input;
    ``resize``; ``wait`` for the exit code; ``detach`` to leave it running; ``kill``. Leaving a
    ``with`` block kills the program unless it exited or was detached, or the connection
    dropped (then it is left running, detached, for ``attach``).

    With ``on_output``, a pump of its own calls it with every chunk (then do not read).
    Async: open and close it in the same task (httpx-ws runs the connection in an anyio task
    group); ``async with`` does that.
    """

    _ws: AsyncWebSocketSession | None
    _pump: AsyncWorker | None

    @classmethod
    async def open(
        cls,
        client: AuthenticatedClient,
        command: str,
        args: Iterable[str] = (),
        *,
        on_output: OnOutput | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        **options: Unpack[TerminalOptions],
    ) -> AsyncTerminal:
        """Start ``command args`` on a new terminal in the sandbox and connect to it.

        ``options``: ``rows`` (default 24), ``cols`` (default 80), ``env`` (a mapping of str to
        str) and ``cwd`` (a path in the sandbox). Everything is checked before a request is
        sent. If connecting fails, the session is killed (nothing is left running). Raises
        `TooManyTerminalsError` at 64 sessions.
        """
        return await aopen_terminal(
            client, command, args, on_output=on_output, connect_timeout=connect_timeout, **options
        )

    @classmethod
    async def attach(
        cls,
        client: AuthenticatedClient,
        session_id: str,
        token: str,
        *,
        on_output: OnOutput | None = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> AsyncTerminal:
        """Connect to a running (or recently exited) session by its ID and token; its history is
        replayed first. Leaving a ``with`` block kills the program unless it exited or was
        detached again."""
        return await aattach_terminal(
            client, session_id, token, on_output=on_output, connect_timeout=connect_timeout
        )

    def _setup(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        self._ws = None
        self._pump = None
        self._lock = AsyncLock()

    async def _connect(self, timeout: float) -> Self:
        http = await self._stack.enter_async_context(make_client(self.client, is_async=True, websocket=True))
        try:
            with _connect_errors():
                ws: AsyncWebSocketSession = await self._stack.enter_async_context(
                    aconnect_ws(
                        _ws_path(self.session_id),
                        http,
                        **self._ws_options(timeout),
                        session_class=AsyncWebSocket,
                    )
                )
                self._ws = ws
                await ws.send_bytes(READY_FRAME)
        except BaseException:
            await self._stack.aclose()
            raise
        if self._on_output is not None:
            self._pump = AsyncWorker(self._run_callback, name=f"terminal-{self.session_id}")
        return self

    # -- output ---------------------------------------------------------------------------------

    async def _read(self, timeout: float | None) -> bytes:
        deadline = deadline_after(timeout)
        while not self.eof:
            ws = self._ws
            if ws is None:
                if self.detached:
                    return b""
                raise RuntimeError("the terminal is not connected")
            left = remaining(deadline)
            received: bytes | Exception
            try:
                # In slices, so that a detach (from another thread) ends a blocked read.
                received = await areceive_frame(ws, _POLL if left is None else min(left, _POLL))
            except TimeoutError:
                if left is not None and left <= _POLL:
                    raise TimeoutError(f"no output within {timeout} s") from None
                continue
            except _RECEIVE_ERRORS as exc:
                received = exc
            if data := self._received(received):
                return data
        await self._close_connection()
        return self._ended()

    async def read(self, timeout: float | None = None) -> bytes:
        """The next chunk of output as it arrives; b"" once the program has exited (or the websocket closed).

        Raises TimeoutError when nothing arrives within ``timeout`` seconds.
        """
        if self._on_output is not None:
            raise RuntimeError("this terminal delivers output to its on_output callback; do not read it")
        return await self._read(timeout)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while chunk := await self.read():
            yield chunk

    async def iter_text(self, errors: str = "replace") -> AsyncIterator[str]:
        """Output decoded as UTF-8, never breaking a character split across chunks."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors=errors)
        async for chunk in self:
            if text := decoder.decode(chunk):
                yield text
        if tail := decoder.decode(b"", final=True):
            yield tail

    async def _run_callback(self) -> None:
        assert self._on_output is not None
        try:
            while chunk := await self._read(None):
                await adeliver(self._on_output, chunk)
        except BaseException:  # kept by the pump and raised by wait()
            await self._close_connection()
            raise

    # -- input and control ----------------------------------------------------------------------

    async def _send(self, frame: bytes) -> None:
        ws = self._ws
        if ws is None or self.eof:
            raise self._not_connected()
        try:
            await ws.send_bytes(frame)
        except WebSocketNetworkError as exc:
            raise close_error(1006, "") from exc

    async def write(self, data: bytes | bytearray | memoryview | str) -> None:
        """Send input (str as UTF-8); the terminal echoes it unless the program turned echo off."""
        for frame in input_frames(data):
            await self._send(frame)

    async def resize(self, rows: int, cols: int) -> None:
        """Set the terminal's size (rows 1..500, cols 1..1000); the program gets SIGWINCH."""
        await self._send(resize_frame(*check_size(rows, cols)))

    async def resize_session(self, rows: int, cols: int) -> None:
        """Resize through the REST API (works while detached)."""
        rows, cols = check_size(rows, cols)
        await sandbox_pty_resize.asyncio(
            self.session_id, client=self.client, body=PtyResizeRequest(rows, cols)
        )

    async def wait(self, timeout: float | None = None) -> int:
        """Wait for the program to exit and return its code (-1 when a signal ended it).

        Output not yet read is read and dropped (or given to ``on_output``). Raises
        TimeoutError after ``timeout`` seconds, and `TerminalClosedError` when the websocket
        closed without an exit code (killed, or the connection dropped).
        """
        deadline = deadline_after(timeout)
        if self._pump is not None:
            if not await self._pump.join_until(deadline):
                raise TimeoutError(f"the program did not exit within {timeout} s")
            if self._pump.error is not None:
                raise self._pump.error
        else:
            while not self.eof:
                try:
                    await self._read(remaining(deadline))
                except TimeoutError:
                    raise TimeoutError(f"the program did not exit within {timeout} s") from None
        return self._result()

    async def detach(self) -> None:
        """Disconnect, leaving the program running; reattach with ``attach`` (ID and token)."""
        self.detached = True
        await self._close_connection()

    async def kill(self) -> None:
        """Kill the program (SIGHUP, then SIGKILL) and remove the session. A no-op once it has exited."""
        try:
            # A 404 (the session is gone already) is no error; the client's one error table
            # gives every /api/v1/pty answer its terminal class.
            with contextlib.suppress(TerminalNotFoundError):
                if self.returncode is None:
                    await sandbox_pty_kill.asyncio(self.session_id, client=self.client)
        finally:
            await self._close_connection()

    async def _close_connection(self) -> None:
        pump = self._pump
        if pump is not None and not pump.is_current():
            await pump.cancel()  # a task is cancelled; a thread ends with the connection
        async with self._lock:
            ws, self._ws = self._ws, None
        if ws is not None:
            await self._stack.aclose()

    async def aclose(self) -> None:
        """Kill the program unless it exited or was detached, and close the connection.

        When the connection dropped (the program may still be running), it is left running,
        detached: reattach with ``attach``.
        """
        if self._dropped:
            self.detached = True
        if self.returncode is None and not self.detached:
            await self.kill()
        await self._close_connection()
        pump = self._pump
        if pump is not None and not pump.is_current():
            await pump.join_until(deadline_after(5))

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.aclose()
        except SandboxError as err:
            if not self._exit_may_pass(err, exc):
                raise


async def aopen_terminal(
    client: AuthenticatedClient,
    command: str,
    args: Iterable[str] = (),
    *,
    on_output: OnOutput | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    **options: Unpack[TerminalOptions],
) -> AsyncTerminal:
    """Start ``command args`` on a new terminal (``rows`` x ``cols``) in the sandbox and connect to it.

    ``options``: ``rows`` (default 24), ``cols`` (default 80), ``env`` (a mapping of str to
    str) and ``cwd`` (a path in the sandbox). Everything is checked before a request is sent.
    If connecting fails, the session is killed (nothing is left running). Raises
    `TooManyTerminalsError` at 64 sessions.
    """
    body = _create_request(command, args, options)
    created = await sandbox_pty_create.asyncio(client=client, body=body)
    term = AsyncTerminal(client, created.session_id, created.token, on_output=on_output)
    try:
        return await term._connect(connect_timeout)
    except BaseException:
        with contextlib.suppress(Exception):
            await term.kill()
        raise


async def aattach_terminal(
    client: AuthenticatedClient,
    session_id: str,
    token: str,
    *,
    on_output: OnOutput | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> AsyncTerminal:
    """Connect to a running (or recently exited) session; its history is replayed first.

    Leaving a ``with`` block on the returned terminal kills the program unless it exited or
    was detached again.
    """
    _ws_path(session_id)
    term = AsyncTerminal(client, session_id, _check_token(token), on_output=on_output)
    return await term._connect(connect_timeout)
