"""Drive a sandbox process the way `subprocess` drives a local one: `arun`, `astart`, `AsyncRemoteProcess`.

Written once, async, in ``_async/_process.py``: `scripts/unasync.py` generates
``_sync/_process.py`` (`run`, `start`, `RemoteProcess`, `LineStream`) from it. Where the two
really differ (a task or a thread, `asyncio.shield`) they call the small named helpers of
`_backend.py`; the rules they share (argument checks, request bodies, event parsing, return
codes) are in `_process_rules.py`.

Output arrives over the follow endpoints (Server-Sent Events, parsed with httpx-sse from
the generated ``stream()`` functions); stdin goes through the streaming writer
(in order, never twice).

Output is captured by the sandbox **line by line**, without line terminators. Text is
rebuilt as each line followed by ``"\\n"``: a ``"\\r\\n"`` comes back as ``"\\n"``, and a last
line without a newline gets one. Undecodable bytes were already replaced by U+FFFD on the
sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections.abc import AsyncIterator, Callable, Mapping
from types import TracebackType
from typing import Any, Generic, Literal, Self, Unpack, cast, overload

from httpx_sse import EventSource, ServerSentEvent
from typing_extensions import TypeVar

from tensorlake_api_client.api.sandbox_processes import (
    sandbox_process_get,
    sandbox_process_kill,
    sandbox_process_restart,
    sandbox_process_run,
    sandbox_process_signal,
    sandbox_process_start,
)
from tensorlake_api_client.models import RunExitEvent, RunStartEvent, SendSignalRequest

from .._backend import AsyncEvent, AsyncWorker, acleanup, ashielded, deadline_after, remaining
from .._client import SandboxClient
from .._errors import (
    OutputLostError,
    ProcessNotFoundError,
    SandboxConnectionError,
    SandboxError,
    StdinNotWritableError,
)
from .._process_rules import (
    DROPS,
    EXIT_TIMEOUT,
    FOLLOW,
    FOLLOW_ATTEMPTS,
    KILL_GRACE,
    ContinuedLine,
    ManagedOptions,
    OutputLine,
    Positions,
    ProcessSpec,
    Reassembly,
    RunOptions,
    StartOptions,
    StreamName,
    UserArg,
    check_client,
    check_input,
    check_signal,
    check_timeout,
    completed,
    exit_returncode,
    follow_backoff,
    is_missing,
    join,
    parse_follow_event,
    parse_run_event,
    returncode_of,
    stream_timeout,
    timed_out,
    timeout_expired,
)
from ._stdin import AsyncStdinWriter, astdin_writer

__all__ = ["AsyncLineStream", "AsyncRemoteProcess", "arun", "arun_streaming", "astart"]

T = TypeVar("T", str, OutputLine)
# What ``p.stdin`` is: a writer when a pipe was asked for (``stdin=True``, the default), None
# when not; the overloads of `astart` say which, so that type checkers need no None check.
StdinT = TypeVar("StdinT", bound=AsyncStdinWriter | None, default=AsyncStdinWriter | None, covariant=True)
OnLine = Callable[[OutputLine], object]


class AsyncLineStream(Generic[T]):
    """Lines of one output stream of a process, as they arrive, until the process's output ends.

    An iterator (``async for line in p.stdout``). Lines of ``p.stdout`` / ``p.stderr`` /
    ``p.output`` end with ``"\\n"``, as `subprocess` gives them (the sandbox captures by line:
    ``"\\r\\n"`` comes back as ``"\\n"``, and a last line without one gets one). Over the
    follow endpoint, which replays every captured line from the start: when the connection
    drops, it is reopened and the lines already yielded are skipped, so none is repeated.
    ``count`` is the number of lines yielded so far.

    Nothing is lost silently. A sandbox that numbers its events (SSE ``id``: the line's
    position, as the local sandbox does) lets every line be checked: lines it dropped before
    they were read raise `OutputLostError` (with how many are missing) where they were. A
    line the sandbox sent as marked pieces (longer than its line limit) is put back together.
    Against a sandbox that sends no positions, lines are skipped by count after a reconnect,
    and a replay shorter than what was already received raises `OutputLostError`; lines it
    dropped while nobody was following cannot be detected there.
    """

    def __init__(self, client: SandboxClient, pid: int | str, stream: StreamName, *, keepends: bool = False):
        self._client = client
        self._end = "\n" if keepends else ""  # the public streams end each line with "\n"
        self._pid = pid
        self._stream: StreamName = stream
        self.count = 0
        self._index = 0
        self._events_taken = 0  # output events taken (pieces included): for sandboxes without ids
        self._positions = Positions(f"{stream} of process {pid}")
        self._pieces = Reassembly()
        self._failures = 0
        self._done = False
        self._stack: contextlib.AsyncExitStack | None = None
        self._events: AsyncIterator[ServerSentEvent] | None = None

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        while True:
            if self._done:
                raise StopAsyncIteration
            if self._events is None:
                await self._connect()
                continue
            try:
                sse = await anext(self._events)
            except StopAsyncIteration:
                await self._dropped(None)  # closed without an eof event
                continue
            except DROPS as exc:
                await self._dropped(exc)
                continue
            if sse.event == "gap":
                await self._lost(self._positions.gap, sse.data)
                continue
            try:
                parsed = parse_follow_event(sse.event, sse.data, self._stream)
            except ValueError:
                continue
            if parsed is None:
                if not self._positions.next and self._index < self._events_taken:
                    # No positions, and the replay is shorter than what was taken: lines were dropped.
                    await self._lost(self._replay_short, "")
                await self.aclose()
                raise StopAsyncIteration
            item, continued = parsed
            self._index += 1
            if sse.id:
                try:
                    new = self._positions.take(sse.id, self.count)
                except OutputLostError:
                    await self.aclose()
                    raise
                if not new:
                    continue  # replayed: taken before the connection dropped
            elif self._index <= self._events_taken:
                continue  # replayed: taken before the connection dropped
            self._events_taken += 1
            self._failures = 0
            if continued or self._pieces.pending:
                stream, text = item if isinstance(item, OutputLine) else (self._stream, item)
                whole = self._pieces.line(stream, text, continued)
                if whole is None:
                    continue
                item = OutputLine(stream, whole) if isinstance(item, OutputLine) else whole  # type: ignore[arg-type]
            self.count += 1
            if self._end:
                item = (
                    OutputLine(item.stream, item.line + self._end)
                    if isinstance(item, OutputLine)
                    else item + self._end
                )
            return cast(T, item)

    def _replay_short(self, raw: str, received: int) -> None:
        raise self._positions.lost(None, received)

    async def _lost(self, check: Callable[[str, int], None], raw: str) -> None:
        """Run a position check; when it raises, stop following before passing the error on."""
        try:
            check(raw, self.count)
        except OutputLostError:
            await self.aclose()
            raise

    async def _connect(self) -> None:
        op = FOLLOW[self._stream]
        stack = contextlib.AsyncExitStack()
        try:
            response = await stack.enter_async_context(
                op.astream(self._pid, client=self._client, timeout=stream_timeout(self._client))
            )
        except DROPS as exc:
            await stack.aclose()
            await self._dropped(exc)
            return
        except BaseException:
            await stack.aclose()
            self._done = True
            raise
        self._stack = stack
        self._events = EventSource(response).aiter_sse()
        self._index = 0

    async def _dropped(self, error: BaseException | None) -> None:
        await self._close_connection()
        self._failures += 1
        if self._failures >= FOLLOW_ATTEMPTS:
            self._done = True
            why = f"{type(error).__name__}: {error}" if error is not None else "closed before its eof event"
            raise SandboxConnectionError(
                f"following the {self._stream} of process {self._pid} failed {self._failures} times "
                f"in a row ({why}); {self.count} lines were received"
            ) from error
        await asyncio.sleep(follow_backoff(self._failures))

    async def _close_connection(self) -> None:
        stack, self._stack, self._events = self._stack, None, None
        if stack is not None:
            with contextlib.suppress(Exception):
                await stack.aclose()

    async def aclose(self) -> None:
        """Stop following (closes the connection); iterating again yields nothing."""
        self._done = True
        await self._close_connection()


class _Communication:
    """communicate()'s work, begun once: feed the input then EOF, and collect the output."""

    def __init__(self, proc: AsyncRemoteProcess[Any], data: object, on_line: OnLine | None = None):
        self.on_line = on_line
        self.out: list[str] = []
        self.err: list[str] = []
        # Lines the caller already took from p.stdout / p.stderr are not returned again.
        skip = {"stdout": proc._taken("stdout"), "stderr": proc._taken("stderr")}
        self.feeder = AsyncWorker(lambda: _feed(proc.stdin, data), f"stdin-{proc.pid}")
        self.reader = AsyncWorker(lambda: self._read(proc, skip), f"output-{proc.pid}")

    async def _read(self, proc: AsyncRemoteProcess, skip: dict[str, int]) -> None:
        async for item in AsyncLineStream[OutputLine](proc._client, proc.pid, "output"):
            if skip[item.stream]:
                skip[item.stream] -= 1
                continue
            (self.err if item.stream == "stderr" else self.out).append(item.line)
            if self.on_line is not None:
                self.on_line(item)

    async def finish(self, deadline: float | None) -> bool:
        done = await self.feeder.join_until(deadline) and await self.reader.join_until(deadline)
        for worker in (self.feeder, self.reader):
            if worker.error is not None:
                raise worker.error
        return done

    async def cancel(self) -> None:
        await self.feeder.cancel()
        await self.reader.cancel()


