"""The one request validation of the local sandbox: every endpoint that takes a JSON body or runs a
command (process start, run, PTY create, signal, resize), and the headers that say where a body
ends (stdin's Content-Length) or where a follow resumes (Last-Event-ID), reads and checks it here.

The rules, the same everywhere:

- a JSON body larger than `MAX_JSON_BYTES` is 413 ``PAYLOAD_TOO_LARGE`` (declared or chunked;
  refused before any "100 Continue");
- a body that is not JSON, nested too deeply, or not an object is 400 ``BAD_REQUEST``;
- ``command`` is a non-empty string; ``args`` an array of strings; ``env`` an object of strings
  whose keys are non-empty and hold neither ``=`` nor NUL; ``working_dir`` a string or null, an
  existing directory ("working_dir ... does not exist", never a failure to start the program);
- no string holds NUL or a lone surrogate (JSON can carry ``"\\ud800"``; no OS call can);
- anything else a handler raises as `ValueError` is 400 with its message: never a 500.

`StartError` (code ``SPAWN_FAILED``, status 400) is the one answer for a well-formed request
whose program cannot be started, by every endpoint.
"""

from __future__ import annotations

import json
import os
import pwd
import signal as _signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive

from .._terminal_protocol import MAX_COLS, MAX_ROWS
from ._security import DRAIN_LIMIT, expects_continue

__all__ = [
    "MAX_JSON_BYTES",
    "RUN_SEGMENT",
    "SPAWN_FAILED",
    "Body",
    "CommandSpec",
    "HealthCheck",
    "PtySpec",
    "RestartConfig",
    "RunSpec",
    "StartError",
    "StartSpec",
    "TooLarge",
    "check_name",
    "check_user",
    "clamp_size",
    "declared_length",
    "parse_last_event_id",
    "parse_resize",
    "parse_signal",
    "read_json",
    "spawn_error",
]

# JSON bodies (start, run, PTY create, signal, resize) are small; anything larger is 413.
MAX_JSON_BYTES = 1024 * 1024
SPAWN_FAILED = "SPAWN_FAILED"
# The path segment of POST /processes/run (_routes.py): never a process's name, nor a pid.
RUN_SEGMENT = "run"
_MAX_NAME = 255
_MAX_MS = 86_400_000  # one day, the largest delay accepted in a restart or health-check setting
# Signals accepted by the signal endpoint.
_VALID_SIGNALS = frozenset(int(s) for s in _signal.valid_signals() if 0 < int(s) < _signal.NSIG)


class StartError(Exception):
    """The program could not be started (no such program, not executable, ...): 400 SPAWN_FAILED."""


class TooLarge(Exception):
    """The body is larger than allowed; ``complete`` tells whether it was read to its end."""

    def __init__(self, message: str, complete: bool) -> None:
        super().__init__(message)
        self.complete = complete


class Body:
    """A request body read chunk by chunk, which can be dropped part way (unlike `Request.stream`)."""

    def __init__(self, receive: Receive, waiting_for_continue: bool = False) -> None:
        self._receive = receive
        self.done = False
        self.started = False
        self.waiting_for_continue = waiting_for_continue

    async def next_chunk(self) -> bytes | None:
        while not self.done:
            self.started = True
            message = await self._receive()
            if message["type"] == "http.request":
                self.done = not message.get("more_body", False)
                chunk: bytes = message.get("body", b"")
                if chunk:
                    return chunk
            elif message["type"] == "http.disconnect":
                self.done = True
                raise ClientDisconnect
        return None

    async def discard(self, limit: int = DRAIN_LIMIT) -> bool:
        """Read the rest (up to ``limit`` bytes) and drop it; True when the body was read to its end.

        Reading it lets a client in the middle of an upload see the answer rather than a reset
        connection; past the limit the connection is closed instead.
        """
        if self.done:
            return True
        if self.waiting_for_continue and not self.started:
            return False  # reading would send "100 Continue": the client must not send it at all
        seen = 0
        try:
            while (chunk := await self.next_chunk()) is not None:
                seen += len(chunk)
                if seen > limit:
                    return False
        except ClientDisconnect:
            return False
        return True

    async def read_at_most(self, limit: int) -> bytes | None:
        """The whole body, or None when it is longer than ``limit`` (the rest is still unread)."""
        buf = bytearray()
        while (chunk := await self.next_chunk()) is not None:
            buf += chunk
            if len(buf) > limit:
                return None
        return bytes(buf)


