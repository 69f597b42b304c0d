"""The simple commands: stdin, close-stdin, ps, kill."""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any, BinaryIO

from ._parser import EXIT_USAGE
from ._run import fail, make_client, unbuffered_stdin, write_out

__all__ = ["cmd_close_stdin", "cmd_kill", "cmd_ps", "cmd_stdin"]


def _progress_bar(f: BinaryIO, no_progress: bool) -> Any | None:
    """A byte progress bar on stderr, only when stderr is a terminal and the size is known."""
    if no_progress or sys.stderr is None or not sys.stderr.isatty():
        return None
    from tensorlake_sandbox._sync._transport import remaining_length

    size = remaining_length(f)
    if size is None:
        return None
    from tqdm import tqdm

    return tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr, desc="stdin")


def cmd_stdin(args: argparse.Namespace) -> int:
    from tensorlake_sandbox import write_stdin
    from tensorlake_sandbox._sync._stdin import close_stdin

    if args.chunk_size is not None and args.chunk_size <= 0:
        fail("--chunk-size must be a positive number of bytes", EXIT_USAGE)
    if args.file == "-":
        stdin = unbuffered_stdin()
        if stdin is None:
            fail(
                "this command's stdin is closed, so there is nothing to send; pipe the bytes in "
                "or give a FILE (use close-stdin to send only EOF)",
                EXIT_USAGE,
            )
        source: BinaryIO = stdin
    else:
        try:
            source = open(args.file, "rb")  # noqa: SIM115 - closed below
        except OSError as exc:
            fail(f"cannot open {args.file!r}: {exc.strerror or exc}", EXIT_USAGE)
    try:
        client = make_client(args)
    except BaseException:
        source.close()
        raise
    bar = _progress_bar(source, args.no_progress)
    kwargs: dict[str, Any] = {}
    if args.chunk_size is not None:
        kwargs["chunk_size"] = args.chunk_size
    if bar is not None:
        kwargs["on_progress"] = bar.update
    try:
        write_stdin(client, args.pid, source, **kwargs)
        if args.close:
            close_stdin(client, args.pid)
    finally:
        if bar is not None:
            bar.close()
        source.close()
        client.close()
    return 0


def cmd_close_stdin(args: argparse.Namespace) -> int:
    from tensorlake_sandbox._sync._stdin import close_stdin

    client = make_client(args)
    try:
        close_stdin(client, args.pid)
    finally:
        client.close()
    return 0


def _row(p: Any) -> tuple[str, ...]:
    from tensorlake_api_client.types import Unset

    def shown(value: object) -> str:
        return "" if value is None or isinstance(value, Unset) else str(value)

    exit_ = shown(p.exit_code)
    if not exit_ and shown(p.signal):
        exit_ = f"sig {p.signal}"
    command = " ".join([p.command, *p.args])
    managed = p.managed if not isinstance(p.managed, Unset) else None
    name = "" if managed is None else shown(managed.name)
    return (str(p.pid), name or "-", p.status, exit_, "pipe" if p.stdin_writable else "-", command)


def cmd_ps(args: argparse.Namespace) -> int:
    from tensorlake_api_client.api.sandbox_processes import sandbox_process_list

    client = make_client(args)
    try:
        listing = sandbox_process_list.sync(client=client)
    finally:
        client.close()
    rows = [("PID", "NAME", "STATUS", "EXIT", "STDIN", "COMMAND"), *(_row(p) for p in listing.processes)]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    write_out(
        "stdout",
        "".join(
            "  ".join(cell.ljust(w) for cell, w in zip(r[:5], widths, strict=True)) + "  " + r[5] + "\n"
            for r in rows
        ),
    )
    return 0


def parse_signal(text: str) -> int:
    """A signal number from ``9``, ``KILL`` or ``SIGKILL`` (any case)."""
    if text.isdigit():
        return int(text)
    name = text.upper()
    name = name if name.startswith("SIG") else f"SIG{name}"
    try:
        return int(signal.Signals[name])
    except KeyError:
        fail(f"unknown signal {text!r}; use a number or a name such as TERM, INT or KILL", EXIT_USAGE)


def cmd_kill(args: argparse.Namespace) -> int:
    from tensorlake_api_client.api.sandbox_processes import sandbox_process_kill, sandbox_process_signal
    from tensorlake_api_client.models import SendSignalRequest

    number = parse_signal(args.signal) if args.signal is not None else None
    client = make_client(args)
    try:
        if number is None:
            sandbox_process_kill.sync_detailed(args.pid, client=client)
        else:
            sandbox_process_signal.sync_detailed(
                args.pid, client=client, body=SendSignalRequest(signal=number)
            )
    finally:
        client.close()
    return 0
