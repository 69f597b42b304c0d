"""The ``tensorlake-sandbox`` command (also ``python -m tensorlake_sandbox``).

Only argparse is imported up front; each command imports what it needs, so ``--help`` is fast.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from ._parser import build_parser

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["local"]:
        from tensorlake_sandbox.local import main as local_main

        return local_main(argv[1:], prog="tensorlake-sandbox local")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        parser.error(_unrecognized(args, argv, extra))
    import signal
    import threading

    from . import _commands, _exec, _process, _shell
    from ._run import run_guarded

    commands = {
        "stdin": _commands.cmd_stdin,
        "close-stdin": _commands.cmd_close_stdin,
        "ps": _commands.cmd_ps,
        "kill": _commands.cmd_kill,
        "start": _process.cmd_start,
        "restart": _process.cmd_restart,
        "logs": _process.cmd_logs,
        "run": _process.cmd_run,
        "exec": _shell.cmd_exec_tty if getattr(args, "tty", False) else _exec.cmd_exec,
        "shell": _shell.cmd_shell,
    }
    # SIGTERM and SIGHUP (a closed terminal) leave the command as an error would, so that what it
    # holds is let go of (the remote process of `exec` and `run` is killed, as on Ctrl-C), then
    # exit as the signal would have. `exec -t` and `shell` set their own (they detach instead).
    main_thread = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, _stopped) for s in (signal.SIGTERM, signal.SIGHUP)} if main_thread else {}
    try:
        return run_guarded(commands[args.command], args)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _stopped(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _unrecognized(args: object, argv: list[str], extra: list[str]) -> str:
    """argparse's complaint, with the fix when the words were the remote command's own options."""
    message = f"unrecognized arguments: {' '.join(extra)}"
    words = getattr(args, "argv", None)
    if not words or "--" in argv:
        return message
    try:
        at = argv.index(str(getattr(args, "command", "")))
        at = argv.index(str(getattr(args, "sandbox", "")), at + 1)
        at = argv.index(words[0], at + 1)  # where the remote command begins
    except ValueError:
        return f"{message}; put the remote command after --, as in: run SANDBOX -- ls -la /"
    fixed = " ".join([*argv[:at], "--", *argv[at:]])
    return f"{message}; put the remote command after --: tensorlake-sandbox {fixed}"
