"""Interactive terminals in a sandbox: a PTY session over REST plus its binary websocket.

>>> with open_terminal(client, "sh") as term:  # doctest: +SKIP
...     term.write("echo $((6*7)); exit 5\\n")
...     output = b"".join(term)  # bytes as they arrive, until the program exits
...     term.returncode
5

Output is bytes exactly as the terminal produced them (never split into lines; a UTF-8
character may be split across chunks: `Terminal.iter_text` decodes incrementally).
`Terminal.detach` leaves the program running; `attach_terminal` reconnects with the
session's ID and token, and the server replays its history (the last 1 MiB of output).
`AsyncTerminal` (`aopen_terminal`, `aattach_terminal`) is the async twin.

The websocket is `httpx-ws` on an httpx client made by the package's one client factory
(`_http.make_client`) from ``client``'s settings, so everything that applies to the other
calls (no proxy for a loopback URL, trust, timeouts, ``httpx_args``) applies here. The
session's token goes in the ``X-PTY-Token`` header only, never in the URL (URLs end up in
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

import asyncio
import contextlib
import inspect
import queue
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from types import TracebackType
from typing import Any, Self, Unpack

import httpx
from httpx_ws import (
    AsyncWebSocketSession,
    WebSocketDisconnect,
    WebSocketInvalidTypeReceived,
    WebSocketNetworkError,
    WebSocketSession,
    WebSocketUpgradeError,
    aconnect_ws,
    connect_ws,
)

from tensorlake_api_client.api.sandbox_pty import sandbox_pty_create, sandbox_pty_kill, sandbox_pty_resize
from tensorlake_api_client.client import AuthenticatedClient
from tensorlake_api_client.models import CreatePtyRequest, PtyResizeRequest
from tensorlake_api_client.models.create_pty_request_env import CreatePtyRequestEnv

from ._errors import SandboxConnectionError, SandboxError, error_for_status, transport_error
from ._http import make_client
from ._terminal_protocol import (
    READY_FRAME,
    TerminalClosedError,
    TerminalNotFoundError,
    TerminalOptions,
    TooManyTerminalsError,
    check_open_args,
    check_options,
    check_size,
    close_error,
    exit_code_from_reason,
    input_frames,
    iter_text,
    parse_frame,
    resize_frame,
)

__all__ = [
    "QUEUE_FRAMES",
    "AsyncTerminal",
    "Terminal",
    "TerminalClosedError",
    "TerminalNotFoundError",
    "TooManyTerminalsError",
    "aattach_terminal",
    "aopen_terminal",
    "attach_terminal",
    "open_terminal",
]

# Frames received but not yet read (each at most 4 KiB + 1 from a Tensorlake sandbox).
QUEUE_FRAMES = 1024
# Bytes read from the socket at a time.
_READ_SIZE = 64 * 1024
DEFAULT_CONNECT_TIMEOUT = 10.0
_POLL = 0.25
# What a websocket receive raises for a text frame (ignored), a close, a dropped connection.
_RECEIVE_ERRORS = (WebSocketInvalidTypeReceived, WebSocketDisconnect, WebSocketNetworkError)

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


def _mapped(exc: SandboxError) -> SandboxError:
    """A REST error with the terminal-specific class for 404 and 429."""
    cls: type[SandboxError] | None = {404: TerminalNotFoundError, 429: TooManyTerminalsError}.get(
        exc.status_code or 0
    )
    if cls is None:
        return exc
    return cls(exc.message, status_code=exc.status_code, code=exc.code)


@contextlib.contextmanager
def _mapped_errors(*, gone_ok: bool = False) -> Iterator[None]:
    """REST errors raised as `_mapped` ones; with ``gone_ok``, a 404 (session already gone) is ignored."""
    try:
        yield
    except SandboxError as exc:
        if not (gone_ok and exc.status_code == 404):
            raise _mapped(exc) from None


def _upgrade_error(response: httpx.Response) -> SandboxError:
    err = error_for_status(response.status_code, response.content, path=response.request.url.path)
    return _mapped(err)


@contextlib.contextmanager
def _connect_errors() -> Iterator[None]:
    """A refused upgrade as the sandbox's error; a transport failure as a `SandboxConnectionError`."""
    try:
        yield
    except WebSocketUpgradeError as exc:
        raise _upgrade_error(exc.response) from None
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


