"""The arguments of ``shell`` and ``exec -t`` (argparse only: ``--help`` stays fast)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

__all__ = ["DETACH_HELP", "TOKEN_ENV", "add_shell_parser", "add_tty_option"]

TOKEN_ENV = "TENSORLAKE_PTY_TOKEN"
DETACH_HELP = "Ctrl-] then d detaches (the program keeps running); Ctrl-] Ctrl-] sends a Ctrl-]."


def add_tty_option(exec_parser: argparse.ArgumentParser) -> None:
    exec_parser.add_argument(
        "--tty",
        "-t",
        action="store_true",
        help="run the command on a terminal (a PTY session) instead of pipes: output arrives byte by "
        "byte, prompts show at once, interactive programs work. " + DETACH_HELP,
    )


def add_shell_parser(
    subs: argparse._SubParsersAction[Any],
    sub: Callable[..., argparse.ArgumentParser],
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    p = sub(
        subs,
        "shell",
        "Open an interactive terminal in a sandbox (its login shell, or a command after --).",
        "tensorlake-sandbox shell my-sandbox -- python3 -i",
    )
    common(p)  # SANDBOX, --api-key-file, --timeout, --env, --cwd
    p.add_argument(
        "--attach",
        metavar="SESSION_ID",
        default=None,
        help="reattach to a detached session (its history is replayed first)",
    )
    p.add_argument(
        "--token-file",
        metavar="PATH",
        default=None,
        help=f"the session's token for --attach (default: ${TOKEN_ENV}, else the file written at detach)",
    )
    p.add_argument("argv", metavar="COMMAND", nargs="*", help="the command and its arguments, after --")
    p.description = (
        (p.description or "")
        + " This terminal is put in raw mode and restored on exit; the window size follows along."
        + " Exits with the remote exit code. "
        + DETACH_HELP
    )