async def read_json(request: Request) -> Any:
    """The decoded JSON body; raises ValueError (400) or TooLarge (413) with a message for the client."""
    message = f"the JSON body is larger than {MAX_JSON_BYTES} bytes"
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_JSON_BYTES:
        # Refused before reading a byte (and before any 100 Continue).
        raise TooLarge(message, False)
    body = Body(request.receive, expects_continue(request.scope))
    raw = await body.read_at_most(MAX_JSON_BYTES)
    if raw is None:
        raise TooLarge(message, await body.discard())
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("the request body is nested too deeply") from None
    except (ValueError, UnicodeDecodeError):
        raise ValueError("the request body is not valid JSON") from None


# -- field rules -----------------------------------------------------------------------------------


def _text(value: str, what: str) -> str:
    """``value`` unless it holds NUL or a lone surrogate (no OS call takes either)."""
    if "\0" in value:
        raise ValueError(f"{what} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid Unicode (it holds a lone surrogate)") from None
    return value


def _int(body: dict[str, Any], key: str, default: int | None, low: int, high: int) -> int:
    value = body.get(key, default)
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 24.0 is an integer in JSON Schema
    if value is None or isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be an integer")
    if not low <= value <= high:
        raise ValueError(f"{key} must be between {low} and {high}")
    return value


def _object(body: Any, what: str = "the body") -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValueError(f"{what} must be a JSON object")
    return body


def _current_user() -> tuple[str, int, int]:
    uid, gid = os.getuid(), os.getgid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return name, uid, gid


def _uid_gid(text: str) -> tuple[int, int | None] | None:
    uid, sep, gid = text.partition(":")
    if uid.isdigit() and (not sep or gid.isdigit()):
        return int(uid), int(gid) if sep else None
    return None


def check_user(user: Any) -> None:
    """Refuse (ValueError) a ``user`` that is not the one this server runs every process as.

    Accepted: the current user's name, its uid (``"1000"``), ``"uid:gid"``, ``{"name": ...}``
    or ``{"uid": ..., "gid": ...}``. Leaving the field out means the current user.
    """
    name, uid, gid = _current_user()
    matches = False
    if isinstance(user, str):
        ids = _uid_gid(user)
        matches = user == name or (ids is not None and ids[0] == uid and ids[1] in (None, gid))
        shown = repr(user)
    elif isinstance(user, dict) and ("name" in user or "uid" in user or "gid" in user):
        if "name" in user and ("uid" in user or "gid" in user):
            raise ValueError("user must give either name or uid and gid, not both")
        if "name" in user:
            if not isinstance(user["name"], str):
                raise ValueError("user name must be a string")
            matches = user["name"] == name
        else:
            given = (user.get("uid"), user.get("gid"))
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in given):
                raise ValueError("user needs both uid and gid, as integers")
            matches = given == (uid, gid)
        shown = json.dumps(user, ensure_ascii=True)
    else:
        raise ValueError(
            'user must be a string ("name", "uid" or "uid:gid") or an object {name} or {uid, gid}; '
            "leave it out for the default"
        )
    if not matches:
        raise ValueError(
            f"user {shown} is not available: this local sandbox runs every process as the user who "
            f"started it, {name!r} (uid {uid}, gid {gid}); omit user or name that one"
        )


def _mode(spec: dict[str, Any], key: str, allowed: tuple[str, str]) -> str:
    if key not in spec:
        return allowed[0]
    value = spec[key]
    if value not in allowed:
        raise ValueError(f"{key} must be one of {', '.join(allowed)}")
    return str(value)


@dataclass(frozen=True, slots=True)
class CommandSpec:
    """What every endpoint that runs a program takes: command, args, env, working_dir."""

    command: str
    args: list[str]
    env: dict[str, str]
    working_dir: str | None

    @classmethod
    def parse(cls, body: dict[str, Any]) -> CommandSpec:
        command = body.get("command")
        if not isinstance(command, str) or not command:
            raise ValueError("command is required and must be a non-empty string")
        _text(command, "command")
        args = body.get("args", [])
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise ValueError("args must be an array of strings")
        for arg in args:
            _text(arg, "args")
        env = body.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            raise ValueError("env must be an object of strings")
        for key, value in env.items():
            shown = json.dumps(key, ensure_ascii=True)
            if not key or "=" in key:
                raise ValueError(
                    f"invalid environment variable name {shown}: it must be non-empty, without '='"
                )
            _text(key, f"environment variable name {shown}")
            _text(value, f"the value of environment variable {shown}")
        working_dir = body.get("working_dir")
        if working_dir is not None:
            if not isinstance(working_dir, str):
                raise ValueError("working_dir must be a string or null")
            _text(working_dir, "working_dir")
            shown = json.dumps(working_dir, ensure_ascii=False)
            if not os.path.exists(working_dir):
                raise ValueError(f"working_dir {shown} does not exist")
            if not os.path.isdir(working_dir):
                raise ValueError(f"working_dir {shown} is not a directory")
        return cls(command=command, args=list(args), env=dict(env), working_dir=working_dir)

    @property
    def argv(self) -> list[str]:
        return [self.command, *self.args]