class _DrainingSession(WebSocketSession):
    """httpx-ws's sync session, closable while its queue is full.

    Its receiving thread blocks putting into the bounded queue when nobody reads; the stock
    ``__exit__`` then joins that thread forever. This one empties the queue while it waits.
    """

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self.close()
        receiver: threading.Thread = self._background_receive_task
        while receiver.is_alive():
            with contextlib.suppress(queue.Empty):
                while True:
                    self._events.get_nowait()
            receiver.join(0.05)
        pinger: threading.Thread | None = self._background_keepalive_ping_task
        if pinger is not None:
            pinger.join()


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
            "headers": {"X-PTY-Token": self.token},
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
            f"the program may still be running: reattach with attach_terminal(client, "
            f"{self.session_id!r}, token) (the token is this terminal's .token)"
        )
        raise err

    @property
    def _dropped(self) -> bool:
        """The connection ended without an exit code: the program may still be running."""
        return self.eof and self.returncode is None and self.close_code != 1001


class Terminal(_State):
    """A program on a terminal in a sandbox, connected over a websocket. Build one with `open_terminal`.

    Iterate it (or call `read`) for output chunks as they arrive; `write` sends input;
    `resize`; `wait` for the exit code; `detach` to leave it running; `kill`. Leaving a
    ``with`` block kills the program unless it exited or was detached, or the connection
    dropped (then it is left running, detached, for `attach_terminal`).

    With ``on_output``, a thread of its own calls it with every chunk (then do not read).
    """

    _ws: WebSocketSession | None
    _pump: threading.Thread | None

    def _setup(self) -> None:
        self._stack = contextlib.ExitStack()
        self._ws = None
        self._pump = None
        self._pump_error: BaseException | None = None
        self._lock = threading.Lock()

    def _connect(self, timeout: float) -> Self:
        http = self._stack.enter_context(make_client(self.client, is_async=False, websocket=True))
        try:
            with _connect_errors():
                self._ws = self._stack.enter_context(
                    connect_ws(
                        _ws_path(self.session_id),
                        http,
                        **self._ws_options(timeout),
                        session_class=_DrainingSession,
                    )
                )
                self._ws.send_bytes(READY_FRAME)
        except BaseException:
            self._stack.close()
            raise
        if self._on_output is not None:
            self._pump = threading.Thread(
                target=self._run_callback, name=f"terminal-{self.session_id}", daemon=True
            )
            self._pump.start()
        return self

    # -- output ---------------------------------------------------------------------------------

    def _read(self, timeout: float | None) -> bytes:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.eof:
            ws = self._ws
            if ws is None:
                if self.detached:
                    return b""
                raise RuntimeError("the terminal is not connected")
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            received: bytes | Exception
            try:
                # In slices, so that a detach from another thread ends a blocked read.
                received = ws.receive_bytes(_POLL if left is None else min(left, _POLL))
            except queue.Empty:
                if left is not None and left <= _POLL:
                    raise TimeoutError(f"no output within {timeout} s") from None
                continue
            except _RECEIVE_ERRORS as exc:
                received = exc
            if data := self._received(received):
                return data
        self._close_connection()
        return self._ended()

    def read(self, timeout: float | None = None) -> bytes:
        """The next chunk of output as it arrives; b"" once the program has exited (or the websocket closed).

        Raises TimeoutError when nothing arrives within ``timeout`` seconds.
        """
        if self._on_output is not None:
            raise RuntimeError("this terminal delivers output to its on_output callback; do not read it")
        return self._read(timeout)

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read():
            yield chunk

    def iter_text(self, errors: str = "replace") -> Iterator[str]:
        """Output decoded as UTF-8, never breaking a character split across chunks."""
        return iter_text(self, errors)

    def _run_callback(self) -> None:
        assert self._on_output is not None
        try:
            while chunk := self._read(None):
                self._on_output(chunk)
        except BaseException as exc:  # reported by wait()
            self._pump_error = exc
            self._close_connection()

    # -- input and control ----------------------------------------------------------------------

    def _send(self, frame: bytes) -> None:
        ws = self._ws
        if ws is None or self.eof:
            raise self._not_connected()
        try:
            ws.send_bytes(frame)
        except WebSocketNetworkError as exc:
            raise close_error(1006, "") from exc

    def write(self, data: bytes | bytearray | memoryview | str) -> None:
        """Send input (str as UTF-8); the terminal echoes it unless the program turned echo off."""
        for frame in input_frames(data):
            self._send(frame)

    def resize(self, rows: int, cols: int) -> None:
        """Set the terminal's size (rows 1..500, cols 1..1000); the program gets SIGWINCH."""
        self._send(resize_frame(*check_size(rows, cols)))

    def resize_session(self, rows: int, cols: int) -> None:
        """Resize through the REST API (works while detached)."""
        rows, cols = check_size(rows, cols)
        with _mapped_errors():
            sandbox_pty_resize.sync(self.session_id, client=self.client, body=PtyResizeRequest(rows, cols))

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the program to exit and return its code (-1 when a signal ended it).

        Output not yet read is read and dropped (or given to ``on_output``). Raises
        TimeoutError after ``timeout`` seconds, and `TerminalClosedError` when the websocket
        closed without an exit code (killed, or the connection dropped).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._pump is not None:
            self._pump.join(timeout)
            if self._pump.is_alive():
                raise TimeoutError(f"the program did not exit within {timeout} s")
            if self._pump_error is not None:
                raise self._pump_error
        else:
            while not self.eof:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    self._read(left)
                except TimeoutError:
                    raise TimeoutError(f"the program did not exit within {timeout} s") from None
        return self._result()

    def detach(self) -> None:
        """Disconnect, leaving the program running; reattach with `attach_terminal` (ID and token)."""
        self.detached = True
        self._close_connection()

    def kill(self) -> None:
        """Kill the program (SIGHUP, then SIGKILL) and remove the session. A no-op once it has exited."""
        try:
            with _mapped_errors(gone_ok=True):
                if self.returncode is None:
                    sandbox_pty_kill.sync(self.session_id, client=self.client)
        finally:
            self._close_connection()

    def _close_connection(self) -> None:
        with self._lock:
            ws, self._ws = self._ws, None
        if ws is not None:
            self._stack.close()

    def close(self) -> None:
        """Kill the program unless it exited or was detached, and close the connection.

        When the connection dropped (the program may still be running), it is left running,
        detached: reattach with `attach_terminal`.
        """
        if self._dropped:
            self.detached = True
        if self.returncode is None and not self.detached:
            self.kill()
        self._close_connection()
        if self._pump is not None and self._pump is not threading.current_thread():
            self._pump.join(5)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.close()
        except SandboxError as err:
            if not self._exit_may_pass(err, exc):
                raise