async def _feed(writer: AsyncStdinWriter | None, data: object) -> None:
    if writer is None or writer.closed:
        return
    try:
        if data is not None:
            await writer.write(data)
        await writer.aclose()
    except (StdinNotWritableError, ProcessNotFoundError):
        pass  # the process exited or closed stdin before reading it all: like BrokenPipeError


class AsyncRemoteProcess(Generic[StdinT]):
    """A process started in a sandbox by `astart`; shaped like `subprocess.Popen`.

    ``pid``, ``args``, ``stdin`` (the streaming writer `AsyncStdinWriter`, None when started
    with ``stdin=False``), ``stdout`` / ``stderr`` (iterators of `str` lines as they arrive),
    ``output`` (both, as `OutputLine` ``(stream, line)`` tuples, in order), ``returncode``
    (None until `poll`, `wait` or `communicate` saw the process end; -N when signal N ended
    it). ``name`` is the name of a managed process (started with ``name=``), else None: its
    status, signals and kill then go by name, so they reach the current run after the sandbox
    restarted it (``pid`` follows); its output and stdin are those of the run it was started
    with, or of the last `restart`.

    As a context manager it never leaves the process running by accident. Leaving the
    block normally closes stdin, waits up to ``exit_timeout`` seconds (5 by default) for
    the process to end by itself, then kills it (SIGKILL); leaving it with an exception
    (Ctrl-C included) kills it at once. Either way the follow connections are closed.
    """

    exit_timeout: float = EXIT_TIMEOUT

    def __init__(
        self,
        client: SandboxClient,
        pid: int,
        args: list[str],
        *,
        stdin: StdinT,
        name: str | None = None,
    ):
        self._client = client
        self.pid = pid
        self.name = name
        self.args = args
        self.stdin = stdin
        self.returncode: int | None = None
        self._streams: dict[str, AsyncLineStream[Any]] = {}
        self._communication: _Communication | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} pid={self.pid} args={self.args!r} returncode={self.returncode}>"

    # -- output -----------------------------------------------------------------------------

    def _stream(self, name: StreamName) -> AsyncLineStream[Any]:
        if name not in self._streams:
            self._streams[name] = AsyncLineStream[Any](self._client, self.pid, name, keepends=True)
        return self._streams[name]

    def _taken(self, name: StreamName) -> int:
        stream = self._streams.get(name)
        return stream.count if stream is not None else 0

    @property
    def stdout(self) -> AsyncLineStream[str]:
        """The process's stdout lines as they arrive (replayed from the start the first time)."""
        return self._stream("stdout")

    @property
    def stderr(self) -> AsyncLineStream[str]:
        """The process's stderr lines as they arrive."""
        return self._stream("stderr")

    @property
    def output(self) -> AsyncLineStream[OutputLine]:
        """stdout and stderr lines in the order the sandbox captured them, as ``(stream, line)``."""
        return self._stream("output")

    # -- status -----------------------------------------------------------------------------

    async def poll(self) -> int | None:
        """The return code if the process has ended, else None (one request)."""
        if self.returncode is None:
            info = await sandbox_process_get.asyncio(self._key, client=self._client)
            self.pid = info.pid  # a managed process's current run
            self.returncode = returncode_of(info)
        return self.returncode

    @property
    def _key(self) -> int | str:
        """How requests name it: the name of a managed process, else the pid."""
        return self.name if self.name is not None else self.pid

    async def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to end and return its return code.

        Polls its status with backoff (20 ms growing to 0.5 s). Raises
        `subprocess.TimeoutExpired` after ``timeout`` seconds; the process keeps running.
        """
        timeout = check_timeout(timeout)
        code = await self._wait_until(deadline_after(timeout))
        if code is None:
            raise subprocess.TimeoutExpired(self.args, cast(float, timeout))
        return code

    async def _wait_until(self, deadline: float | None) -> int | None:
        delay = 0.02
        while (code := await self.poll()) is None:
            left = remaining(deadline)
            if left is not None and left <= 0:
                return None
            await asyncio.sleep(delay if left is None else min(delay, left))
            delay = min(0.5, delay * 1.5)
        return code

    async def communicate(self, input: object = None, timeout: float | None = None) -> tuple[str, str]:
        """Send ``input`` (str, bytes or a binary file) then EOF, read all output, wait for the end.

        Returns ``(stdout, stderr)`` as text (see the module docs on line endings), without
        the lines already taken from ``p.stdout`` / ``p.stderr``. Raises
        `subprocess.TimeoutExpired` after ``timeout`` seconds, with the output so far; the
        process keeps running, and calling `communicate` again (without input) resumes
        without losing output. Input a process does not read before exiting is dropped,
        like `subprocess`'s BrokenPipeError.
        """
        timeout = check_timeout(timeout)
        check_input(input)
        if input is not None and self.stdin is None:
            raise ValueError("input was given, but the process was started with stdin=False")
        deadline = deadline_after(timeout)
        if self._communication is None:
            self._communication = _Communication(self, input)
        elif input is not None:
            raise ValueError("communicate() was already called with input: it is not sent twice")
        comm = self._communication
        if not await comm.finish(deadline):
            raise timeout_expired(self.args, cast(float, timeout), comm.out, comm.err, True)
        if await self._wait_until(deadline) is None:
            raise timeout_expired(self.args, cast(float, timeout), comm.out, comm.err, True)
        return join(comm.out), join(comm.err)

    # -- signals ----------------------------------------------------------------------------

    async def send_signal(self, sig: int) -> None:
        """Send signal ``sig`` (e.g. ``signal.SIGTERM``); nothing happens once the process has ended."""
        check_signal(sig)
        if self.returncode is not None:
            return
        try:
            await sandbox_process_signal.asyncio_detailed(
                self._key, client=self._client, body=SendSignalRequest(signal=int(sig))
            )
        except SandboxError:
            if await self.poll() is None:
                raise

    async def terminate(self) -> None:
        """SIGTERM."""
        await self.send_signal(int(signal.SIGTERM))

    async def kill(self) -> None:
        """Kill the process and everything it started, detached children included.

        An ordinary process gets SIGKILL at once; a managed one is stopped for good (no
        restart): SIGTERM, then SIGKILL after the sandbox's grace period.
        """
        if self.returncode is not None and self.name is None:
            return
        try:
            await sandbox_process_kill.asyncio_detailed(self._key, client=self._client)
        except SandboxError:
            if await self.poll() is None:
                raise

    async def restart(self) -> None:
        """Restart a managed process (one started with ``name``, ``restart`` or ``health_check``).

        The sandbox stops the current run (SIGTERM, SIGKILL after its grace) and starts the
        command again: ``pid`` becomes the new run's, ``returncode`` None; output and stdin
        are the new run's from then on. `BadRequestError` for a process that is not managed.
        """
        info = await sandbox_process_restart.asyncio(self._key, client=self._client)
        await self.aclose()
        self._streams = {}
        self._communication = None
        self.pid = info.pid
        self.returncode = returncode_of(info)
        if self.stdin is not None:
            self.stdin = cast(StdinT, astdin_writer(self._client, info.pid) if info.stdin_writable else None)

    # -- context manager ----------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the follow connections (the process is left as it is)."""
        for stream in self._streams.values():
            await stream.aclose()
        if self._communication is not None:
            await self._communication.cancel()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc is None:
                await self._end_gently()
            else:
                await self._end_now(exc)
        finally:
            await self.aclose()

    async def _end_gently(self) -> None:
        if self.stdin is not None and not self.stdin.closed:
            with contextlib.suppress(StdinNotWritableError, ProcessNotFoundError):
                await self.stdin.aclose()
        try:
            await self.wait(self.exit_timeout)
        except subprocess.TimeoutExpired:
            await self.kill()
            await self.wait(KILL_GRACE)

    async def _end_now(self, exc: BaseException) -> None:
        try:
            # Shielded: a cancelled task must still kill what it started.
            await ashielded(self.kill)
        except Exception as kill_error:
            exc.add_note(f"killing process {self.pid} also failed: {kill_error}")


