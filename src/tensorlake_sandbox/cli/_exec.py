"""``exec``: run a command in a sandbox with local stdin, live output and its exit code.

Built on the library's process layer: `start` with a stdin pipe, a daemon thread forwarding
local stdin through ``p.stdin`` (coalesced, never resent) then EOF, and the main thread
printing ``p.output`` line by line as it arrives. Ctrl-C: the first sends SIGINT to the
remote process, the second kills it, a third stops waiting. The process is killed whenever
exec stops before it ended: a closed output pipe (``exec ... | head -1``), a third Ctrl-C,
an error.
"""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType
from typing import TYPE_CHECKING

from ._run import make_client, parse_env, say, unbuffered_stdin, write_out

if TYPE_CHECKING:
    from tensorlake_sandbox import RemoteProcess, StdinWriter

__all__ = ["cmd_exec"]


def _forward_stdin(writer: StdinWriter, done: threading.Event) -> None:
    """Local stdin -> the process, then EOF. A process that stopped reading ends it quietly, and
    so does exec stopping (``done``): its connections close under this thread."""
    from tensorlake_sandbox import ProcessNotFoundError, SandboxError, StdinNotWritableError

    from ._run import in_shell_words, say

    try:
        source = unbuffered_stdin()
        if source is not None:  # a closed stdin (<&-) reads as empty: EOF at once
            writer.write(source)
        writer.close()
    except (StdinNotWritableError, ProcessNotFoundError):
        pass  # the process exited or closed its stdin first: like docker exec, not an error
    except SandboxError as exc:
        if not done.is_set():
            say(f"tensorlake-sandbox: stdin: {in_shell_words(str(exc))}")
    except OSError as exc:
        if not done.is_set():
            say(f"tensorlake-sandbox: reading local stdin: {exc}")


class _Interrupts:
    """Ctrl-C escalation: SIGINT to the remote process, then SIGKILL, then stop waiting."""

    def __init__(self, control: RemoteProcess):
        self.control = control
        self.count = 0

    def _send(self, kill: bool) -> None:
        from tensorlake_sandbox import SandboxError

        try:
            if kill:
                self.control.kill()
            else:
                self.control.send_signal(int(signal.SIGINT))
        except (SandboxError, OSError) as exc:
            say(f"tensorlake-sandbox: could not signal process {self.control.pid}: {exc}")

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count >= 3:
            raise KeyboardInterrupt
        kill = self.count == 2
        what = "killing it" if kill else "sent SIGINT; Ctrl-C again to kill it"
        say(f"\ntensorlake-sandbox: process {self.control.pid}: {what}")
        threading.Thread(target=self._send, args=(kill,), daemon=True).start()


def cmd_exec(args: argparse.Namespace) -> int:
    from tensorlake_sandbox import RemoteProcess, start

    from ._process import exit_status

    env = parse_env(args.env)
    client = make_client(args)
    control = make_client(args)  # signals go on their own connection pool
    try:
        with start(client, args.argv, stdin=True, env=env or None, cwd=args.cwd) as p:
            args.pid = p.pid  # error messages name the process from here on
            assert p.stdin is not None
            interrupts = _Interrupts(RemoteProcess(control, p.pid, p.args, stdin=None))
            previous = signal.signal(signal.SIGINT, interrupts)
            done = threading.Event()
            try:
                threading.Thread(target=_forward_stdin, args=(p.stdin, done), daemon=True).start()
                try:
                    for item in p.output:  # each line ends with "\n"
                        write_out("stderr" if item.stream == "stderr" else "stdout", item.line)
                finally:
                    done.set()  # the output ended or failed: stdin's fate no longer matters
                return exit_status(p.wait(10))
            finally:
                signal.signal(signal.SIGINT, previous)
    finally:
        client.close()
        control.close()
