"""Async twins of `_process.py`: `arun`, `astart`, `AsyncRemoteProcess`, `AsyncLineStream`.

The same rules (see `_process.py`); where the sync layer uses a helper thread and a join
with a deadline, this one uses a task and `asyncio.wait`. The pure rules are shared in
`_process_common.py`; the I/O is written twice. When the project generates its sync code
from async sources (unasync, as planned for `_stdin.py`), this module is the one to keep and
`_process.py` the one to generate; the thread-versus-task difference then becomes one small
backend helper.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import Any, Generic, Literal, Self, TypeVar, Unpack, cast, overload

from httpx_sse import EventSource, ServerSentEvent

from tensorlake_api_client.api.sandbox_processes import (
    sandbox_process_get,
    sandbox_process_kill,
    sandbox_process_run,
    sandbox_process_signal,
    sandbox_process_start,
)
from tensorlake_api_client.models import RunExitEvent, RunStartEvent, SendSignalRequest

from ._client import SandboxClient
from ._errors import ProcessNotFoundError, SandboxError, SandboxUnavailableError, StdinNotWritableError
from ._process import (
    _DROPS,
    _FOLLOW,
    _KILL_GRACE,
    EXIT_TIMEOUT,
    FOLLOW_ATTEMPTS,
    _is_missing,
    follow_backoff,
    join,
    stream_timeout,
)
from ._process_common import (
    OutputLine,
    ProcessSpec,
    RunOptions,
    StreamName,
    UserArg,
    check_client,
    check_input,
    check_timeout,
    completed,
    exit_returncode,
    parse_follow_event,
    parse_run_event,
    returncode_of,
    timed_out,
    timeout_expired,
)
from ._stdin import AsyncStdinWriter, astdin_writer

__all__ = ["AsyncLineStream", "AsyncRemoteProcess", "arun", "astart"]

T = TypeVar("T", str, OutputLine)


class AsyncLineStream(Generic[T]):
    """Async `LineStream`: ``async for line in p.stdout``; resumes a dropped stream the same way."""

    def __init__(self, client: SandboxClient, pid: int, stream: StreamName):
        self._client = client
        self._pid = pid
        self._stream: StreamName = stream
        self.count = 0
        self._index = 0
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
                await self._dropped(None)
                continue
            except _DROPS as exc:
                await self._dropped(exc)
                continue
            try:
                item = parse_follow_event(sse.event, sse.data, self._stream)
            except ValueError:
                continue
            if item is None:
                await self.aclose()
                raise StopAsyncIteration
            self._index += 1
            if self._index <= self.count:
                continue
            self.count += 1
            self._failures = 0
            return cast(T, item)

    async def _connect(self) -> None:
        op = _FOLLOW[self._stream]
        stack = contextlib.AsyncExitStack()
        try:
            response = await stack.enter_async_context(
                op.astream(self._pid, client=self._client, timeout=stream_timeout(self._client))
            )
        except _DROPS as exc:
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
            raise SandboxUnavailableError(
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
        """Stop following (closes the connection)."""
        self._done = True
        await self._close_connection()


class _Communication:
    def __init__(self, proc: AsyncRemoteProcess, data: object):
        self.out: list[str] = []
        self.err: list[str] = []
        skip = {"stdout": proc._taken("stdout"), "stderr": proc._taken("stderr")}
        self.tasks = [
            asyncio.ensure_future(_feed(proc.stdin, data)),
            asyncio.ensure_future(self._read(proc, skip)),
        ]

    async def _read(self, proc: AsyncRemoteProcess, skip: dict[str, int]) -> None:
        async for stream, line in AsyncLineStream[OutputLine](proc._client, proc.pid, "output"):
            if skip[stream]:
                skip[stream] -= 1
            else:
                (self.err if stream == "stderr" else self.out).append(line)

    async def finish(self, timeout: float | None) -> bool:
        _, pending = await asyncio.wait(self.tasks, timeout=timeout)
        for task in self.tasks:
            if task.done() and task.exception() is not None:
                raise cast(BaseException, task.exception())
        return not pending

    async def cancel(self) -> None:
        for task in self.tasks:
            task.cancel()
        # Wait for them, so that their connections are closed before the client is.
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def _feed(writer: AsyncStdinWriter | None, data: object) -> None:
    if writer is None or writer.closed:
        return
    try:
        if data is not None:
            await writer.write(data)
        await writer.close()
    except (StdinNotWritableError, ProcessNotFoundError):
        pass


def _loop_time() -> float:
    return asyncio.get_running_loop().time()


class AsyncRemoteProcess:
    """Async `RemoteProcess` (from `astart`): the same attributes, awaitable methods, ``async with``.

    ``stdout`` / ``stderr`` / ``output`` are async iterators; ``stdin`` is an
    `AsyncStdinWriter`. ``async with`` follows the same rule as the sync context manager.
    """

    exit_timeout: float = EXIT_TIMEOUT

    def __init__(self, client: SandboxClient, pid: int, args: list[str], *, stdin: AsyncStdinWriter | None):
        self._client = client
        self.pid = pid
        self.args = args
        self.stdin = stdin
        self.returncode: int | None = None
        self._streams: dict[str, AsyncLineStream[Any]] = {}
        self._communication: _Communication | None = None

    def __repr__(self) -> str:
        return f"<AsyncRemoteProcess pid={self.pid} args={self.args!r} returncode={self.returncode}>"

    def _stream(self, name: StreamName) -> AsyncLineStream[Any]:
        if name not in self._streams:
            self._streams[name] = AsyncLineStream[Any](self._client, self.pid, name)
        return self._streams[name]

    def _taken(self, name: StreamName) -> int:
        stream = self._streams.get(name)
        return stream.count if stream is not None else 0

    @property
    def stdout(self) -> AsyncLineStream[str]:
        """stdout lines as they arrive."""
        return self._stream("stdout")

    @property
    def stderr(self) -> AsyncLineStream[str]:
        """stderr lines as they arrive."""
        return self._stream("stderr")

    @property
    def output(self) -> AsyncLineStream[OutputLine]:
        """Both, in capture order, as ``(stream, line)``."""
        return self._stream("output")

    async def poll(self) -> int | None:
        """The return code if the process has ended, else None (one request)."""
        if self.returncode is None:
            info = await sandbox_process_get.asyncio(self.pid, client=self._client)
            self.returncode = returncode_of(info)
        return self.returncode

    async def wait(self, timeout: float | None = None) -> int:
        """Wait for the end (polling with backoff); `subprocess.TimeoutExpired` after ``timeout``."""
        timeout = check_timeout(timeout)
        code = await self._wait_until(None if timeout is None else _loop_time() + timeout)
        if code is None:
            raise subprocess.TimeoutExpired(self.args, cast(float, timeout))
        return code

    async def _wait_until(self, deadline: float | None) -> int | None:
        delay = 0.02
        while (code := await self.poll()) is None:
            left = None if deadline is None else deadline - _loop_time()
            if left is not None and left <= 0:
                return None
            await asyncio.sleep(delay if left is None else min(delay, left))
            delay = min(0.5, delay * 1.5)
        return code

    async def communicate(self, input: object = None, timeout: float | None = None) -> tuple[str, str]:
        """Async `RemoteProcess.communicate`: the same rules."""
        timeout = check_timeout(timeout)
        check_input(input)
        if input is not None and self.stdin is None:
            raise ValueError("input was given, but the process was started with stdin=False")
        deadline = None if timeout is None else _loop_time() + timeout
        if self._communication is None:
            self._communication = _Communication(self, input)
        elif input is not None:
            raise ValueError("communicate() was already called with input: it is not sent twice")
        comm = self._communication
        if not await comm.finish(timeout):
            raise timeout_expired(self.args, cast(float, timeout), comm.out, comm.err, True)
        if await self._wait_until(deadline) is None:
            raise timeout_expired(self.args, cast(float, timeout), comm.out, comm.err, True)
        return join(comm.out), join(comm.err)

    async def send_signal(self, sig: int) -> None:
        """Send signal ``sig``; nothing happens once the process has ended."""
        if isinstance(sig, bool) or not isinstance(sig, int) or sig <= 0:
            raise ValueError(f"sig must be a positive signal number such as signal.SIGTERM, not {sig!r}")
        if self.returncode is not None:
            return
        try:
            await sandbox_process_signal.asyncio_detailed(
                self.pid, client=self._client, body=SendSignalRequest(signal=int(sig))
            )
        except SandboxError:
            if await self.poll() is None:
                raise

    async def terminate(self) -> None:
        """SIGTERM."""
        await self.send_signal(int(signal.SIGTERM))

    async def kill(self) -> None:
        """Kill the process and everything it started (SIGKILL to its process group)."""
        if self.returncode is not None:
            return
        try:
            await sandbox_process_kill.asyncio_detailed(self.pid, client=self._client)
        except SandboxError:
            if await self.poll() is None:
                raise

    async def aclose(self) -> None:
        """Close the follow connections and stop communicate()'s tasks (the process is left as is)."""
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
                await self.stdin.close()
        try:
            await self.wait(self.exit_timeout)
        except subprocess.TimeoutExpired:
            await self.kill()
            await self.wait(_KILL_GRACE)

    async def _end_now(self, exc: BaseException) -> None:
        try:
            # Shielded: a cancelled task must still kill what it started.
            await asyncio.shield(self.kill())
        except Exception as kill_error:
            exc.add_note(f"killing process {self.pid} also failed: {kill_error}")


