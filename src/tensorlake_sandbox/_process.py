"""Drive a process in a sandbox the way `subprocess` drives a local one: `run`, `start`, `RemoteProcess`.

Output arrives over the follow endpoints (Server-Sent Events, parsed with httpx-sse from
the generated ``stream()`` functions); stdin goes through the streaming writer
(`StdinWriter`: in order, never twice). The async twins live in `_aprocess.py`; the rules
they share (argument checks, request bodies, event parsing, return codes) in
`_process_common.py`.

Output is captured by the sandbox **line by line**, without line terminators. Text is
rebuilt as each line followed by ``"\\n"``: a ``"\\r\\n"`` comes back as ``"\\n"``, and a last
line without a newline gets one. Undecodable bytes were already replaced by U+FFFD on the
sandbox.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, Generic, Literal, Self, TypeVar, Unpack, cast, overload

import httpx
from httpx_sse import EventSource, ServerSentEvent

from tensorlake_api_client.api.sandbox_processes import (
    sandbox_process_follow_output,
    sandbox_process_follow_stderr,
    sandbox_process_follow_stdout,
    sandbox_process_get,
    sandbox_process_kill,
    sandbox_process_run,
    sandbox_process_signal,
    sandbox_process_start,
)
from tensorlake_api_client.models import RunExitEvent, RunStartEvent, SendSignalRequest

from ._client import SandboxClient
from ._errors import (
    ProcessNotFoundError,
    SandboxError,
    SandboxUnavailableError,
    StdinNotWritableError,
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
from ._stdin import StdinWriter, stdin_writer

__all__ = ["LineStream", "RemoteProcess", "run", "start"]

T = TypeVar("T", str, OutputLine)

# A follow stream that drops is reopened this many times in a row (with backoff) before
# giving up; any line received in between resets the count.
FOLLOW_ATTEMPTS = 6
# How long the context manager waits for a process to end by itself before killing it.
EXIT_TIMEOUT = 5.0
# After a kill, how long to wait for the process's end to be reported.
_KILL_GRACE = 10.0

_FOLLOW = {
    "stdout": sandbox_process_follow_stdout,
    "stderr": sandbox_process_follow_stderr,
    "output": sandbox_process_follow_output,
}
# A dropped connection or an unavailable proxy: reopen the stream.
_DROPS = (httpx.TransportError, SandboxUnavailableError)


def stream_timeout(client: SandboxClient) -> httpx.Timeout:
    """The client's timeouts, except no read timeout: a process may stay silent for hours."""
    t = client.get_httpx_client().timeout
    return httpx.Timeout(connect=t.connect, read=None, write=t.write, pool=t.pool)


def follow_backoff(failures: int) -> float:
    return min(2.0, 0.05 * 2.0 ** (failures - 1))


