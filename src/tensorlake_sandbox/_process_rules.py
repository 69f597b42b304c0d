"""What the sync and async process layers share: argument checks, request bodies, event parsing.

Everything here is pure (no I/O), so the async process layer (`_async/_process.py`, the source
of the generated `_sync/_process.py`) holds only what blocks or awaits.
"""

from __future__ import annotations

import json
import math
import os
import signal as _signal
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypedDict

import httpx

from tensorlake_api_client.api.sandbox_processes import (
    sandbox_process_follow_output,
    sandbox_process_follow_stderr,
    sandbox_process_follow_stdout,
)
from tensorlake_api_client.models import (
    ProcessHealthCheck,
    ProcessInfo,
    ProcessUserIds,
    ProcessUserName,
    RestartPolicyConfig,
    RunExitEvent,
    RunProcessRequest,
    RunStartEvent,
    StartProcessRequest,
    StdinMode,
)
from tensorlake_api_client.models.run_process_request_env import RunProcessRequestEnv
from tensorlake_api_client.models.start_process_request_env import StartProcessRequestEnv
from tensorlake_api_client.types import Unset

from ._client import MAX_TIMEOUT, SandboxClient, check_timeout
from ._errors import OutputLostError, SandboxConnectionError, SandboxError, SandboxUnavailableError

__all__ = [
    "MAX_TIMEOUT",
    "ContinuedLine",
    "ManagedOptions",
    "OutputLine",
    "Positions",
    "ProcessSpec",
    "Reassembly",
    "RunOptions",
    "StartOptions",
    "StreamName",
    "UserArg",
    "check_client",
    "check_input",
    "check_name",
    "check_process_key",
    "check_timeout",
    "join_lines",
    "parse_follow_event",
    "parse_run_event",
    "returncode_of",
]

StreamName = Literal["stdout", "stderr", "output"]
UserArg = str | Mapping[str, Any]


class StartOptions(TypedDict, total=False):
    """The keyword arguments of `start` / `astart` other than ``stdin`` (for their overloads)."""

    env: dict[str, str] | None
    cwd: str | None
    user: UserArg | None
    name: str | None
    restart: str | Mapping[str, Any] | None
    health_check: Mapping[str, Any] | None


class RunOptions(TypedDict, total=False):
    """The keyword arguments of `run` / `arun` other than ``text`` (for their overloads)."""

    input: object
    timeout: float | None
    check: bool
    env: dict[str, str] | None
    cwd: str | None
    user: UserArg | None


# A follow stream that drops is reopened this many times in a row (with backoff) before
# giving up; any line received in between resets the count.
FOLLOW_ATTEMPTS = 6
# How long the context manager waits for a process to end by itself before killing it.
EXIT_TIMEOUT = 5.0
# After a kill, how long to wait for the process's end to be reported.
KILL_GRACE = 10.0

FOLLOW = {
    "stdout": sandbox_process_follow_stdout,
    "stderr": sandbox_process_follow_stderr,
    "output": sandbox_process_follow_output,
}
# A dropped connection or an unavailable proxy: reopen the stream.
DROPS = (httpx.TransportError, SandboxConnectionError, SandboxUnavailableError)


def stream_timeout(client: SandboxClient) -> httpx.Timeout:
    """The client's timeouts, except no read timeout: a process may stay silent for hours."""
    t = client.get_httpx_client().timeout
    return httpx.Timeout(connect=t.connect, read=None, write=t.write, pool=t.pool)


def follow_backoff(failures: int) -> float:
    return min(2.0, 0.05 * 2.0 ** (failures - 1))


def join(lines: list[str]) -> str:
    return "".join(f"{line}\n" for line in lines)


def is_missing(error: BaseException) -> bool:
    """The sandbox does not serve the operation (404/405)."""
    return isinstance(error, SandboxError) and error.status_code in (404, 405)


def check_signal(sig: object) -> int:
    if isinstance(sig, bool) or not isinstance(sig, int) or sig <= 0:
        raise ValueError(f"sig must be a positive signal number such as signal.SIGTERM, not {sig!r}")
    return sig


# Bytes-like, str, or a binary file: what `write_stdin` takes for communicate(input=...).
_INPUT_TYPES = (str, bytes, bytearray, memoryview)


class OutputLine(NamedTuple):
    """One line of a process's combined output: which stream it came from, and its text.

    From ``p.output``, ``line`` ends with ``"\\n"`` (as `subprocess` gives lines); handed to a
    ``run_streaming`` callback, it comes without it. Unpacks as ``for stream, line in p.output``.
    """

    stream: Literal["stdout", "stderr"]
    line: str