async def astart(
    client: SandboxClient,
    args: list[str],
    *,
    stdin: bool = True,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    user: UserArg | None = None,
) -> AsyncRemoteProcess:
    """Async `start`: ``async with await astart(client, ["cat"]) as p: ...``."""
    client = check_client(client)
    spec = ProcessSpec.check(args, env, cwd, user)
    if not isinstance(stdin, bool):
        raise TypeError(f"stdin must be True or False, not {stdin!r}")
    info = await sandbox_process_start.asyncio(client=client, body=spec.start_request(stdin=stdin))
    writer = astdin_writer(client, info.pid) if stdin else None
    return AsyncRemoteProcess(client, info.pid, spec.args, stdin=writer)


class _RunMissing(Exception):
    pass


class _ARun:
    def __init__(self, client: SandboxClient, spec: ProcessSpec, timeout: float | None):
        self.client = client
        self.spec = spec
        self.timeout = timeout
        self.pid: int | None = None
        self.out: list[str] = []
        self.err: list[str] = []
        self.exit: RunExitEvent | None = None
        self.returncode: int | None = None
        self.started = asyncio.Event()

    async def __call__(self) -> None:
        try:
            await self._read_run()
        except _DROPS as exc:
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
                event = parse_run_event(sse.event, sse.data)
                if isinstance(event, RunStartEvent):
                    self.pid = event.pid
                    self.started.set()
                elif isinstance(event, OutputLine):
                    (self.err if event.stream == "stderr" else self.out).append(event.line)
                elif isinstance(event, RunExitEvent):
                    self.exit = event
                    self.returncode = exit_returncode(event)
                    return
        raise self._dropped("it ended without an exit event")

    def _dropped(self, why: str) -> SandboxError:
        where = f"process {self.pid}" if self.pid is not None else "the process"
        return SandboxUnavailableError(
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
    """Async `run`: the same arguments, results and rules (cancellation kills the remote process)."""
    client = check_client(client)
    spec = ProcessSpec.check(args, env, cwd, user)
    timeout = check_timeout(timeout)
    check_input(input)
    if input is None:
        try:
            return await _arun_stream(client, spec, timeout, text=text, check=check)
        except _RunMissing:
            pass
    p = await astart(client, spec.args, stdin=input is not None, env=spec.env, cwd=spec.cwd, user=user)
    async with p:
        try:
            await p.communicate(input, timeout)
        except subprocess.TimeoutExpired as expired:
            await p.kill()
            await p.wait(_KILL_GRACE)
            comm = p._communication
            assert comm is not None
            raise timeout_expired(spec.args, expired.timeout, comm.out, comm.err, text) from None
        comm = p._communication
        assert comm is not None and p.returncode is not None
        return completed(spec.args, p.returncode, comm.out, comm.err, text=text, check=check)


async def _arun_stream(
    client: SandboxClient, spec: ProcessSpec, timeout: float | None, *, text: bool, check: bool
) -> subprocess.CompletedProcess[Any]:
    state = _ARun(client, spec, timeout)
    task = asyncio.ensure_future(state())
    try:
        done, _ = await asyncio.wait([task], timeout=timeout)
    except BaseException:
        await _shielded(lambda: _akill_run(client, state, task))
        raise
    if task.done() and task.exception() is not None:
        error = cast(BaseException, task.exception())
        if state.pid is None and _is_missing(error):
            raise _RunMissing from error
        if state.returncode is None:
            await _shielded(lambda: _akill_run(client, state, task))  # never leave it running
        raise error
    if not done or (state.exit is not None and timed_out(state.exit)):
        if not done:
            await _akill_run(client, state, task)
        raise timeout_expired(spec.args, cast(float, timeout), state.out, state.err, text)
    assert state.returncode is not None
    return completed(spec.args, state.returncode, state.out, state.err, text=text, check=check)


async def _shielded(fn: Callable[[], Awaitable[None]]) -> None:
    with contextlib.suppress(Exception):
        await asyncio.shield(fn())


async def _akill_run(client: SandboxClient, state: _ARun, task: asyncio.Future[None]) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(state.started.wait(), _KILL_GRACE)
    if state.pid is not None:
        await AsyncRemoteProcess(client, state.pid, state.spec.args, stdin=None).kill()
    # The stream ends once the process is gone; the rest of its output is not needed.
    _, pending = await asyncio.wait([task], timeout=_KILL_GRACE)
    for t in pending:
        t.cancel()
    with contextlib.suppress(BaseException):
        await task