# -- start and run ------------------------------------------------------------------------------


@overload
async def astart(
    client: SandboxClient, args: list[str], *, stdin: Literal[True] = ..., **options: Unpack[StartOptions]
) -> AsyncRemoteProcess[AsyncStdinWriter]: ...
@overload
async def astart(
    client: SandboxClient, args: list[str], *, stdin: Literal[False], **options: Unpack[StartOptions]
) -> AsyncRemoteProcess[None]: ...
@overload
async def astart(
    client: SandboxClient, args: list[str], *, stdin: bool, **options: Unpack[StartOptions]
) -> AsyncRemoteProcess[AsyncStdinWriter | None]: ...
async def astart(
    client: SandboxClient,
    args: list[str],
    *,
    stdin: bool = True,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    user: UserArg | None = None,
    name: str | None = None,
    restart: str | Mapping[str, Any] | None = None,
    health_check: Mapping[str, Any] | None = None,
) -> AsyncRemoteProcess[Any]:
    """Start ``args`` (``[program, *arguments]``) in the sandbox; return a process object.

    ``stdin=True`` opens a pipe (``p.stdin`` writes to it; close it to send EOF). ``env``
    adds variables; ``cwd`` is the working directory in the sandbox; ``user`` is a user
    name, ``"uid:gid"``, ``{"name": ...}`` or ``{"uid": ..., "gid": ...}``. Use it as a
    context manager so that the process cannot outlive your code by accident::

        async with await astart(client, ["cat"]) as p:
            await p.stdin.write("hello\\n")
            print(await anext(p.stdout))    # "hello", while stdin is still open
            await p.stdin.aclose()
            print(await p.wait())          # 0

    Managed processes: ``name`` (any characters but ``/``, not all digits), ``restart`` (a
    policy, ``"never"``, ``"on_failure"`` or ``"always"``, or a dict with ``policy``,
    ``max_restarts``, ``initial_backoff_ms``, ``max_backoff_ms``) and ``health_check`` (a dict:
    ``type`` ``"http"`` or ``"tcp"``, ``port``, ``path``, ``initial_delay_ms``, ``interval_ms``,
    ``timeout_ms``, ``failure_threshold``); any of them makes the sandbox supervise the
    process and restart it per the policy. A named one is found by its name (``p.name``).
    """
    client = check_client(client)
    spec = ProcessSpec.check(args, env, cwd, user)
    managed = ManagedOptions.check(name, restart, health_check)
    if not isinstance(stdin, bool):
        raise TypeError(f"stdin must be True or False, not {stdin!r}")
    body = managed.apply(spec.start_request(stdin=stdin))
    info = await sandbox_process_start.asyncio(client=client, body=body)
    writer = astdin_writer(client, info.pid) if stdin else None
    return AsyncRemoteProcess(client, info.pid, spec.args, stdin=writer, name=managed.name)


