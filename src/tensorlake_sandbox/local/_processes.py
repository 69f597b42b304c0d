"""The process table: the processes a local sandbox started, their stdin pipes and captured output.

Everything here runs on the server's event loop. A process is started in its own session
(so that killing it also kills what it started), its stdout and stderr are read line by
line into memory, and its status turns final only once both readers reached end of file,
so a client that sees ``exited`` also sees all of the output.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal as _signal
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "CapturedLines",
    "ManagedProcess",
    "OutputLine",
    "ProcessTable",
    "StartError",
    "StdinNotWritable",
    "StreamName",
]

StreamName = Literal["stdout", "stderr", "output"]

# Bytes read from a pipe at a time, and the longest line kept whole (a longer one is split).
_READ_CHUNK = 64 * 1024
_MAX_LINE = 1024 * 1024
# Captured output kept per stream (roughly, in characters); older lines are dropped beyond it.
_CAPTURE_BUDGET = 32 * 1024 * 1024
# How long a finished process waits for its output pipes to reach end of file. Something
# it started in the background may hold them open; its status must not wait for that forever.
_DRAIN_GRACE = 2.0
# Signals accepted by the signal endpoint.
_VALID_SIGNALS = frozenset(int(s) for s in _signal.valid_signals() if 0 < int(s) < _signal.NSIG)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class StartError(Exception):
    """The process could not be started (no such command, bad working directory, bad arguments)."""


class StdinNotWritable(Exception):
    """The process's stdin is not an open pipe: never opened, closed, or the process has exited."""


@dataclass(frozen=True, slots=True)
class OutputLine:
    """One captured line, without its line ending."""

    stream: Literal["stdout", "stderr"]
    line: str
    timestamp: int


class CapturedLines:
    """The captured lines of one stream, oldest first, kept within a byte budget.

    When the budget is exceeded the oldest lines are dropped; `first` is the absolute index
    of the oldest line kept, so a follower can tell how far it is.
    """

    def __init__(self, budget: int = _CAPTURE_BUDGET) -> None:
        self.entries: list[OutputLine] = []
        self.first = 0
        self._bytes = 0
        self._budget = budget

    def __len__(self) -> int:
        """The absolute index one past the newest line."""
        return self.first + len(self.entries)

    def append(self, entry: OutputLine) -> None:
        self.entries.append(entry)
        self._bytes += len(entry.line) + 64
        if self._bytes > self._budget:
            drop = 0
            while self._bytes > self._budget * 3 // 4 and drop < len(self.entries):
                self._bytes -= len(self.entries[drop].line) + 64
                drop += 1
            del self.entries[:drop]
            self.first += drop

    def since(self, index: int) -> tuple[int, list[OutputLine]]:
        """Lines from absolute ``index`` on (from the oldest kept, if those were dropped)."""
        start = max(index, self.first)
        return start, self.entries[start - self.first :]


