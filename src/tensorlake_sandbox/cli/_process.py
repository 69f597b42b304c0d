"""The commands that drive a process: start, logs, run. All go through the library's process layer."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ._parser import EXIT_TIMEOUT
from ._run import make_client, parse_env, say, write_out

if TYPE_CHECKING:
    from tensorlake_sandbox import OutputLine

__all__ = ["cmd_logs", "cmd_restart", "cmd_run", "cmd_start", "exit_status", "print_line"]


def exit_status(returncode: int) -> int:
    """A shell's exit status for a return code: the code itself, 128+N for signal N."""
    return 128 - returncode if returncode < 0 else returncode


def print_line(item: OutputLine) -> None:
    """One output line to local stdout or stderr, flushed at once (live output)."""
    write_out("stderr" if item.stream == "stderr" else "stdout", f"{item.line}\n")


def cmd_start(args: argparse.Namespace) -> int:
    from tensorlake_sandbox import start

    env = parse_env(args.env)
    client = make_client(args)
    try:
        p = start(
            client,
            args.argv,
            stdin=args.stdin,
            env=env or None,
            cwd=args.cwd,
            name=args.name,
            restart=args.restart,
        )
    finally:
        client.close()
    write_out("stdout", f"{p.pid}\n")
    return 0


def cmd_restart(args: argparse.Namespace) -> int:
    from tensorlake_api_client.api.sandbox_processes import sandbox_process_restart

    client = make_client(args)
    try:
        info = sandbox_process_restart.sync(args.pid, client=client)
    finally:
        client.close()
    print(info.pid)
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    from tensorlake_api_client.api.sandbox_processes import (
        sandbox_process_output,
        sandbox_process_stderr,
        sandbox_process_stdout,
    )
    from tensorlake_sandbox._sync._process import LineStream

    client = make_client(args)
    try:
        if args.follow:
            for item in LineStream[Any](client, args.pid, args.stream):
                line = item if isinstance(item, str) else item.line
                write_out("stdout", f"{line}\n")
            return 0
        op = {
            "stdout": sandbox_process_stdout,
            "stderr": sandbox_process_stderr,
            "output": sandbox_process_output,
        }
        result = op[args.stream].sync(args.pid, client=client)
        write_out("stdout", "".join(f"{line}\n" for line in result.lines))
        return 0
    finally:
        client.close()


def cmd_run(args: argparse.Namespace) -> int:
    import subprocess

    from tensorlake_sandbox._sync._process import run_streaming

    env = parse_env(args.env)
    client = make_client(args)
    try:
        code = run_streaming(
            client, args.argv, print_line, timeout=args.timeout, env=env or None, cwd=args.cwd
        )
    except subprocess.TimeoutExpired:
        say(
            f"tensorlake-sandbox: {args.argv[0]}: timed out after {args.timeout:g} s; "
            "it was killed with what it started"
        )
        return EXIT_TIMEOUT
    finally:
        client.close()
    return exit_status(code)