class LineStream(Generic[T]):
    """Lines of one output stream of a process, as they arrive, until the process's output ends.

    An iterator (``for line in p.stdout``); lines come without their terminator. Over the
    follow endpoint, which replays every captured line from the start: when the connection
    drops, it is reopened and the lines already yielded are skipped by count, so none is
    repeated or lost (unless the sandbox dropped old lines from its capture buffer).
    ``count`` is the number of lines yielded so far.
    """

    def __init__(self, client: SandboxClient, pid: int, stream: StreamName):
        self._client = client
        self._pid = pid
        self._stream: StreamName = stream
        self.count = 0
        self._index = 0
        self._failures = 0
        self._done = False
        self._stack: contextlib.ExitStack | None = None
        self._events: Iterator[ServerSentEvent] | None = None

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> T:
        while True:
            if self._done:
                raise StopIteration
            if self._events is None:
                self._connect()
                continue
            try:
                sse = next(self._events)
            except StopIteration:
                self._dropped(None)  # closed without an eof event
                continue
            except _DROPS as exc:
                self._dropped(exc)
                continue
            try:
                item = parse_follow_event(sse.event, sse.data, self._stream)
            except ValueError:
                continue
            if item is None:
                self.close()
                raise StopIteration
            self._index += 1
            if self._index <= self.count:
                continue  # replayed: yielded before the connection dropped
            self.count += 1
            self._failures = 0
            return cast(T, item)

    def _connect(self) -> None:
        op = _FOLLOW[self._stream]
        stack = contextlib.ExitStack()
        try:
            response = stack.enter_context(
                op.stream(self._pid, client=self._client, timeout=stream_timeout(self._client))
            )
        except _DROPS as exc:
            stack.close()
            self._dropped(exc)
            return
        except BaseException:
            stack.close()
            self._done = True
            raise
        self._stack = stack
        self._events = EventSource(response).iter_sse()
        self._index = 0

    def _dropped(self, error: BaseException | None) -> None:
        self._close_connection()
        self._failures += 1
        if self._failures >= FOLLOW_ATTEMPTS:
            self._done = True
            why = f"{type(error).__name__}: {error}" if error is not None else "closed before its eof event"
            raise SandboxUnavailableError(
                f"following the {self._stream} of process {self._pid} failed {self._failures} times "
                f"in a row ({why}); {self.count} lines were received"
            ) from error
        time.sleep(follow_backoff(self._failures))

    def _close_connection(self) -> None:
        stack, self._stack, self._events = self._stack, None, None
        if stack is not None:
            with contextlib.suppress(Exception):
                stack.close()

    def close(self) -> None:
        """Stop following (closes the connection); iterating again yields nothing."""
        self._done = True
        self._close_connection()


class _Worker(threading.Thread):
    """Runs one function in a daemon thread and keeps its exception for the caller."""

    def __init__(self, target: Callable[[], None], name: str):
        super().__init__(name=name, daemon=True)
        self._fn = target
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._fn()
        except BaseException as exc:
            self.error = exc

    def join_until(self, deadline: float | None) -> bool:
        self.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not self.is_alive()


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _remaining(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - time.monotonic())


OnLine = Callable[[OutputLine], object]


class _Communication:
    """communicate()'s work, begun once: feed the input then EOF, and collect the output."""

    def __init__(self, proc: RemoteProcess, data: object, on_line: OnLine | None = None):
        self.on_line = on_line
        self.out: list[str] = []
        self.err: list[str] = []
        # Lines the caller already took from p.stdout / p.stderr are not returned again.
        skip = {"stdout": proc._taken("stdout"), "stderr": proc._taken("stderr")}
        self.feeder = _Worker(lambda: _feed(proc.stdin, data), f"stdin-{proc.pid}")
        self.reader = _Worker(lambda: self._read(proc, skip), f"output-{proc.pid}")
        self.feeder.start()
        self.reader.start()

    def _read(self, proc: RemoteProcess, skip: dict[str, int]) -> None:
        for item in LineStream[OutputLine](proc._client, proc.pid, "output"):
            if skip[item.stream]:
                skip[item.stream] -= 1
                continue
            (self.err if item.stream == "stderr" else self.out).append(item.line)
            if self.on_line is not None:
                self.on_line(item)

    def finish(self, deadline: float | None) -> bool:
        done = self.feeder.join_until(deadline) and self.reader.join_until(deadline)
        for worker in (self.feeder, self.reader):
            if worker.error is not None:
                raise worker.error
        return done


def _feed(writer: StdinWriter | None, data: object) -> None:
    if writer is None or writer.closed:
        return
    try:
        if data is not None:
            writer.write(data)
        writer.close()
    except (StdinNotWritableError, ProcessNotFoundError):
        pass  # the process exited or closed stdin before reading it all: like BrokenPipeError


