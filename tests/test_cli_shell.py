"""``tensorlake-sandbox shell`` and ``exec -t`` on a real pseudo-terminal we own, against the local sandbox.

Each test runs the command as a child whose controlling terminal is a pty held by the test,
types into it, reads what the user would see, and checks the terminal's modes afterwards.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import signal
import stat
import struct
import subprocess
import sys
import termios
import time

import pytest

from tensorlake_sandbox.local import LocalSandbox


@pytest.fixture(scope="module")
def sandbox():
    with LocalSandbox() as sb:
        yield sb


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class Tty:
    """The CLI running on a pty: ``read_until`` what it shows, ``type`` keys."""

    def __init__(self, sandbox: LocalSandbox, args: list[str], tmp_path, rows: int = 24, cols: int = 80):
        self.master, self.slave = os.openpty()
        _set_size(self.slave, rows, cols)
        self.modes_before = termios.tcgetattr(self.slave)
        env = dict(os.environ, TENSORLAKE_API_KEY=sandbox.token, XDG_RUNTIME_DIR=str(tmp_path), TERM="xterm")
        env.pop("TENSORLAKE_PTY_TOKEN", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tensorlake_sandbox", *args],
            stdin=self.slave,
            stdout=self.slave,
            stderr=self.slave,
            env=env,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )
        self.seen = b""

    def read_until(self, needle: bytes, timeout: float = 30.0) -> bytes:
        deadline = time.monotonic() + timeout
        while needle not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} not shown; the screen: {self.seen!r}")
            readable, _, _ = select.select([self.master], [], [], left)
            if readable:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    data = b""
                if not data:
                    raise AssertionError(f"the terminal closed before {needle!r}: {self.seen!r}")
                self.seen += data
        return self.seen

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def wait(self, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"the command did not exit; the screen: {self.seen!r}")
            readable, _, _ = select.select([self.master], [], [], 0.05)
            if readable:
                with contextlib.suppress(OSError):
                    self.seen += os.read(self.master, 65536)
        return self.proc.returncode

    def drain(self) -> bytes:
        while select.select([self.master], [], [], 0.2)[0]:
            try:
                data = os.read(self.master, 65536)
            except OSError:
                break
            if not data:
                break
            self.seen += data
        return self.seen

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def tty(sandbox, tmp_path):
    made: list[Tty] = []

    def make(*args: str, rows: int = 24, cols: int = 80) -> Tty:
        t = Tty(sandbox, list(args), tmp_path, rows, cols)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


PROMPT_SCRIPT = 'printf "name? "; read n; echo hello $n; exit 3'


@pytest.mark.parametrize("command", [["shell"], ["exec", "-t"]])
def test_prompt_shows_before_any_input_and_remote_code_is_the_exit_code(sandbox, tty, command):
    t = tty(*command, sandbox.base_url, "--", "sh", "-c", PROMPT_SCRIPT)
    t.read_until(b"name? ")  # nothing typed yet
    assert b"hello" not in t.seen
    t.type(b"bob\r")
    t.read_until(b"hello bob")
    assert t.wait() == 3
    # The local terminal is back in the mode it was in (echo, canonical input).
    assert termios.tcgetattr(t.slave) == t.modes_before


def test_window_size_follows_the_local_terminal(sandbox, tty):
    t = tty("shell", sandbox.base_url, "--", "sh", rows=33, cols=77)
    t.type(b"stty size\r")
    t.read_until(b"33 77")
    _set_size(t.slave, 44, 99)  # the kernel sends SIGWINCH to the command
    os.killpg(t.proc.pid, signal.SIGWINCH)  # and to be sure, on a loaded machine
    deadline = time.monotonic() + 20
    while b"44 99" not in t.seen:
        assert time.monotonic() < deadline, t.seen
        t.type(b"stty size\r")
        t.drain()
    t.type(b"exit 0\r")
    assert t.wait() == 0


def test_ctrl_c_goes_to_the_remote_program_as_a_byte(sandbox, tty):
    t = tty(
        "shell",
        sandbox.base_url,
        "--",
        "sh",
        "-c",
        "trap 'echo got-int; exit 7' INT; echo armed; sleep 30 & wait",
    )
    t.read_until(b"armed")
    t.type(b"\x03")
    t.read_until(b"got-int")
    assert t.wait() == 7
    assert termios.tcgetattr(t.slave) == t.modes_before


def _session_id(screen: bytes) -> str:
    match = re.search(rb"--attach=(\S+)", screen)
    assert match, screen
    return match.group(1).decode()


def test_detach_then_attach_replays_history_and_keeps_the_token_private(sandbox, tty, tmp_path):
    t = tty("shell", sandbox.base_url, "--", "sh")
    t.type(b"echo one-$((40+2))\r")
    t.read_until(b"one-42")
    t.type(b"\x1dd")  # Ctrl-] d
    assert t.wait() == 0
    screen = t.drain()
    assert b"detached" in screen
    session_id = _session_id(screen)
    assert termios.tcgetattr(t.slave) == t.modes_before
    token_files = list((tmp_path / "tensorlake-sandbox").iterdir())
    assert len(token_files) == 1
    token = token_files[0].read_text().strip()
    assert len(token) == 64
    assert token.encode() not in screen  # never shown
    assert stat.S_IMODE(token_files[0].stat().st_mode) == 0o600

    again = tty("shell", sandbox.base_url, f"--attach={session_id}")  # an ID may begin with "-"
    again.read_until(b"one-42")  # the history, replayed
    again.type(b"exit 4\r")
    assert again.wait() == 4
    assert not token_files[0].exists()  # forgotten once the program ended


def test_sigterm_restores_the_terminal_and_leaves_the_program_running(sandbox, tty):
    t = tty("shell", sandbox.base_url, "--", "sh")
    t.type(b"echo up\r")
    t.read_until(b"\nup\r\n")  # the output, not the echo of what was typed
    t.proc.send_signal(signal.SIGTERM)
    assert t.wait() == 128 + signal.SIGTERM
    assert termios.tcgetattr(t.slave) == t.modes_before
    screen = t.drain()
    assert b"still running" in screen
    session_id = _session_id(screen)
    again = tty("shell", sandbox.base_url, f"--attach={session_id}")  # an ID may begin with "-"
    again.read_until(b"up\r\n")
    again.type(b"exit 0\r")
    assert again.wait() == 0


def test_attach_without_a_token_says_what_to_do(sandbox, tty):
    t = tty("shell", sandbox.base_url, "--attach", "nosuchsession")
    assert t.wait() == 2
    assert b"--token-file" in t.drain()