class ManagedProcess:
    """One process started by the local sandbox."""

    def __init__(
        self,
        proc: asyncio.subprocess.Process,
        *,
        handle: int,
        command: str,
        args: list[str],
        stdin_pipe: bool,
    ) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.handle = handle
        self.command = command
        self.args = args
        self.stdin_pipe = stdin_pipe
        self.started_at = _now_ms()
        self.ended_at: int | None = None
        self.status = "running"
        self.exit_code: int | None = None
        self.signal: int | None = None
        # Serializes stdin writes and closes: requests are applied in arrival order.
        self.stdin_lock = asyncio.Lock()
        self._stdin_closed = not stdin_pipe
        self.lines: dict[StreamName, CapturedLines] = {
            "stdout": CapturedLines(),
            "stderr": CapturedLines(),
            "output": CapturedLines(2 * _CAPTURE_BUDGET),
        }
        self._changed = asyncio.Event()
        self._finished = asyncio.Event()
        self._readers_done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- state ------------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """True once the status is final (``exited`` or ``signaled``)."""
        return self._finished.is_set()

    @property
    def stdin_writable(self) -> bool:
        writer = self.proc.stdin
        return (
            not self._stdin_closed
            and writer is not None
            and not writer.is_closing()
            and self.proc.returncode is None
        )

    def info(self) -> dict[str, Any]:
        """The ProcessInfo JSON object."""
        return {
            "handle": self.handle,
            "pid": self.pid,
            "status": self.status,
            "exit_code": self.exit_code,
            "signal": self.signal,
            "stdin_writable": self.stdin_writable,
            "command": self.command,
            "args": list(self.args),
            "started_at": self.started_at,
            "ended_at": self.ended_at,
        }

    # -- output -----------------------------------------------------------------------------

    def _add_line(self, stream: Literal["stdout", "stderr"], raw: bytes) -> None:
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        entry = OutputLine(stream, raw.decode("utf-8", "replace"), _now_ms())
        self.lines[stream].append(entry)
        self.lines["output"].append(entry)
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _read(self, reader: asyncio.StreamReader, stream: Literal["stdout", "stderr"]) -> None:
        buf = bytearray()
        while True:
            chunk = await reader.read(_READ_CHUNK)
            if not chunk:
                break
            start = len(buf)
            buf += chunk
            while (i := buf.find(b"\n", start)) >= 0:
                self._add_line(stream, bytes(buf[:i]))
                del buf[: i + 1]
                start = 0
            while len(buf) >= _MAX_LINE:
                self._add_line(stream, bytes(buf[:_MAX_LINE]))
                del buf[:_MAX_LINE]
        if buf:
            self._add_line(stream, bytes(buf))

    async def _run(self) -> None:
        readers = []
        if self.proc.stdout is not None:
            readers.append(asyncio.create_task(self._read(self.proc.stdout, "stdout")))
        if self.proc.stderr is not None:
            readers.append(asyncio.create_task(self._read(self.proc.stderr, "stderr")))
        readers_done = asyncio.gather(*readers, return_exceptions=True)
        returncode = await self.proc.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(readers_done), _DRAIN_GRACE)
        if returncode < 0:
            self.status, self.signal = "signaled", -returncode
        else:
            self.status, self.exit_code = "exited", returncode
        self.ended_at = _now_ms()
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self._finished.set()
        self._notify()
        await readers_done
        self._readers_done.set()

    async def follow(self, stream: StreamName) -> AsyncIterator[OutputLine]:
        """Captured lines of ``stream``, then live ones, until the process finished and is drained."""
        i = 0
        while True:
            i, new = self.lines[stream].since(i)
            for entry in new:
                yield entry
                i += 1
            if i < len(self.lines[stream]):
                continue
            if self.finished:
                return
            await self._changed.wait()

    # -- stdin ------------------------------------------------------------------------------

    async def write_stdin(self, chunk: bytes) -> None:
        """Write and wait until the pipe takes it (backpressure). Call with `stdin_lock` held."""
        writer = self.proc.stdin
        if writer is None or not self.stdin_writable:
            raise StdinNotWritable
        try:
            writer.write(chunk)
            await writer.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise StdinNotWritable from exc

    async def close_stdin(self) -> None:
        """Deliver EOF to the process; closing twice is fine. Call with `stdin_lock` held."""
        if not self.stdin_pipe:
            raise StdinNotWritable
        self._stdin_closed = True
        writer = self.proc.stdin
        if writer is not None and not writer.is_closing():
            writer.close()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                await writer.wait_closed()

    # -- signals ----------------------------------------------------------------------------

    def send_signal(self, sig: int) -> None:
        """Signal the process itself. Raises ValueError for an invalid signal or a finished process."""
        if sig not in _VALID_SIGNALS:
            raise ValueError(f"invalid signal {sig}")
        if self.proc.returncode is not None:
            raise ValueError(f"process {self.pid} is not running")
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            raise ValueError(f"process {self.pid} is not running") from None

    def kill(self) -> None:
        """SIGKILL the process and everything in its session (no error when already gone)."""
        # While the leader is unreaped, or something in its group still holds its output
        # pipes, the pid is still this group's and cannot name another process group.
        if self.proc.returncode is None or not self._readers_done.is_set():
            try:
                os.killpg(self.pid, _signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                if self.proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.pid, _signal.SIGKILL)

    async def wait_finished(self) -> None:
        await self._finished.wait()