# -- managed processes -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RestartConfig:
    """A managed process's restart policy (openapi.yaml `RestartPolicyConfig`)."""

    policy: str = "on_failure"
    max_restarts: int | None = None
    initial_backoff_ms: int = 500
    max_backoff_ms: int = 30_000

    @classmethod
    def parse(cls, value: Any) -> RestartConfig:
        body = _object(value, "restart")
        policy = body.get("policy", "on_failure")
        if policy not in ("never", "on_failure", "always"):
            raise ValueError("restart.policy must be one of never, on_failure, always")
        max_restarts = body.get("max_restarts")
        if max_restarts is not None:
            max_restarts = _int(body, "max_restarts", None, 0, 2**31 - 1)
        initial = _int(body, "initial_backoff_ms", 500, 0, _MAX_MS)
        maximum = _int(body, "max_backoff_ms", 30_000, 0, _MAX_MS)
        return cls(policy, max_restarts, initial, max(initial, maximum))

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "max_restarts": self.max_restarts,
            "initial_backoff_ms": self.initial_backoff_ms,
            "max_backoff_ms": self.max_backoff_ms,
        }


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """A managed process's health check (openapi.yaml `ProcessHealthCheck`), run on loopback."""

    type: str
    port: int
    path: str | None = None
    initial_delay_ms: int = 5_000
    interval_ms: int = 1_000
    timeout_ms: int = 500
    failure_threshold: int = 3

    @classmethod
    def parse(cls, value: Any) -> HealthCheck:
        body = _object(value, "health_check")
        kind = body.get("type")
        if kind not in ("http", "tcp"):
            raise ValueError("health_check.type must be http or tcp")
        path = body.get("path")
        if path is not None:
            if not isinstance(path, str):
                raise ValueError("health_check.path must be a string or null")
            _text(path, "health_check.path")
            if any(c in path for c in "\r\n ") or not path.startswith("/"):
                raise ValueError("health_check.path must start with '/' and hold no spaces or line breaks")
        return cls(
            type=kind,
            port=_int(body, "port", None, 1, 65535),
            path=path,
            initial_delay_ms=_int(body, "initial_delay_ms", 5_000, 0, _MAX_MS),
            interval_ms=_int(body, "interval_ms", 1_000, 1, _MAX_MS),
            timeout_ms=_int(body, "timeout_ms", 500, 1, _MAX_MS),
            failure_threshold=_int(body, "failure_threshold", 3, 1, 2**31 - 1),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "port": self.port,
            "path": self.path,
            "initial_delay_ms": self.initial_delay_ms,
            "interval_ms": self.interval_ms,
            "timeout_ms": self.timeout_ms,
            "failure_threshold": self.failure_threshold,
        }


def check_name(name: Any) -> str:
    """A managed process's name: not empty, no ``/``, not all digits (a pid), not ``run``."""
    if not isinstance(name, str) or not name:
        raise ValueError("name must be a non-empty string")
    try:  # any character (a name never reaches the OS), but a lone surrogate cannot be answered
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("name is not valid Unicode (it holds a lone surrogate)") from None
    if "/" in name or name.isdigit() or name == RUN_SEGMENT or len(name) > _MAX_NAME:
        raise ValueError(
            f"invalid name {json.dumps(name, ensure_ascii=True)}: a name has no '/', is not all digits "
            f"(digits mean a pid), is not 'run', and has at most {_MAX_NAME} characters"
        )
    return name


@dataclass(frozen=True, slots=True)
class StartSpec:
    """A validated StartProcessRequest. ``managed`` is True when a name, restart policy or health
    check was given (the process is then supervised: see _supervisor.py)."""

    command: str
    args: list[str]
    env: dict[str, str]
    working_dir: str | None
    stdin_pipe: bool
    capture_stdout: bool
    capture_stderr: bool
    name: str | None = None
    restart: RestartConfig | None = None
    health_check: HealthCheck | None = None
    managed: bool = field(default=False)

    @classmethod
    def parse(cls, body: Any) -> StartSpec:
        """Validate a decoded JSON body; raises ValueError with a message for the client."""
        body = _object(body)
        cmd = CommandSpec.parse(body)
        if "user" in body:
            check_user(body["user"])
        # Present means managed; null is not a value of these fields (openapi.yaml).
        managed = any(key in body for key in ("name", "restart", "health_check"))
        name = check_name(body["name"]) if "name" in body else None
        restart = RestartConfig.parse(body["restart"]) if "restart" in body else RestartConfig()
        health = HealthCheck.parse(body["health_check"]) if "health_check" in body else None
        return cls(
            command=cmd.command,
            args=cmd.args,
            env=cmd.env,
            working_dir=cmd.working_dir,
            stdin_pipe=_mode(body, "stdin_mode", ("closed", "pipe")) == "pipe",
            capture_stdout=_mode(body, "stdout_mode", ("capture", "discard")) == "capture",
            capture_stderr=_mode(body, "stderr_mode", ("capture", "discard")) == "capture",
            name=name,
            restart=restart if managed else None,
            health_check=health,
            managed=managed,
        )


