"""The PTY websocket's binary frames, the checks run before anything is sent, and the terminal errors.

Pure functions only (no I/O), shared by the sync and async terminals and the local sandbox's
tests. Frames (openapi.yaml, tag ``sandbox-pty``): client to server ``0x00`` + input,
``0x01`` + cols u16 + rows u16 (big-endian), ``0x02`` READY; server to client ``0x00`` +
output, ``0x03`` + exit code i32, then a close with reason ``exit:<code>``.
"""

from __future__ import annotations

import codecs
import os
import struct
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypedDict

from ._errors import TerminalClosedError, TerminalNotFoundError, TooManyTerminalsError

__all__ = [
    "CLOSE_ABNORMAL",
    "CLOSE_GOING_AWAY",
    "CLOSE_NORMAL",
    "CLOSE_POLICY",
    "MAX_COLS",
    "MAX_INPUT_FRAME",
    "MAX_ROWS",
    "OP_DATA",
    "OP_EXIT",
    "OP_READY",
    "OP_RESIZE",
    "READY_FRAME",
    "TOKEN_HEADER",
    "TerminalClosedError",
    "TerminalNotFoundError",
    "TerminalOptions",
    "TooManyTerminalsError",
    "check_open_args",
    "check_options",
    "check_size",
    "exit_code_from_reason",
    "exit_frame",
    "exit_reason",
    "input_frame",
    "iter_text",
    "parse_frame",
    "resize_frame",
    "resize_from_frame",
]

# The wire, for both ends (the client here and in terminal.py, the server in local/): opcodes,
# close codes, the terminal size range (the server clamps to it, the client refuses outside it).
OP_DATA, OP_RESIZE, OP_READY, OP_EXIT = 0x00, 0x01, 0x02, 0x03
READY_FRAME = bytes([OP_READY])
CLOSE_NORMAL, CLOSE_GOING_AWAY, CLOSE_POLICY = 1000, 1001, 1008
# Never sent: what a client reports when the connection dropped without a close frame.
CLOSE_ABNORMAL = 1006
MAX_ROWS, MAX_COLS = 500, 1000
# The header that carries a session's token to the websocket (the server also takes ``?token=``).
TOKEN_HEADER = "X-PTY-Token"
# One input frame carries at most this much; longer input is split (the server accepts 64 KiB frames).
MAX_INPUT_FRAME = 32 * 1024


# The terminal's errors live in the package's one error tree (`_errors`); imported from here too.