def _mode(spec: Mapping[str, Any], key: str, allowed: tuple[str, str]) -> str:
    if key not in spec:
        return allowed[0]
    value = spec[key]
    if value not in allowed:
        raise ValueError(f"{key} must be one of {', '.join(allowed)}")
    return str(value)


@dataclass(frozen=True, slots=True)
class StartSpec:
    """A validated StartProcessRequest."""

    command: str
    args: list[str]
    env: dict[str, str]
    working_dir: str | None
    stdin_pipe: bool
    capture_stdout: bool
    capture_stderr: bool

    @classmethod
    def parse(cls, body: Any) -> StartSpec:
        """Validate a decoded JSON body; raises ValueError with a message for the client."""
        if not isinstance(body, dict):
            raise ValueError("the body must be a JSON object")
        command = body.get("command")
        if not isinstance(command, str):
            raise ValueError("command is required and must be a string")
        args = body.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise ValueError("args must be an array of strings")
        env = body.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            raise ValueError("env must be an object of strings")
        for key, value in env.items():
            if not key or "=" in key or "\0" in key or "\0" in value:
                raise ValueError(f"invalid environment variable {key!r}")
        working_dir = body.get("working_dir")
        if working_dir is not None and not isinstance(working_dir, str):
            raise ValueError("working_dir must be a string or null")
        if any("\0" in s for s in (command, *args, working_dir or "")):
            raise ValueError("command, args and working_dir must not contain NUL characters")
        return cls(
            command=command,
            args=list(args),
            env=dict(env),
            working_dir=working_dir,
            stdin_pipe=_mode(body, "stdin_mode", ("closed", "pipe")) == "pipe",
            capture_stdout=_mode(body, "stdout_mode", ("capture", "discard")) == "capture",
            capture_stderr=_mode(body, "stderr_mode", ("capture", "discard")) == "capture",
        )


class ProcessTable:
    """The processes of one local sandbox, by pid. Finished processes stay listed."""

    def __init__(self) -> None:
        self._by_pid: dict[int, ManagedProcess] = {}
        self._next_handle = 1

    def __iter__(self) -> Any:
        return iter(list(self._by_pid.values()))

    def get(self, pid: int) -> ManagedProcess | None:
        return self._by_pid.get(pid)

    async def start(self, spec: StartSpec) -> ManagedProcess:
        """Start a process; raises StartError when it cannot run."""
        if spec.working_dir is not None and not os.path.isdir(spec.working_dir):
            raise StartError(f"working_dir {spec.working_dir!r} is not a directory")
        pipe, devnull = asyncio.subprocess.PIPE, asyncio.subprocess.DEVNULL
        try:
            proc = await asyncio.create_subprocess_exec(
                spec.command,
                *spec.args,
                stdin=pipe if spec.stdin_pipe else devnull,
                stdout=pipe if spec.capture_stdout else devnull,
                stderr=pipe if spec.capture_stderr else devnull,
                env={**os.environ, **spec.env},
                cwd=spec.working_dir,
                start_new_session=True,
            )
        except (OSError, ValueError, TypeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise StartError(f"cannot start {spec.command!r}: {reason}") from None
        managed = ManagedProcess(
            proc, handle=self._next_handle, command=spec.command, args=spec.args, stdin_pipe=spec.stdin_pipe
        )
        self._next_handle += 1
        self._by_pid[managed.pid] = managed
        managed._task = asyncio.create_task(managed._run())
        return managed

    async def shutdown(self, timeout: float = 5.0) -> None:
        """Kill every process this table started and wait (bounded) for them to finish."""
        procs: Sequence[ManagedProcess] = list(self._by_pid.values())
        for p in procs:
            p.kill()
        waits = [p.wait_finished() for p in procs if not p.finished]
        if waits:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits), timeout)