def check_client(client: object) -> SandboxClient:
    if not isinstance(client, SandboxClient):
        raise TypeError(
            "client must be a SandboxClient (from tensorlake_sandbox.sandbox_client(), or "
            f"LocalSandbox.client()), not {type(client).__name__}"
        )
    return client


def check_input(data: object) -> None:
    if data is None or isinstance(data, _INPUT_TYPES):
        return
    if hasattr(data, "read"):
        return  # a binary file: write_stdin checks the rest
    raise TypeError(
        f"input must be str, bytes or a binary file, not {type(data).__name__}; "
        "to stream an iterable, use p.stdin.write(...) on a started process"
    )


def _check_args(args: object) -> list[str]:
    if isinstance(args, (str, bytes)):
        shown = args if isinstance(args, str) else args.decode("utf-8", "replace")
        raise TypeError(
            f"args must be a list of strings (the program and its arguments), not a string: "
            f"use [{'sh'!r}, {'-c'!r}, {shown!r}] to run it through a shell, or split it yourself"
        )
    if not isinstance(args, Sequence) or isinstance(args, (bytearray, memoryview)):
        raise TypeError(f"args must be a list of strings, not {type(args).__name__}")
    out = [os.fspath(a) if isinstance(a, os.PathLike) else a for a in args]
    if not out:
        raise ValueError("args is empty: pass at least the program to run, e.g. ['ls', '-l']")
    for i, a in enumerate(out):
        if not isinstance(a, str):
            raise TypeError(f"args[{i}] must be a str, not {type(a).__name__} ({a!r})")
        if "\0" in a:
            raise ValueError(f"args[{i}] contains a NUL character, which no process can receive")
    if not out[0]:
        raise ValueError("args[0] (the program) is empty")
    return out


def _check_env(env: object) -> dict[str, str] | None:
    if env is None:
        return None
    if not isinstance(env, Mapping):
        raise TypeError(f"env must be a mapping of str to str, not {type(env).__name__}")
    out: dict[str, str] = {}
    for key, value in env.items():
        if not isinstance(key, str):
            raise TypeError(f"env names must be str; got {type(key).__name__} {key!r}")
        if not isinstance(value, str):
            raise TypeError(f"env value for {key!r} must be a str, got {type(value).__name__} ({value!r})")
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise ValueError(f"env: {key!r} is not a valid variable name (empty, or contains '=' or NUL)")
        out[key] = value
    return out


def _check_cwd(cwd: object) -> str | None:
    if cwd is None:
        return None
    if isinstance(cwd, os.PathLike):
        cwd = os.fspath(cwd)
    if not isinstance(cwd, str):
        raise TypeError(f"cwd must be a str path in the sandbox, not {type(cwd).__name__}")
    if not cwd or "\0" in cwd:
        raise ValueError(f"cwd {cwd!r} is not a valid path")
    return cwd


def _check_user(user: object) -> str | ProcessUserName | ProcessUserIds | None:
    if user is None:
        return None
    if isinstance(user, str):
        if not user:
            raise ValueError('user is empty: pass a user name, "uid:gid", or leave it out')
        return user
    if isinstance(user, Mapping):
        if set(user) == {"name"} and isinstance(user["name"], str) and user["name"]:
            return ProcessUserName(name=user["name"])
        if set(user) == {"uid", "gid"} and all(
            isinstance(user[k], int) and not isinstance(user[k], bool) and user[k] >= 0
            for k in ("uid", "gid")
        ):
            return ProcessUserIds(uid=user["uid"], gid=user["gid"])
    raise TypeError(
        f'user must be a user name, "uid:gid", {{"name": str}} or {{"uid": int, "gid": int}}; not {user!r}'
    )


