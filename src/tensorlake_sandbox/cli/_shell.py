"""``shell`` and ``exec -t``: a program on a terminal in the sandbox, driven from this terminal.

This terminal goes into raw mode (every key, Ctrl-C included, is sent to the remote program
as a byte), its size follows along (SIGWINCH becomes a resize), output is written byte for
byte, and the terminal is restored on every way out (exit, error, SIGTERM, SIGHUP). The
command exits with the remote program's exit code.

Detach with Ctrl-] then d: the program keeps running, and the command prints how to
reattach. The session's token is never printed: it is written to a file only you can read
(``$XDG_RUNTIME_DIR/tensorlake-sandbox/`` or ``~/.cache/tensorlake-sandbox/``), which
``--attach`` finds by itself; ``--token-file`` or ``TENSORLAKE_PTY_TOKEN`` give it
explicitly. Ctrl-] Ctrl-] sends a literal Ctrl-].
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from ._parser import EXIT_ERROR, EXIT_USAGE
from ._run import OutputError, fail, make_client, parse_env, say, stdio_fd
from ._shell_args import TOKEN_ENV

if TYPE_CHECKING:
    from tensorlake_sandbox import SandboxClient, Terminal

__all__ = ["cmd_exec_tty", "cmd_shell"]

ESCAPE = 0x1D  # Ctrl-]
# termios, tty and SIGWINCH: the terminal commands need them (the README says POSIX only).
POSIX = os.name == "posix"
# The sandbox's login shell, whatever it is.
_LOGIN_SHELL = ["sh", "-c", 'exec "${SHELL:-/bin/sh}" -l']


# -- the token, kept out of sight -------------------------------------------------------------


def _token_dir() -> Path:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) if runtime else Path.home() / ".cache"
    return base / "tensorlake-sandbox"


def _token_path(session_id: str) -> Path:
    safe = "".join(c for c in session_id if c.isalnum() or c in "-_")
    return _token_dir() / f"pty-{safe}.token"


def _save_token(session_id: str, token: str) -> Path:
    path = _token_path(session_id)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    os.replace(tmp, path)
    return path


def _forget_token(session_id: str) -> None:
    with contextlib.suppress(OSError):
        _token_path(session_id).unlink()


def _load_token(args: argparse.Namespace) -> str:
    if args.token_file:
        path = Path(args.token_file)
    elif os.environ.get(TOKEN_ENV):
        return os.environ[TOKEN_ENV].strip()
    else:
        path = _token_path(args.attach)
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        fail(
            f"no token for session {args.attach}: cannot read {str(path)!r} ({exc.strerror or exc}); "
            f"pass --token-file PATH or set {TOKEN_ENV}",
            EXIT_USAGE,
        )
    if not token:
        fail(f"the token file {str(path)!r} is empty", EXIT_USAGE)
    return token


# -- the local terminal -----------------------------------------------------------------------


class _Escape:
    """Finds Ctrl-] d in the input stream (across reads); everything else passes through."""

    def __init__(self) -> None:
        self.pending = False

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(bytes to send, detach?)"""
        out = bytearray()
        for byte in data:
            if self.pending:
                self.pending = False
                if byte in (ord("d"), ord("D")):
                    return bytes(out), True
                if byte != ESCAPE:
                    out.append(ESCAPE)
                out.append(byte)
            elif byte == ESCAPE:
                self.pending = True
            else:
                out.append(byte)
        return bytes(out), False


def _size(fd: int) -> tuple[int, int] | None:
    try:
        cols, rows = os.get_terminal_size(fd)
    except OSError:
        return None
    if not (1 <= rows <= 500 and 1 <= cols <= 1000):
        return None
    return rows, cols


def _terminal_size() -> tuple[int, int] | None:
    """The size of the terminal on stdin, else on stdout; None when neither is one (or open)."""
    for fd in (stdio_fd(sys.stdin), stdio_fd(sys.stdout)):
        if fd is not None and (size := _size(fd)) is not None:
            return size
    return None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            select.select([], [fd], [])