@dataclass(frozen=True, slots=True)
class RunSpec:
    """A validated RunProcessRequest: a start request whose stdin is closed and output captured."""

    start: StartSpec
    timeout: float | None

    @classmethod
    def parse(cls, body: Any) -> RunSpec:
        body = _object(body)
        cmd = CommandSpec.parse(body)
        if "user" in body:
            check_user(body["user"])
        timeout = body.get("timeout")
        whole = isinstance(timeout, int) or (isinstance(timeout, float) and timeout.is_integer())
        if timeout is not None and (isinstance(timeout, bool) or not whole or not 1 <= timeout < 2**31):
            raise ValueError("timeout must be a whole number of seconds (1 or more), or null")
        # As documented: stdin is closed and stdout/stderr are captured, whatever was asked.
        forced = StartSpec(
            command=cmd.command,
            args=cmd.args,
            env=cmd.env,
            working_dir=cmd.working_dir,
            stdin_pipe=False,
            capture_stdout=True,
            capture_stderr=True,
        )
        return cls(forced, None if timeout is None else float(timeout))


def _clamp(value: int, high: int) -> int:
    return max(1, min(high, value))


def clamp_size(rows: int, cols: int) -> tuple[int, int]:
    """(rows, cols) brought into the terminal's range (1..MAX_ROWS, 1..MAX_COLS), as the daemon does."""
    return _clamp(rows, MAX_ROWS), _clamp(cols, MAX_COLS)


@dataclass(frozen=True, slots=True)
class PtySpec:
    """A validated CreatePtyRequest (rows and cols clamped to the allowed range)."""

    command: str
    args: list[str]
    env: dict[str, str]
    working_dir: str | None
    rows: int
    cols: int

    @classmethod
    def parse(cls, body: Any) -> PtySpec:
        body = _object(body)
        cmd = CommandSpec.parse(body)
        rows, cols = clamp_size(
            _int(body, "rows", 24, -(2**31), 2**31 - 1), _int(body, "cols", 80, -(2**31), 2**31 - 1)
        )
        return cls(cmd.command, cmd.args, cmd.env, cmd.working_dir, rows, cols)


def parse_resize(body: Any) -> tuple[int, int]:
    """(rows, cols) of a PtyResizeRequest, clamped."""
    body = _object(body)
    if "rows" not in body or "cols" not in body:
        raise ValueError("rows and cols are required")
    rows = _int(body, "rows", None, -(2**31), 2**31 - 1)
    cols = _int(body, "cols", None, -(2**31), 2**31 - 1)
    return clamp_size(rows, cols)


def parse_signal(body: Any) -> int:
    """The signal number of a SendSignalRequest, one this system has (whether the process is still
    there to receive it is the process's to say)."""
    sig = body.get("signal") if isinstance(body, dict) else None
    if not isinstance(sig, int) or isinstance(sig, bool):
        raise ValueError("signal is required and must be an integer, e.g. 15")
    if sig not in _VALID_SIGNALS:
        raise ValueError(f"invalid signal {sig}")
    return sig


def declared_length(headers: Mapping[str, str]) -> int | None:
    """The Content-Length of a request whose body is streamed (stdin); None when not declared."""
    header = headers.get("content-length")
    declared = int(header) if header is not None and header.isdigit() and len(header) < 19 else None
    if header is not None and declared is None:
        raise ValueError("invalid Content-Length")
    return declared


def parse_last_event_id(last: str | None, length: int, what: str) -> int:
    """Where a follow starts: after the ``Last-Event-ID`` the client saw (``length`` lines are
    there; ``what`` names the stream in the message), else at the first line."""
    if last is None or last == "":
        return 0
    if not last.isdigit() or len(last) > 18:
        raise ValueError("Last-Event-ID must be the id of an output event (a line position)")
    position = int(last) + 1
    if position > length:
        raise ValueError(f"Last-Event-ID {last} is past the last line of {what}")
    return position


def spawn_error(command: str, exc: BaseException) -> StartError:
    """The `StartError` for a failed spawn of ``command``."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return StartError(f"cannot start {command!r}: {reason}")