@dataclass(frozen=True)
class ProcessSpec:
    """A checked command line and its options, ready to become a start or run request."""

    args: list[str]
    env: dict[str, str] | None
    cwd: str | None
    user: str | ProcessUserName | ProcessUserIds | None

    @classmethod
    def check(cls, args: object, env: object, cwd: object, user: object) -> ProcessSpec:
        return cls(_check_args(args), _check_env(env), _check_cwd(cwd), _check_user(user))

    def start_request(self, *, stdin: bool) -> StartProcessRequest:
        body = StartProcessRequest(command=self.args[0], args=self.args[1:])
        if stdin:
            body.stdin_mode = StdinMode.PIPE
        self._set_options(body, StartProcessRequestEnv)
        return body

    def run_request(self, timeout: float | None) -> RunProcessRequest:
        body = RunProcessRequest(command=self.args[0], args=self.args[1:])
        self._set_options(body, RunProcessRequestEnv)
        if timeout is not None:
            # The server's timeout is whole seconds: a backstop (the client enforces the exact one).
            body.timeout = max(1, math.ceil(timeout))
        return body

    def _set_options(
        self,
        body: StartProcessRequest | RunProcessRequest,
        env_type: type[StartProcessRequestEnv] | type[RunProcessRequestEnv],
    ) -> None:
        """The options a start and a run request share: env, working directory, user."""
        if self.env is not None:
            body.env = env_type.from_dict(self.env)
        if self.cwd is not None:
            body.working_dir = self.cwd
        if self.user is not None:
            body.user = self.user


# -- results ------------------------------------------------------------------------------------


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def returncode_of(info: ProcessInfo) -> int | None:
    """subprocess's returncode from a ProcessInfo: None while running, -N when signal N ended it."""
    if info.status == "running":
        return None
    code, sig = _int(info.exit_code), _int(info.signal)
    if code is not None:
        return code
    if sig is not None:
        return -sig
    if info.status == "oom_killed":
        return -int(_signal.SIGKILL)
    raise SandboxError(
        f"process {info.pid} has status {info.status!r} with neither an exit code nor a signal"
    )


def join_lines(lines: Iterable[str], text: bool) -> str | bytes:
    """Captured lines back to text: each line followed by ``"\\n"``.

    The process API strips line terminators, so ``"\\r\\n"`` comes back as ``"\\n"`` and a
    last line that had no newline gets one. Bytes are the UTF-8 encoding of that text.
    """
    joined = "".join(f"{line}\n" for line in lines)
    return joined if text else joined.encode("utf-8")


# -- events -------------------------------------------------------------------------------------