class RemoteProcess:
    """A process started in a sandbox by `start`; shaped like `subprocess.Popen`.

    ``pid``, ``args``, ``stdin`` (a `StdinWriter`, None when started with ``stdin=False``),
    ``stdout`` / ``stderr`` (iterators of `str` lines as they arrive), ``output`` (both, as
    `OutputLine` ``(stream, line)`` tuples, in order), ``returncode`` (None until `poll`,
    `wait` or `communicate` saw the process end; -N when signal N ended it).

    As a context manager it never leaves the process running by accident. Leaving the
    block normally closes stdin, waits up to ``exit_timeout`` seconds (5 by default) for
    the process to end by itself, then kills it (SIGKILL); leaving it with an exception
    (Ctrl-C included) kills it at once. Either way the follow connections are closed.
    """

    exit_timeout: float = EXIT_TIMEOUT

    def __init__(self, client: SandboxClient, pid: int, args: list[str], *, stdin: StdinWriter | None):
        self._client = client
        self.pid = pid
        self.args = args
        self.stdin = stdin
        self.returncode: int | None = None
        self._streams: dict[str, LineStream[Any]] = {}
        self._communication: _Communication | None = None

    def __repr__(self) -> str:
        return f"<RemoteProcess pid={self.pid} args={self.args!r} returncode={self.returncode}>"

    # -- output -----------------------------------------------------------------------------

    def _stream(self, name: StreamName) -> LineStream[Any]:
        if name not in self._streams:
            self._streams[name] = LineStream[Any](self._client, self.pid, name)
        return self._streams[name]

    def _taken(self, name: StreamName) -> int:
        stream = self._streams.get(name)
        return stream.count if stream is not None else 0

    @property
    def stdout(self) -> LineStream[str]:
        """The process's stdout lines as they arrive (replayed from the start the first time)."""
        return self._stream("stdout")

    @property
    def stderr(self) -> LineStream[str]:
        """The process's stderr lines as they arrive."""
        return self._stream("stderr")

    @property
    def output(self) -> LineStream[OutputLine]:
        """stdout and stderr lines in the order the sandbox captured them, as ``(stream, line)``."""
        return self._stream("output")

    # -- status -----------------------------------------------------------------------------

    def poll(self) -> int | None:
        """The return code if the process has ended, else None (one request)."""
        if self.returncode is None:
            info = sandbox_process_get.sync(self.pid, client=self._client)
            self.returncode = returncode_of(info)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to end and return its return code.

        Polls its status with backoff (20 ms growing to 0.5 s). Raises
        `subprocess.TimeoutExpired` after ``timeout`` seconds; the process keeps running.
        """
        timeout = check_timeout(timeout)
        code = self._wait_until(_deadline(timeout))
        if code is None:
            raise subprocess.TimeoutExpired(self.args, cast(float, timeout))
        return code

    def _wait_until(self, deadline: float | None) -> int | None:
        delay = 0.02
        while (code := self.poll()) is None:
            left = _remaining(deadline)
            if left is not None and left <= 0:
                return None
            time.sleep(delay if left is None else min(delay, left))
            delay = min(0.5, delay * 1.5)
        return code

    def communicate(self, input: object = None, timeout: float | None = None) -> tuple[str, str]:
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
        deadline = _deadline(timeout)
        if self._communication is None:
            self._communication = _Communication(self, input)
        elif input is not None:
            raise ValueError("communicate() was already called with input: it is not sent twice")
        comm = self._communication
        if not comm.finish(deadline):
            raise timeout_expired(self.args, cast(float, timeout), comm.out, comm.err, True)
        if self._wait_until(deadline) is None:
            raise timeout_expired(self.args, cast(float, timeout), comm.out, comm.err, True)
        return join(comm.out), join(comm.err)

    # -- signals ----------------------------------------------------------------------------

    def send_signal(self, sig: int) -> None:
        """Send signal ``sig`` (e.g. ``signal.SIGTERM``); nothing happens once the process has ended."""
        if isinstance(sig, bool) or not isinstance(sig, int) or sig <= 0:
            raise ValueError(f"sig must be a positive signal number such as signal.SIGTERM, not {sig!r}")
        if self.returncode is not None:
            return
        try:
            sandbox_process_signal.sync_detailed(
                self.pid, client=self._client, body=SendSignalRequest(signal=int(sig))
            )
        except SandboxError:
            if self.poll() is None:
                raise

    def terminate(self) -> None:
        """SIGTERM."""
        import signal

        self.send_signal(int(signal.SIGTERM))

    def kill(self) -> None:
        """Kill the process and everything it started (SIGKILL to its process group)."""
        if self.returncode is not None:
            return
        try:
            sandbox_process_kill.sync_detailed(self.pid, client=self._client)
        except SandboxError:
            if self.poll() is None:
                raise

    # -- context manager ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the follow connections (the process is left as it is)."""
        for stream in self._streams.values():
            stream.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if exc is None:
                self._end_gently()
            else:
                self._end_now(exc)
        finally:
            self.close()

    def _end_gently(self) -> None:
        if self.stdin is not None and not self.stdin.closed:
            with contextlib.suppress(StdinNotWritableError, ProcessNotFoundError):
                self.stdin.close()
        try:
            self.wait(self.exit_timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.wait(_KILL_GRACE)

    def _end_now(self, exc: BaseException) -> None:
        try:
            self.kill()
        except Exception as kill_error:
            exc.add_note(f"killing process {self.pid} also failed: {kill_error}")


def join(lines: list[str]) -> str:
    return "".join(f"{line}\n" for line in lines)


# -- start and run ------------------------------------------------------------------------------


def start(
    client: SandboxClient,
    args: list[str],
    *,
    stdin: bool = True,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
    user: UserArg | None = None,
) -> RemoteProcess:
    """Start ``args`` (``[program, *arguments]``) in the sandbox; return a `RemoteProcess`.

    ``stdin=True`` opens a pipe (``p.stdin`` writes to it; close it to send EOF). ``env``
    adds variables; ``cwd`` is the working directory in the sandbox; ``user`` is a user
    name, ``"uid:gid"``, ``{"name": ...}`` or ``{"uid": ..., "gid": ...}``. Use it as a
    context manager so that the process cannot outlive your code by accident::

        with start(client, ["cat"]) as p:
            p.stdin.write("hello\\n")
            print(next(p.stdout))    # "hello", while stdin is still open
            p.stdin.close()
            print(p.wait())          # 0
    """
    client = check_client(client)
    spec = ProcessSpec.check(args, env, cwd, user)
    if not isinstance(stdin, bool):
        raise TypeError(f"stdin must be True or False, not {stdin!r}")
    info = sandbox_process_start.sync(client=client, body=spec.start_request(stdin=stdin))
    writer = stdin_writer(client, info.pid) if stdin else None
    return RemoteProcess(client, info.pid, spec.args, stdin=writer)


def _is_missing(error: BaseException) -> bool:
    return isinstance(error, SandboxError) and error.status_code in (404, 405)


class _RunMissing(Exception):
    """The sandbox does not serve /processes/run (it answered 404 before starting anything)."""


class _Run:
    """Reads one /processes/run event stream (in a helper thread); a broken stream is an error."""

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
        self.started = threading.Event()

    def __call__(self) -> None:
        try:
            self._read_run()
        except _DROPS as exc:
            if self.pid is None:
                raise  # nothing was started
            raise self._dropped(f"{type(exc).__name__}: {exc}") from exc
        finally:
            self.started.set()

    def _read_run(self) -> None:
        body = self.spec.run_request(self.timeout)
        with sandbox_process_run.stream(
            client=self.client, body=body, timeout=stream_timeout(self.client)
        ) as response:
            for sse in EventSource(response).iter_sse():
                event = parse_run_event(sse.event, sse.data)
                if isinstance(event, RunStartEvent):
                    self.pid = event.pid
                    self.started.set()
                elif isinstance(event, OutputLine):
                    self._line(event)
                elif isinstance(event, RunExitEvent):
                    self.exit = event
                    self.returncode = exit_returncode(event)
                    return
        raise self._dropped("it ended without an exit event")

    def _line(self, item: OutputLine) -> None:
        (self.err if item.stream == "stderr" else self.out).append(item.line)
        if self.on_line is not None:
            self.on_line(item)

    def _dropped(self, why: str) -> SandboxError:
        where = f"process {self.pid}" if self.pid is not None else "the process"
        return SandboxUnavailableError(
            f"the event stream of the run broke ({why}) after {len(self.out) + len(self.err)} output "
            f"lines; {where} is killed, since a run does not outlive its stream. To drive a process "
            "that must survive a dropped connection, use start() (its output streams resume)"
        )


@overload
def run(
    client: SandboxClient, args: list[str], *, text: Literal[True] = ..., **options: Unpack[RunOptions]
) -> subprocess.CompletedProcess[str]: ...
@overload
def run(
    client: SandboxClient, args: list[str], *, text: Literal[False], **options: Unpack[RunOptions]
) -> subprocess.CompletedProcess[bytes]: ...
def run(
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
    a broken run event stream (`SandboxUnavailableError`: a run's stream cannot be resumed;
    use `start` for a process that must survive a dropped connection). A sandbox that does
    not serve ``/processes/run`` gets start and follow instead.
    """
    client = check_client(client)
    spec = ProcessSpec.check(args, env, cwd, user)
    timeout = check_timeout(timeout)
    check_input(input)
    if input is None:
        try:
            return _run_stream(client, spec, timeout, text=text, check=check)
        except _RunMissing:
            pass  # a sandbox without /processes/run: start the process and follow it instead
    with start(client, spec.args, stdin=input is not None, env=spec.env, cwd=spec.cwd, user=user) as p:
        return _communicate(p, input, timeout, text=text, check=check)


def _communicate(
    p: RemoteProcess, data: object, timeout: float | None, *, text: bool, check: bool
) -> subprocess.CompletedProcess[Any]:
    try:
        p.communicate(data, timeout)
    except subprocess.TimeoutExpired as expired:
        p.kill()
        p.wait(_KILL_GRACE)
        comm = p._communication
        assert comm is not None
        raise timeout_expired(p.args, expired.timeout, comm.out, comm.err, text) from None
    comm = p._communication
    assert comm is not None and p.returncode is not None
    return completed(p.args, p.returncode, comm.out, comm.err, text=text, check=check)


def _run_stream(
    client: SandboxClient,
    spec: ProcessSpec,
    timeout: float | None,
    *,
    text: bool,
    check: bool,
    on_line: OnLine | None = None,
) -> subprocess.CompletedProcess[Any]:
    state = _Run(client, spec, timeout, on_line)
    worker = _Worker(state, "run")
    deadline = _deadline(timeout)
    worker.start()
    try:
        finished = worker.join_until(deadline)
    except BaseException:
        _kill_run(client, state)
        raise
    if worker.error is not None:
        if state.pid is None and _is_missing(worker.error):
            raise _RunMissing from worker.error
        if state.returncode is None:
            _kill_run(client, state)  # never leave it running after a failure here
        raise worker.error
    if not finished or (state.exit is not None and timed_out(state.exit)):
        if not finished:
            _kill_run(client, state)
            worker.join_until(_deadline(_KILL_GRACE))
        raise timeout_expired(spec.args, cast(float, timeout), state.out, state.err, text)
    assert state.returncode is not None
    return completed(spec.args, state.returncode, state.out, state.err, text=text, check=check)


def run_streaming(
    client: SandboxClient,
    args: list[str],
    on_line: OnLine,
    *,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> int:
    """`run` without input that calls ``on_line`` with each `OutputLine` as it arrives (for the CLI).

    Returns the return code; raises `subprocess.TimeoutExpired` after killing the process.
    """
    client = check_client(client)
    spec = ProcessSpec.check(args, env, cwd, None)
    timeout = check_timeout(timeout)
    try:
        return _run_stream(client, spec, timeout, text=True, check=False, on_line=on_line).returncode
    except _RunMissing:
        pass
    with start(client, spec.args, stdin=False, env=spec.env, cwd=spec.cwd) as p:
        p._communication = _Communication(p, None, on_line)
        return _communicate(p, None, timeout, text=True, check=False).returncode


def _kill_run(client: SandboxClient, state: _Run) -> None:
    # The start event may still be on its way: the pid is needed to kill.
    state.started.wait(_KILL_GRACE)
    if state.pid is not None:
        RemoteProcess(client, state.pid, state.spec.args, stdin=None).kill()