class _RunMissing(Exception):
    """The sandbox does not serve /processes/run (it answered 404 before starting anything)."""


class _Run:
    """Reads one /processes/run event stream (in the background); a broken stream is an error."""

    def __init__(
        self, client: SandboxClient, spec: ProcessSpec, timeout: float | None, on_line: OnLine | None = None
    ):
        self.client = client
        self.spec = spec
        self.timeout = timeout
        self.on_line = on_line
        self.pid: int | None = None
        self.out: list[str] = []
        self.err: list[str] = []
        self.exit: RunExitEvent | None = None
        self.returncode: int | None = None
        self.started = AsyncEvent()
        self.positions = Positions("output of the run")
        self.pieces = Reassembly()

    async def __call__(self) -> None:
        try:
            await self._read_run()
        except DROPS as exc:
            if self.pid is None:
                raise  # nothing was started
            raise self._dropped(f"{type(exc).__name__}: {exc}") from exc
        finally:
            self.started.set()

    async def _read_run(self) -> None:
        body = self.spec.run_request(self.timeout)
        async with sandbox_process_run.astream(
            client=self.client, body=body, timeout=stream_timeout(self.client)
        ) as response:
            async for sse in EventSource(response).aiter_sse():
                if sse.event == "gap":
                    self.positions.gap(sse.data, len(self.out) + len(self.err))
                    continue
                event = parse_run_event(sse.event, sse.data)
                if isinstance(event, OutputLine):
                    if self.positions.take(sse.id):
                        self._line(event, False)
                elif isinstance(event, ContinuedLine):
                    if self.positions.take(sse.id):
                        self._line(event.piece, True)
                elif isinstance(event, RunStartEvent):
                    self.pid = event.pid
                    self.started.set()
                elif isinstance(event, RunExitEvent):
                    self.exit = event
                    self.returncode = exit_returncode(event)
                    return
        raise self._dropped("it ended without an exit event")

    def _line(self, item: OutputLine, continued: bool) -> None:
        if continued or self.pieces.pending:
            whole = self.pieces.line(item.stream, item.line, continued)
            if whole is None:
                return
            item = OutputLine(item.stream, whole)
        (self.err if item.stream == "stderr" else self.out).append(item.line)
        if self.on_line is not None:
            self.on_line(item)

    def _dropped(self, why: str) -> SandboxError:
        where = f"process {self.pid}" if self.pid is not None else "the process"
        return SandboxConnectionError(
            f"the event stream of the run broke ({why}) after {len(self.out) + len(self.err)} output "
            f"lines; {where} is killed, since a run does not outlive its stream. To drive a process "
            "that must survive a dropped connection, use start() (its output streams resume)"
        )