def _check_int(name: str, value: object, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not 1 <= value <= high:
        raise ValueError(f"{name} must be between 1 and {high}, not {value}")
    return value


def check_size(rows: object, cols: object) -> tuple[int, int]:
    """(rows, cols) when both are ints in range (1..500, 1..1000); TypeError or ValueError otherwise."""
    return _check_int("rows", rows, MAX_ROWS), _check_int("cols", cols, MAX_COLS)


def _check_str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if "\0" in value:
        raise ValueError(f"{name} must not contain NUL characters")
    return value


class TerminalOptions(TypedDict, total=False):
    """The keyword arguments of `open_terminal` / `aopen_terminal` that shape the new session."""

    rows: int  # default 24
    cols: int  # default 80
    env: Mapping[str, str] | None
    cwd: str | os.PathLike[str] | None


def check_options(options: Mapping[str, object]) -> tuple[int, int, object, object]:
    """(rows, cols, env, cwd) of `TerminalOptions`, sizes checked; TypeError for an unknown keyword."""
    unknown = sorted(set(options) - TerminalOptions.__optional_keys__)
    if unknown:
        raise TypeError(
            f"unexpected keyword argument {unknown[0]!r} for a new terminal "
            "(expected rows, cols, env, cwd, on_output or connect_timeout)"
        )
    rows, cols = check_size(options.get("rows", 24), options.get("cols", 80))
    return rows, cols, options.get("env"), options.get("cwd")


def check_open_args(
    command: object,
    args: object,
    env: object,
    cwd: object,
) -> tuple[str, list[str], dict[str, str] | None, str | None]:
    """Validated (command, args, env, cwd) for a new terminal, with errors that say what to fix."""
    command = _check_str("command", command)
    if not command:
        raise ValueError("command must not be empty, e.g. 'bash'")
    if isinstance(args, (str, bytes)) or not isinstance(args, Iterable):
        raise TypeError("args must be a list of strings, e.g. ['-c', 'echo hi'] (not one string)")
    arg_list = [_check_str("each of args", a) for a in args]
    env_dict: dict[str, str] | None = None
    if env is not None:
        if not isinstance(env, Mapping):
            raise TypeError(f"env must be a mapping of str to str, not {type(env).__name__}")
        env_dict = {}
        for key, value in env.items():
            _check_str("an env name", key)
            if not key or "=" in key:
                raise ValueError(f"env name {key!r} must be non-empty and contain no '='")
            env_dict[key] = _check_str(f"env[{key!r}]", value)
    cwd_str: str | None = None
    if cwd is not None:
        if not isinstance(cwd, (str, os.PathLike)):
            raise TypeError(f"cwd must be a str or path, not {type(cwd).__name__}")
        cwd_str = _check_str("cwd", os.fspath(cwd))
    return command, arg_list, env_dict, cwd_str


def input_frames(data: object) -> list[bytes]:
    """The input frames for ``data`` (bytes-like, or str sent as UTF-8), split to at most 32 KiB each."""
    if isinstance(data, str):
        payload = data.encode("utf-8")
    elif isinstance(data, (bytes, bytearray, memoryview)):
        payload = bytes(data)
    else:
        raise TypeError(f"terminal input must be bytes or str, not {type(data).__name__}")
    return [
        bytes([OP_DATA]) + payload[i : i + MAX_INPUT_FRAME] for i in range(0, len(payload), MAX_INPUT_FRAME)
    ]


def input_frame(data: bytes) -> bytes:
    return bytes([OP_DATA]) + data


def resize_frame(rows: int, cols: int) -> bytes:
    """The 5-byte resize frame: opcode, cols, rows (cols first on the wire)."""
    return struct.pack(">BHH", OP_RESIZE, cols, rows)


def resize_from_frame(frame: bytes) -> tuple[int, int] | None:
    """(rows, cols) of a resize frame (the server's side of `resize_frame`); None for any other frame."""
    if len(frame) != 5 or frame[0] != OP_RESIZE:
        return None
    cols, rows = struct.unpack(">HH", frame[1:])
    return rows, cols


def parse_frame(frame: bytes) -> tuple[str, Any] | None:
    """("output", bytes), ("exit", int), or None for a frame to ignore (empty, unknown opcode)."""
    if not frame:
        return None
    if frame[0] == OP_DATA:
        return "output", frame[1:]
    if frame[0] == OP_EXIT and len(frame) >= 5:
        return "exit", struct.unpack(">i", frame[1:5])[0]
    return None


def exit_frame(code: int) -> bytes:
    """The server's exit frame: opcode, then the exit code as i32 (-1 when a signal ended it)."""
    return struct.pack(">Bi", OP_EXIT, code)


def exit_reason(code: int) -> str:
    """The close reason sent after the exit frame (read back by `exit_code_from_reason`)."""
    return f"exit:{code}"


def exit_code_from_reason(reason: str | None) -> int | None:
    """The code in a close reason ``exit:<code>``; None for any other reason."""
    if not reason or not reason.startswith("exit:"):
        return None
    try:
        return int(reason[5:])
    except ValueError:
        return -1


def iter_text(chunks: Iterable[bytes], errors: str = "replace") -> Iterator[str]:
    """Decode output chunks as UTF-8, holding back a character split across chunks until it is whole."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors=errors)
    for chunk in chunks:
        text = decoder.decode(chunk)
        if text:
            yield text
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail


def close_error(code: int | None, reason: str) -> TerminalClosedError:
    what = {
        CLOSE_GOING_AWAY: "the session was terminated (killed, idle too long, or the sandbox stopped)",
        CLOSE_POLICY: "the server closed it for a policy violation",
        CLOSE_ABNORMAL: "the connection dropped; the session may still be running: reattach with its token",
    }.get(code or CLOSE_ABNORMAL, "it closed without an exit code")
    detail = f" ({reason})" if reason else ""
    return TerminalClosedError(
        f"terminal closed: {what}; close code {code}{detail}", close_code=code, reason=reason
    )