class _Session:
    """Drives one terminal from this process's stdin and stdout until exit or detach."""

    def __init__(self, term: Terminal) -> None:
        self.term = term
        self.stdin = stdio_fd(sys.stdin)  # None when closed (<&-): EOF at once
        stdout = stdio_fd(sys.stdout)
        assert stdout is not None  # run_guarded refuses a closed stdout first
        self.stdout = stdout
        self.tty = self.stdin is not None and os.isatty(self.stdin)
        self.wake_r, self.wake_w = os.pipe()
        self.output_error: BaseException | None = None

    def _pump_output(self) -> None:
        try:
            for chunk in self.term:
                _write_all(self.stdout, chunk)
        except BaseException as exc:
            self.output_error = exc
        finally:
            with contextlib.suppress(OSError):
                os.write(self.wake_w, b"x")

    def _on_winch(self, signum: int, frame: FrameType | None) -> None:
        with contextlib.suppress(OSError):
            os.write(self.wake_w, b"w")

    def _forward_input(self) -> bool:
        """Forward stdin until the program ends (False) or the user detaches (True)."""
        escape = _Escape()
        stdin = self.stdin
        if stdin is None:
            with contextlib.suppress(Exception):
                self.term.write(b"\x04")  # EOF (Ctrl-D) on the remote terminal
        while True:
            readable, _, _ = select.select([self.wake_r] if stdin is None else [stdin, self.wake_r], [], [])
            if self.wake_r in readable:
                signals = os.read(self.wake_r, 64)
                if b"x" in signals:
                    return False
                if b"w" in signals and self.stdin is not None and (size := _size(self.stdin)) is not None:
                    with contextlib.suppress(Exception):
                        self.term.resize(*size)
            if stdin is not None and stdin in readable:
                data = os.read(stdin, 65536)
                if not data:
                    stdin = None
                    with contextlib.suppress(Exception):
                        self.term.write(b"\x04")  # EOF (Ctrl-D) on the remote terminal
                    continue
                if self.tty:
                    data, detach = escape.feed(data)
                    if detach:
                        if data:
                            self.term.write(data)
                        return True
                if data:
                    self.term.write(data)

    def run(self) -> bool:
        """True when the user detached."""
        import termios
        import tty

        saved = termios.tcgetattr(self.stdin) if self.tty and self.stdin is not None else None
        reader = threading.Thread(target=self._pump_output, name="terminal-output", daemon=True)
        previous: dict[int, Any] = {}

        def leave(signum: int, frame: FrameType | None) -> None:
            raise SystemExit(128 + signum)

        try:
            previous[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, self._on_winch)
            for leave_on in (signal.SIGTERM, signal.SIGHUP):
                previous[leave_on] = signal.signal(leave_on, leave)
            if saved is not None and self.stdin is not None:
                tty.setraw(self.stdin, termios.TCSANOW)
            reader.start()
            return self._forward_input()
        finally:
            if saved is not None and self.stdin is not None:
                with contextlib.suppress(termios.error):
                    termios.tcsetattr(self.stdin, termios.TCSADRAIN, saved)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            os.close(self.wake_r)
            os.close(self.wake_w)


def _exit_code(code: int) -> int:
    return code if 0 <= code <= 255 else EXIT_ERROR


def _drive(client: SandboxClient, term: Terminal, sandbox: str) -> int:
    from tensorlake_sandbox import TerminalClosedError

    session = _Session(term)
    try:
        detached = session.run()
    except BaseException:
        # Interrupted from outside (SIGTERM, SIGHUP, an error): leave the program running
        # and say how to come back, rather than killing what the user was doing.
        term.detach()
        path = _save_token(term.session_id, term.token)
        say(_reattach_hint(sandbox, term.session_id, path))
        raise
    if detached:
        term.detach()
        path = _save_token(term.session_id, term.token)
        say(f"\r\n[detached] {_reattach_hint(sandbox, term.session_id, path)}")
        return 0
    if isinstance(session.output_error, OSError) and not isinstance(session.output_error, BrokenPipeError):
        reason = session.output_error.strerror or str(session.output_error)
        raise OutputError(f"cannot write the output to stdout: {reason}; stopped", EXIT_ERROR) from None
    if session.output_error is not None:
        raise session.output_error
    try:
        code = term.wait(timeout=10)
    except TerminalClosedError as exc:
        if exc.close_code == 1006:
            term.detach()
            path = _save_token(term.session_id, term.token)
            say(_reattach_hint(sandbox, term.session_id, path))
        raise
    _forget_token(term.session_id)
    return _exit_code(code)


def _reattach_hint(sandbox: str, session_id: str, token_path: Path) -> str:
    return (
        f"session {session_id} is still running. Reattach with:\n"
        # --attach=ID: an ID may begin with "-" (nanoid alphabet), which argparse takes for an option
        f"  tensorlake-sandbox shell {sandbox} --attach={session_id}\n"
        f"(its token is in {token_path}, readable only by you)"
    )


def _open(client: SandboxClient, argv: list[str], env: dict[str, str], cwd: str | None) -> Terminal:
    from tensorlake_sandbox import Terminal

    rows, cols = _terminal_size() or (24, 80)
    if "TERM" not in env and os.environ.get("TERM"):
        env["TERM"] = os.environ["TERM"]
    command, *rest = argv
    try:
        return Terminal.open(client, command, rest, rows=rows, cols=cols, env=env, cwd=cwd)
    except (TypeError, ValueError) as exc:
        fail(str(exc), EXIT_USAGE)


def _require_posix() -> None:
    if not POSIX:
        fail(
            "shell and exec -t need a POSIX system (raw terminal mode); use exec without -t, or run",
            EXIT_USAGE,
        )


def cmd_shell(args: argparse.Namespace) -> int:
    from tensorlake_sandbox import Terminal

    _require_posix()
    client = make_client(args)
    if args.attach is not None:
        if args.argv:
            fail("--attach reattaches to a running program: give no COMMAND with it", EXIT_USAGE)
        try:
            term = Terminal.attach(client, args.attach, _load_token(args))
        except (TypeError, ValueError) as exc:
            fail(str(exc), EXIT_USAGE)
        if (size := _terminal_size()) is not None:
            with contextlib.suppress(Exception):
                term.resize(*size)
    else:
        term = _open(client, list(args.argv) or list(_LOGIN_SHELL), parse_env(args.env), args.cwd)
    try:
        with term:  # closing never hides why the session ended
            return _drive(client, term, args.sandbox)
    finally:
        client.close()


def cmd_exec_tty(args: argparse.Namespace) -> int:
    _require_posix()
    client = make_client(args)
    term = _open(client, list(args.argv), parse_env(args.env), args.cwd)
    try:
        with term:
            return _drive(client, term, args.sandbox)
    finally:
        client.close()