@overload
async def arun(
    client: SandboxClient, args: list[str], *, text: Literal[True] = ..., **options: Unpack[RunOptions]
) -> subprocess.CompletedProcess[str]: ...
@overload
async def arun(
    client: SandboxClient, args: list[str], *, text: Literal[False], **options: Unpack[RunOptions]
) -> subprocess.CompletedProcess[bytes]: ...
async def arun(
    client: SandboxClient,
    args: list[str],
    *,
    input: object = None,
    timeout: float | None = None,
    check: bool = False,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    user: UserArg | None = None,
    text: bool = True,
) -> subprocess.CompletedProcess[Any]:
    """Run ``args`` in the sandbox, wait for it, return a `subprocess.CompletedProcess`.

    Like `subprocess.run` with ``capture_output=True``: ``stdout`` and ``stderr`` are text
    (``text=False``: UTF-8 bytes), ``returncode`` is the exit code, or -N when signal N
    ended the process. The sandbox captures output **by line** and strips terminators, so
    each line comes back followed by ``"\\n"``: ``"\\r\\n"`` becomes ``"\\n"``, and a missing
    final newline is added.

    Without ``input`` it is one request (``POST /api/v1/processes/run``); with ``input``
    (str, bytes or a binary file) the process is started with a stdin pipe, fed, and EOF
    is sent. ``timeout`` (seconds): when it expires, the remote process and everything it
    started are killed, then `subprocess.TimeoutExpired` is raised with the output so far.
    ``check=True`` raises `subprocess.CalledProcessError` for a non-zero return code. Any
    other exception (Ctrl-C included) kills the remote process before it propagates; so does
    a broken run event stream (`SandboxConnectionError`: a run's stream cannot be resumed;
    use `start` for a process that must survive a dropped connection). A sandbox that does
    not serve ``/processes/run`` gets start and follow instead.
    """
    client = check_client(client)
    spec = ProcessSpec.check(args, env, cwd, user)
    timeout = check_timeout(timeout)
    check_input(input)
    if input is None:
        try:
            return await _arun_stream(client, spec, timeout, text=text, check=check)
        except _RunMissing:
            pass  # a sandbox without /processes/run: start the process and follow it instead
    async with await astart(
        client, spec.args, stdin=input is not None, env=spec.env, cwd=spec.cwd, user=user
    ) as p:
        return await _acommunicate(p, input, timeout, text=text, check=check)