def _data(raw: str, what: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise SandboxError(f"malformed {what} event from the sandbox: {raw[:200]!r}")
    return data


def parse_follow_event(name: str, raw: str, stream: StreamName) -> tuple[str | OutputLine, bool] | None:
    """One follow event: (the line, an `OutputLine` on ``output``; whether it is continued), or None
    for eof; ValueError to skip an event this client does not know."""
    if name == "eof":
        return None
    if not raw and name in ("message", ""):
        # A keep-alive comment: httpx-sse dispatches it as an empty event once ids were sent.
        raise ValueError(name)
    if name not in ("output", "message", ""):
        raise ValueError(name)  # an event this client does not know: skipped
    data = _data(raw, stream)
    line = _line_of(data, raw, stream)
    continued = data.get("continued") is True
    if stream != "output":
        return line, continued
    return OutputLine("stderr" if data.get("stream") == "stderr" else "stdout", line), continued


def _line_of(data: dict[str, Any], raw: str, what: str) -> str:
    """The ``line`` of an output event (an `OutputEvent`), checked as its model would.

    Read from the dict rather than through ``OutputEvent.from_dict``: this runs once per line,
    and building the model costs a tenth of the line rate.
    """
    line, timestamp = data.get("line"), data.get("timestamp")
    if not isinstance(line, str) or not isinstance(timestamp, int):
        raise SandboxError(f"malformed {what} event from the sandbox: {raw[:200]!r}")
    return line


# -- positions and long lines ---------------------------------------------------------------------


class Positions:
    """Checks the positions (SSE ``id``) of output events: each must follow the last one taken.

    A sandbox that sends positions numbers the lines of each followed stream 0, 1, 2, ...;
    a replayed line (position already taken) is skipped; a jump, or a ``gap`` event, means
    lines were dropped before they could be read: `OutputLostError`. Against a sandbox that
    sends no positions, nothing can be checked here (see `AsyncLineStream` for what is).
    """

    __slots__ = ("next", "what")

    def __init__(self, what: str) -> None:
        self.next = 0  # the position of the next line to take
        self.what = what

    def take(self, event_id: str, received: int | None = None) -> bool:
        """True for a new line, False for one taken before; raises OutputLostError past a gap.

        ``received`` (for the message): lines received so far; default: the lines taken.
        """
        if not event_id:
            return True
        try:
            position = int(event_id)
        except ValueError:
            return True  # not a position: this sandbox's ids mean something else
        if position == self.next:
            self.next = position + 1
            return True
        if position < self.next:
            return False
        raise self.lost(position - self.next, self.next if received is None else received)

    def gap(self, raw: str, received: int) -> None:
        """A ``gap`` event: raise unless it only covers lines already taken."""
        try:
            data = json.loads(raw)
            to = int(data["to"])
        except (ValueError, TypeError, KeyError):
            raise self.lost(None, received) from None
        if to > self.next:
            raise self.lost(to - self.next, received)

    def lost(self, missing: int | None, received: int) -> OutputLostError:
        how_many = (
            "some lines were" if missing is None else f"{missing} line{'s were' if missing != 1 else ' was'}"
        )
        return OutputLostError(
            f"{how_many} lost from the {self.what}: the sandbox dropped them from its capture "
            f"buffer before they could be read ({received} lines were received before the gap)",
            missing=missing,
            received=received,
            stream=self.what.split()[0],
        )


class Reassembly:
    """Puts long lines back together: the sandbox sends a line longer than its limit as pieces,
    each but the last marked ``continued``; pieces of one stream are joined in order."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: dict[str, list[str]] = {}

    def line(self, stream: str, text: str, continued: bool) -> str | None:
        """The whole line once its last piece arrived; None while pieces are pending."""
        if not continued and not self._parts:
            return text
        parts = self._parts.get(stream)
        if continued:
            if parts is None:
                self._parts[stream] = [text]
            else:
                parts.append(text)
            return None
        if parts is None:
            return text
        del self._parts[stream]
        parts.append(text)
        return "".join(parts)

    @property
    def pending(self) -> bool:
        return bool(self._parts)


class ContinuedLine(NamedTuple):
    """A piece of a long line in a run stream: the rest follows in the stream's next line."""

    piece: OutputLine


RunEvent = RunStartEvent | OutputLine | ContinuedLine | RunExitEvent


def parse_run_event(name: str, raw: str) -> RunEvent | None:
    """One run event, read by its fields (the event name only breaks ties); None to skip."""
    if not raw and name in ("message", ""):
        return None  # a keep-alive comment (see parse_follow_event)
    data = _data(raw, "run")
    try:
        if "line" in data:
            text = _line_of(data, raw, "run")
            line = OutputLine("stderr" if data.get("stream") == "stderr" else "stdout", text)
            return ContinuedLine(line) if data.get("continued") is True else line
        if name == "exit" or any(k in data for k in ("exit_code", "signal", "reason")):
            return RunExitEvent.from_dict(data)
        if "pid" in data:
            return RunStartEvent.from_dict(data)
    except (KeyError, TypeError) as exc:
        raise SandboxError(f"malformed run event from the sandbox: {raw[:200]!r}") from exc
    return None


def exit_returncode(event: RunExitEvent) -> int:
    code, sig = _int(event.exit_code), _int(event.signal)
    if code is not None:
        return code
    if sig is not None:
        return -sig
    if event.oom_killed is True or event.reason == "oom_killed":
        return -int(_signal.SIGKILL)
    raise SandboxError(f"the run's exit event has neither an exit code nor a signal: {event.to_dict()}")


def timed_out(event: RunExitEvent) -> bool:
    return not isinstance(event.reason, Unset) and event.reason == "timed_out"


def timeout_expired(
    args: list[str], timeout: float, out: list[str], err: list[str], text: bool
) -> subprocess.TimeoutExpired:
    return subprocess.TimeoutExpired(
        args, timeout, output=join_lines(out, text), stderr=join_lines(err, text)
    )


def completed(
    args: list[str], returncode: int, out: list[str], err: list[str], *, text: bool, check: bool
) -> subprocess.CompletedProcess[Any]:
    stdout, stderr = join_lines(out, text), join_lines(err, text)
    if check and returncode != 0:
        raise subprocess.CalledProcessError(returncode, args, output=stdout, stderr=stderr)
    return subprocess.CompletedProcess(args, returncode, stdout, stderr)


# -- managed-process options -----------------------------------------------------------------------
# Managed-process options for `start` (``name``, ``restart``, ``health_check``), checked before sending.
#
# Pure functions, shared by the sync and async `start` and the CLI. A process started with any of
# them is *managed*: the sandbox restarts it per its policy, and it can be addressed by its name
# (its pid changes with every restart). See openapi.yaml (`RestartPolicyConfig`,
# `ProcessHealthCheck`, `ManagedProcessInfo`).

_POLICIES = ("never", "on_failure", "always")
_RESTART_KEYS = {"policy", "max_restarts", "initial_backoff_ms", "max_backoff_ms"}
_HEALTH_KEYS = {"type", "port", "path", "initial_delay_ms", "interval_ms", "timeout_ms", "failure_threshold"}
_MAX_MS = 86_400_000


def check_name(name: object) -> str:
    """A managed process's name: a non-empty string, no ``/``, not all digits (a pid), not ``run``."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, not {type(name).__name__}")
    if not name or "/" in name or name.isdigit() or name == "run" or len(name) > 255:
        raise ValueError(
            f"invalid process name {name!r}: a name is 1 to 255 characters, has no '/', is not all "
            "digits (digits mean a pid) and is not 'run'"
        )
    return name


def check_process_key(key: object) -> int | str:
    """A pid (a positive int) or a managed process's name, as the ``{pid}`` of a request path."""
    if isinstance(key, int) and not isinstance(key, bool):
        if key <= 0:
            raise ValueError(f"a pid is a positive integer, not {key}")
        return key
    return check_name(key)


def _whole(mapping: Mapping[str, Any], key: str, low: int, high: int, what: str) -> None:
    if key not in mapping:
        return
    value = mapping[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{what}[{key!r}] must be an integer from {low} to {high}, not {value!r}")


def _check_restart(restart: object) -> RestartPolicyConfig:
    if isinstance(restart, str):
        restart = {"policy": restart}
    if not isinstance(restart, Mapping):
        raise TypeError(
            "restart must be a policy ('never', 'on_failure', 'always') or a dict, "
            f"not {type(restart).__name__}"
        )
    unknown = set(restart) - _RESTART_KEYS
    if unknown:
        raise ValueError(f"unknown restart settings: {sorted(unknown)} (known: {sorted(_RESTART_KEYS)})")
    if restart.get("policy", "on_failure") not in _POLICIES:
        raise ValueError(
            f"restart policy must be one of {', '.join(_POLICIES)}, not {restart.get('policy')!r}"
        )
    if restart.get("max_restarts") is not None:
        _whole(restart, "max_restarts", 0, 2**31 - 1, "restart")
    _whole(restart, "initial_backoff_ms", 0, _MAX_MS, "restart")
    _whole(restart, "max_backoff_ms", 0, _MAX_MS, "restart")
    return RestartPolicyConfig.from_dict(dict(restart))


def _check_health(check: object) -> ProcessHealthCheck:
    if not isinstance(check, Mapping):
        raise TypeError(f"health_check must be a dict, not {type(check).__name__}")
    unknown = set(check) - _HEALTH_KEYS
    if unknown:
        raise ValueError(f"unknown health_check settings: {sorted(unknown)} (known: {sorted(_HEALTH_KEYS)})")
    if check.get("type") not in ("http", "tcp"):
        raise ValueError(f"health_check['type'] must be 'http' or 'tcp', not {check.get('type')!r}")
    if "port" not in check:
        raise ValueError("health_check needs a 'port'")
    _whole(check, "port", 1, 65535, "health_check")
    path = check.get("path")
    if path is not None and (
        not isinstance(path, str) or not path.startswith("/") or any(c in path for c in " \r\n")
    ):
        raise ValueError(
            f"health_check['path'] must start with '/' and hold no spaces or line breaks, not {path!r}"
        )
    _whole(check, "initial_delay_ms", 0, _MAX_MS, "health_check")
    _whole(check, "interval_ms", 1, _MAX_MS, "health_check")
    _whole(check, "timeout_ms", 1, _MAX_MS, "health_check")
    _whole(check, "failure_threshold", 1, 2**31 - 1, "health_check")
    return ProcessHealthCheck.from_dict(dict(check))


@dataclass(frozen=True, slots=True)
class ManagedOptions:
    """Checked managed-process options; all None for an ordinary process."""

    name: str | None
    restart: RestartPolicyConfig | None
    health_check: ProcessHealthCheck | None

    @classmethod
    def check(cls, name: object, restart: object, health_check: object) -> ManagedOptions:
        return cls(
            None if name is None else check_name(name),
            None if restart is None else _check_restart(restart),
            None if health_check is None else _check_health(health_check),
        )

    @property
    def managed(self) -> bool:
        return self.name is not None or self.restart is not None or self.health_check is not None

    def apply(self, body: StartProcessRequest) -> StartProcessRequest:
        if self.name is not None:
            body.name = self.name
        if self.restart is not None:
            body.restart = self.restart
        if self.health_check is not None:
            body.health_check = self.health_check
        return body
