"""``exec``: run a command in a sandbox with local stdin, live output and its exit code.

The process starts with stdin in pipe mode. A daemon thread forwards local stdin with
`write_stdin` (coalesced, never resent) and sends EOF when it ends; the main thread follows
``/output/follow`` (Server-Sent Events, read with httpx-sse) and prints each line to local
stdout or stderr. Ctrl-C: the first sends SIGINT to the remote process, the second kills it,
a third gives up waiting.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from types import FrameType
from typing import TYPE_CHECKING

from ._parser import EXIT_INTERRUPTED, EXIT_USAGE
from ._run import fail, make_client, unbuffered_stdin

if TYPE_CHECKING:
    from tensorlake_sandbox import SandboxClient

__all__ = ["cmd_exec"]


def _parse_env(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--env {pair!r}: expected KEY=VALUE", EXIT_USAGE)
        env[key] = value
    return env


def _forward_stdin(client: SandboxClient, pid: int) -> None:
    """Local stdin -> the process, then EOF. A process that stopped reading ends it quietly."""
    from tensorlake_sandbox import (
        ProcessNotFoundError,
        SandboxError,
        StdinNotWritableError,
        close_stdin,
        write_stdin,
    )

    try:
        write_stdin(client, pid, unbuffered_stdin())
        close_stdin(client, pid)
    except (StdinNotWritableError, ProcessNotFoundError):
        pass  # the process exited or closed its stdin first: like docker exec, not an error
    except SandboxError as exc:
        print(f"tensorlake-sandbox: stdin: {exc}", file=sys.stderr)
    except OSError as exc:
        print(f"tensorlake-sandbox: reading local stdin: {exc}", file=sys.stderr)


class _Interrupts:
    """Ctrl-C escalation: SIGINT to the remote process, then SIGKILL, then stop waiting."""

    def __init__(self, control: SandboxClient, pid: int):
        self.control = control
        self.pid = pid
        self.count = 0

    def _send(self, kill: bool) -> None:
        from tensorlake_api_client.api.sandbox_processes import sandbox_process_kill, sandbox_process_signal
        from tensorlake_api_client.models import SendSignalRequest
        from tensorlake_sandbox import SandboxError

        try:
            if kill:
                sandbox_process_kill.sync_detailed(self.pid, client=self.control)
            else:
                body = SendSignalRequest(signal=int(signal.SIGINT))
                sandbox_process_signal.sync_detailed(self.pid, client=self.control, body=body)
        except (SandboxError, OSError) as exc:
            print(f"tensorlake-sandbox: could not signal process {self.pid}: {exc}", file=sys.stderr)

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.count >= 3:
            raise KeyboardInterrupt
        kill = self.count == 2
        what = "killing it" if kill else "sent SIGINT; Ctrl-C again to kill it"
        print(f"\ntensorlake-sandbox: process {self.pid}: {what}", file=sys.stderr)
        threading.Thread(target=self._send, args=(kill,), daemon=True).start()


def _follow(client: SandboxClient, pid: int) -> None:
    """Print the process's output live until its eof event."""
    import httpx
    from httpx_sse import connect_sse

    no_read_timeout = httpx.Timeout(10.0, read=None)
    url = f"/api/v1/processes/{pid}/output/follow"
    with connect_sse(client.get_httpx_client(), "GET", url, timeout=no_read_timeout) as events:
        for event in events.iter_sse():
            if event.event == "eof":
                return
            if event.event != "output":
                continue
            data = json.loads(event.data)
            out = sys.stderr if data.get("stream") == "stderr" else sys.stdout
            out.write(f"{data.get('line', '')}\n")
            out.flush()


def _exit_status(client: SandboxClient, pid: int) -> int:
    from tensorlake_api_client.api.sandbox_processes import sandbox_process_get

    deadline = time.monotonic() + 10
    while True:
        info = sandbox_process_get.sync(pid, client=client)
        if info.status != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    if isinstance(info.exit_code, int):
        return info.exit_code
    if isinstance(info.signal, int):
        return 128 + info.signal
    return 1


def cmd_exec(args: argparse.Namespace) -> int:
    from tensorlake_api_client.api.sandbox_processes import sandbox_process_start
    from tensorlake_api_client.models import StartProcessRequest, StdinMode
    from tensorlake_api_client.models.start_process_request_env import StartProcessRequestEnv

    env = _parse_env(args.env)
    client = make_client(args)
    control = make_client(args)  # signals go on their own connection
    command, *argv = args.argv
    request = StartProcessRequest(command=command, args=argv, stdin_mode=StdinMode.PIPE)
    if env:
        request.env = StartProcessRequestEnv.from_dict(env)
    if args.cwd is not None:
        request.working_dir = args.cwd
    info = sandbox_process_start.sync(client=client, body=request)
    pid = info.pid
    args.pid = pid  # error messages name the process from here on

    interrupts = _Interrupts(control, pid)
    previous = signal.signal(signal.SIGINT, interrupts)
    try:
        threading.Thread(target=_forward_stdin, args=(make_client(args), pid), daemon=True).start()
        _follow(client, pid)
        return _exit_status(client, pid)
    except KeyboardInterrupt:
        print(f"tensorlake-sandbox: stopped waiting for process {pid}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGINT, previous)
        client.close()
        control.close()