async def _acommunicate(
    p: AsyncRemoteProcess[Any], data: object, timeout: float | None, *, text: bool, check: bool
) -> subprocess.CompletedProcess[Any]:
    try:
        await p.communicate(data, timeout)
    except subprocess.TimeoutExpired as expired:
        await p.kill()
        await p.wait(KILL_GRACE)
        comm = p._communication
        assert comm is not None
        raise timeout_expired(p.args, expired.timeout, comm.out, comm.err, text) from None
    comm = p._communication
    assert comm is not None and p.returncode is not None
    return completed(p.args, p.returncode, comm.out, comm.err, text=text, check=check)


async def _arun_stream(
    client: SandboxClient,
    spec: ProcessSpec,
    timeout: float | None,
    *,
    text: bool,
    check: bool,
    on_line: OnLine | None = None,
) -> subprocess.CompletedProcess[Any]:
    state = _Run(client, spec, timeout, on_line)
    deadline = deadline_after(timeout)
    worker = AsyncWorker(state, "run")
    try:
        finished = await worker.join_until(deadline)
    except BaseException:
        await acleanup(lambda: _akill_run(client, state, worker))
        raise
    if worker.error is not None:
        if state.pid is None and is_missing(worker.error):
            raise _RunMissing from worker.error
        if state.returncode is None:
            await acleanup(lambda: _akill_run(client, state, worker))  # never leave it running
        raise worker.error
    if not finished or (state.exit is not None and timed_out(state.exit)):
        if not finished:
            await _akill_run(client, state, worker)
            await worker.join_until(deadline_after(KILL_GRACE))
        raise timeout_expired(spec.args, cast(float, timeout), state.out, state.err, text)
    assert state.returncode is not None
    return completed(spec.args, state.returncode, state.out, state.err, text=text, check=check)


async def arun_streaming(
    client: SandboxClient,
    args: list[str],
    on_line: OnLine,
    *,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> int:
    """`arun` without input that calls ``on_line`` with each `OutputLine` as it arrives (for the CLI).

    Returns the return code; raises `subprocess.TimeoutExpired` after killing the process.
    """
    client = check_client(client)
    spec = ProcessSpec.check(args, env, cwd, None)
    timeout = check_timeout(timeout)
    try:
        return (await _arun_stream(client, spec, timeout, text=True, check=False, on_line=on_line)).returncode
    except _RunMissing:
        pass
    async with await astart(client, spec.args, stdin=False, env=spec.env, cwd=spec.cwd) as p:
        p._communication = _Communication(p, None, on_line)
        return (await _acommunicate(p, None, timeout, text=True, check=False)).returncode


async def _akill_run(client: SandboxClient, state: _Run, worker: AsyncWorker) -> None:
    # The start event may still be on its way: the pid is needed to kill.
    await state.started.wait(KILL_GRACE)
    if state.pid is not None:
        await AsyncRemoteProcess(client, state.pid, state.spec.args, stdin=None).kill()
    # The stream ends once the process is gone; the rest of its output is not needed.
    await worker.settle(KILL_GRACE)