def open_terminal(
    client: AuthenticatedClient,
    command: str,
    args: Iterable[str] = (),
    *,
    on_output: OnOutput | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    **options: Unpack[TerminalOptions],
) -> Terminal:
    """Start ``command args`` on a new terminal (``rows`` x ``cols``) in the sandbox and connect to it.

    ``options``: ``rows`` (default 24), ``cols`` (default 80), ``env`` (a mapping of str to
    str) and ``cwd`` (a path in the sandbox). Everything is checked before a request is sent.
    If connecting fails, the session is killed (nothing is left running). Raises
    `TooManyTerminalsError` at 64 sessions.
    """
    body = _create_request(command, args, options)
    with _mapped_errors():
        created = sandbox_pty_create.sync(client=client, body=body)
    term = Terminal(client, created.session_id, created.token, on_output=on_output)
    try:
        return term._connect(connect_timeout)
    except BaseException:
        with contextlib.suppress(Exception):
            term.kill()
        raise


def attach_terminal(
    client: AuthenticatedClient,
    session_id: str,
    token: str,
    *,
    on_output: OnOutput | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> Terminal:
    """Connect to a running (or recently exited) session; its history is replayed first.

    Leaving a ``with`` block on the returned terminal kills the program unless it exited or
    was detached again.
    """
    _ws_path(session_id)
    term = Terminal(client, session_id, _check_token(token), on_output=on_output)
    return term._connect(connect_timeout)


# -- async ------------------------------------------------------------------------------------

AsyncOnOutput = Callable[[bytes], Any]


class AsyncTerminal(_State):
    """The async twin of `Terminal`: the same methods, awaited; ``async for chunk in term``.

    Open and close it in the same task (httpx-ws runs the connection in an anyio task group);
    ``async with`` does that. ``on_output`` may be a plain function or a coroutine function.
    """

    _ws: AsyncWebSocketSession | None
    _pump: asyncio.Task[None] | None

    def _setup(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        self._ws = None
        self._pump = None

    async def _connect(self, timeout: float) -> Self:
        http = await self._stack.enter_async_context(make_client(self.client, is_async=True, websocket=True))
        try:
            with _connect_errors():
                ws: AsyncWebSocketSession = await self._stack.enter_async_context(
                    aconnect_ws(_ws_path(self.session_id), http, **self._ws_options(timeout))
                )
                self._ws = ws
                await ws.send_bytes(READY_FRAME)
        except BaseException:
            await self._stack.aclose()
            raise
        if self._on_output is not None:
            self._pump = asyncio.ensure_future(self._run_callback())
        return self

    async def _read(self, timeout: float | None) -> bytes:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.eof:
            ws = self._ws
            if ws is None:
                raise RuntimeError("the terminal is detached; attach again with aattach_terminal")
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            received: bytes | Exception
            try:
                received = await ws.receive_bytes(left)
            except TimeoutError:
                raise TimeoutError(f"no output within {timeout} s") from None
            except _RECEIVE_ERRORS as exc:
                received = exc
            if data := self._received(received):
                return data
        return self._ended()

    async def read(self, timeout: float | None = None) -> bytes:
        """The next chunk of output; b"" once the program has exited. TimeoutError after ``timeout`` s."""
        if self._on_output is not None:
            raise RuntimeError("this terminal delivers output to its on_output callback; do not read it")
        return await self._read(timeout)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while chunk := await self.read():
            yield chunk

    async def iter_text(self, errors: str = "replace") -> AsyncIterator[str]:
        """Output decoded as UTF-8, never breaking a character split across chunks."""
        import codecs

        decoder = codecs.getincrementaldecoder("utf-8")(errors=errors)
        async for chunk in self:
            if text := decoder.decode(chunk):
                yield text
        if tail := decoder.decode(b"", final=True):
            yield tail

    async def _run_callback(self) -> None:
        assert self._on_output is not None
        while chunk := await self._read(None):
            result = self._on_output(chunk)
            if inspect.isawaitable(result):
                await result

    async def _send(self, frame: bytes) -> None:
        ws = self._ws
        if ws is None or self.eof:
            raise self._not_connected()
        try:
            await ws.send_bytes(frame)
        except WebSocketNetworkError as exc:
            raise close_error(1006, "") from exc

    async def write(self, data: bytes | bytearray | memoryview | str) -> None:
        """Send input (str as UTF-8)."""
        for frame in input_frames(data):
            await self._send(frame)

    async def resize(self, rows: int, cols: int) -> None:
        """Set the terminal's size (rows 1..500, cols 1..1000); the program gets SIGWINCH."""
        await self._send(resize_frame(*check_size(rows, cols)))

    async def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit code (-1 when a signal ended it); unread output is dropped."""
        try:
            async with asyncio.timeout(timeout):
                if self._pump is not None:
                    await asyncio.shield(self._pump)
                else:
                    while not self.eof:
                        await self._read(None)
        except TimeoutError:
            raise TimeoutError(f"the program did not exit within {timeout} s") from None
        return self._result()

    async def detach(self) -> None:
        """Disconnect, leaving the program running; reattach with `aattach_terminal`."""
        self.detached = True
        await self._close_connection()

    async def kill(self) -> None:
        """Kill the program and remove the session. A no-op once it has exited."""
        try:
            with _mapped_errors(gone_ok=True):
                if self.returncode is None:
                    await sandbox_pty_kill.asyncio(self.session_id, client=self.client)
        finally:
            await self._close_connection()

    async def _close_connection(self) -> None:
        pump, self._pump = self._pump, None
        if pump is not None and pump is not asyncio.current_task():
            pump.cancel()
            with contextlib.suppress(BaseException):
                await pump
        ws, self._ws = self._ws, None
        if ws is not None:
            await self._stack.aclose()

    async def aclose(self) -> None:
        """Kill the program unless it exited or was detached, and close the connection (a dropped
        connection leaves the program running, detached, as `Terminal.close` does)."""
        if self._dropped:
            self.detached = True
        if self.returncode is None and not self.detached:
            await self.kill()
        await self._close_connection()

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
    on_output: Callable[[bytes], Awaitable[Any] | Any] | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    **options: Unpack[TerminalOptions],
) -> AsyncTerminal:
    """The async twin of `open_terminal`."""
    body = _create_request(command, args, options)
    with _mapped_errors():
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
    on_output: Callable[[bytes], Awaitable[Any] | Any] | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
) -> AsyncTerminal:
    """The async twin of `attach_terminal`."""
    _ws_path(session_id)
    term = AsyncTerminal(client, session_id, _check_token(token), on_output=on_output)
    return await term._connect(connect_timeout)
