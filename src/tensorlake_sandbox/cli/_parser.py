"""The command line's grammar. Imports nothing heavy, so ``--help`` answers fast."""

from __future__ import annotations

import argparse
import sys
from typing import Any, NoReturn

from . import _shell_args

__all__ = ["EXIT_CODES", "build_parser"]

# Each exit code once: the commands use the constants, --help shows the table built from them.
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_NOT_WRITABLE = 4
EXIT_AUTH = 5
EXIT_UNAVAILABLE = 6
EXIT_DELIVERY_UNKNOWN = 7
EXIT_TIMEOUT = 124
EXIT_CANNOT_RUN = 126  # a shell's codes: found but not runnable, and not found
EXIT_COMMAND_NOT_FOUND = 127
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 128 + 13  # SIGPIPE: like a local writer whose reader went away

_EXIT_MEANINGS = {
    0: "success (exec: the remote process's own exit code; 128+N if killed by signal N)",
    EXIT_ERROR: "an unexpected error from the sandbox, or output that could not be written (disk full)",
    EXIT_USAGE: "bad usage or configuration (arguments, sandbox name, API key, a closed stdout)",
    EXIT_NOT_FOUND: "no such process (or terminal session)",
    EXIT_NOT_WRITABLE: "the process's stdin is not writable (not a pipe, closed, or the process exited)",
    EXIT_AUTH: "authentication failed (TENSORLAKE_API_KEY, or a terminal session's token)",
    EXIT_UNAVAILABLE: "the sandbox could not be reached, or did not answer in time",
    EXIT_DELIVERY_UNKNOWN: "delivery unknown: the last request may or may not have reached the process",
    EXIT_TIMEOUT: "run: the --timeout expired (the remote process was killed)",
    EXIT_CANNOT_RUN: "the command was found in the sandbox but cannot be run (permission, format)",
    EXIT_COMMAND_NOT_FOUND: "the command was not found in the sandbox",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
    EXIT_BROKEN_PIPE: "the output pipe closed (exec, run, shell: the remote process was killed)",
}
EXIT_CODES = "exit codes:\n" + "".join(f"  {code:<5}{text}\n" for code, text in _EXIT_MEANINGS.items())


class _Parser(argparse.ArgumentParser):
    """argparse, with each usage error on one line that says where the help is."""

    def error(self, message: str) -> NoReturn:
        if sys.stderr is not None:  # closed (2>&-): never onto stdout instead
            print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (0 < value < float("inf")):
        raise argparse.ArgumentTypeError(f"{text} is not a positive, finite number of seconds")
    from tensorlake_sandbox._client import MAX_TIMEOUT  # the library's rule: one place

    if value > MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(
            f"{text} seconds is longer than the sandbox takes; give at most {MAX_TIMEOUT}"
        )
    return value


_SANDBOX_HELP = (
    "a sandbox ID or name (https://NAME.sandbox.tensorlake.ai), or a base URL such as "
    "http://127.0.0.1:8500 for a local sandbox"
)


def _sandbox_and_key(p: argparse.ArgumentParser) -> None:
    p.add_argument("sandbox", metavar="SANDBOX", help=_SANDBOX_HELP)
    p.add_argument(
        "--api-key-file",
        metavar="PATH",
        help="read the API key from this file (default: the TENSORLAKE_API_KEY environment variable)",
    )


def _common(p: argparse.ArgumentParser) -> None:
    _sandbox_and_key(p)
    p.add_argument(
        "--timeout", type=_seconds, default=60.0, metavar="SECONDS", help="per-request timeout (default 60)"
    )


def _pid(p: argparse.ArgumentParser) -> None:
    p.add_argument("pid", metavar="PID", type=_positive_int, help="the process's operating-system PID")


def _pid_or_name(text: str) -> int | str:
    if text.lstrip("+-").isdigit():  # a number (a name is never all digits): must be a positive one
        return _positive_int(text)
    from tensorlake_sandbox._process_rules import check_name

    try:
        return check_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _process_ref(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "pid",
        metavar="PROCESS",
        type=_pid_or_name,
        help="the process's PID, or the name of a managed process (started with --name)",
    )


def _sub(
    subs: argparse._SubParsersAction[Any], name: str, summary: str, example: str
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subs.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=f"example:\n  {example}\n\n{EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tensorlake-sandbox",
        description="Feed bytes to processes in Tensorlake sandboxes, from any shell.",
        epilog=(
            "examples:\n"
            "  producer | tensorlake-sandbox stdin my-sandbox 42 --close\n"
            "  printf 'hi\\n' | tensorlake-sandbox exec my-sandbox -- sh -c 'cat; exit 3'\n"
            "  tensorlake-sandbox local            # a sandbox on this machine, for trying things\n\n"
            + EXIT_CODES
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = _sub(
        subs,
        "stdin",
        "Stream a file or this command's stdin into a process's stdin (in order, never twice).",
        "seq 100000 | tensorlake-sandbox stdin my-sandbox 42 --close",
    )
    _common(p)
    _pid(p)
    p.add_argument(
        "file", metavar="FILE", nargs="?", default="-", help="the file to send; - (default) is stdin"
    )
    p.add_argument("--close", action="store_true", help="send EOF (close the process's stdin) at the end")
    p.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        metavar="BYTES",
        help="largest request body (default 2 MiB, the sandbox's limit)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar, even on a terminal")

    p = _sub(
        subs,
        "close-stdin",
        "Close a process's stdin: the process reads EOF.",
        "tensorlake-sandbox close-stdin my-sandbox 42",
    )
    _common(p)
    _pid(p)

    p = _sub(subs, "ps", "List the processes in a sandbox.", "tensorlake-sandbox ps my-sandbox")
    _common(p)

    p = _sub(
        subs,
        "kill",
        "Kill a process and what it started (SIGKILL; a managed one: SIGTERM, SIGKILL after a grace,"
        " and no restart), or send it another signal.",
        "tensorlake-sandbox kill my-sandbox 42 --signal TERM",
    )
    _common(p)
    _process_ref(p)
    p.add_argument(
        "--signal",
        "-s",
        metavar="SIGNAL",
        default=None,
        help="send this signal (a number, or a name like TERM or SIGINT) instead of SIGKILL",
    )

    p = _sub(
        subs,
        "exec",
        "Run a command in a sandbox with this terminal's stdin, stdout and stderr (like docker exec -i).",
        "printf 'hi\\n' | tensorlake-sandbox exec my-sandbox -- sh -c 'cat; exit 3'",
    )
    _common(p)
    _command_options(p)
    _shell_args.add_tty_option(p)
    p.description = (
        (p.description or "")
        + " Local stdin is forwarded until it ends (then EOF is sent); output is printed live,"
        " line by line. The first Ctrl-C sends SIGINT to the remote process, a second one kills it."
        " Exits with the remote exit code."
    )

    _process_commands(subs)
    _shell_args.add_shell_parser(subs, _sub, _common_env_cwd)

    p = _sub(
        subs,
        "local",
        "Run a local sandbox on this machine (the process API on 127.0.0.1; processes run as you).",
        "tensorlake-sandbox local --port 8500",
    )
    p.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


class _Version(argparse.Action):
    """``--version``: read from the installed package's metadata only when asked."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object):
        super().__init__(option_strings, dest, nargs=0, help=kwargs.get("help"))  # type: ignore[arg-type]

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        from importlib.metadata import version

        print(f"{parser.prog} {version('tensorlake-sandbox-client')}")
        raise SystemExit(0)


def _env_cwd(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--env", "-e", action="append", default=[], metavar="KEY=VALUE", help="set a variable (repeatable)"
    )
    p.add_argument("--cwd", metavar="DIR", default=None, help="working directory in the sandbox")


def _common_env_cwd(p: argparse.ArgumentParser) -> None:
    """The shell's options: SANDBOX, --api-key-file, --timeout, --env, --cwd."""
    _common(p)
    _env_cwd(p)


def _command_options(p: argparse.ArgumentParser) -> None:
    _env_cwd(p)
    p.add_argument("argv", metavar="COMMAND", nargs="+", help="the command and its arguments, after --")


def _process_commands(subs: argparse._SubParsersAction[Any]) -> None:
    """start, logs, run: driving a process (cli/_process.py)."""
    p = _sub(
        subs,
        "start",
        "Start a command in a sandbox in the background and print its PID.",
        "tensorlake-sandbox start my-sandbox --stdin -- python3 -i",
    )
    _common(p)
    p.add_argument("--stdin", action="store_true", help="give it a stdin pipe (write with the stdin command)")
    p.add_argument(
        "--name",
        metavar="NAME",
        default=None,
        help="make it a managed process with this name: other commands take the name instead of the PID,"
        " and the sandbox restarts it per --restart",
    )
    p.add_argument(
        "--restart",
        choices=("never", "on_failure", "always"),
        default=None,
        help="when the sandbox restarts it (makes it managed; default with --name: on_failure)",
    )
    _command_options(p)

    p = _sub(
        subs,
        "restart",
        "Restart a managed process (stop it, SIGTERM then SIGKILL, and start it again); print its new PID.",
        "tensorlake-sandbox restart my-sandbox web",
    )
    _common(p)
    _process_ref(p)

    p = _sub(
        subs,
        "logs",
        "Print a process's output: stdout by default; -f follows it until the process ends.",
        "tensorlake-sandbox logs my-sandbox 42 -f",
    )
    _common(p)
    _process_ref(p)
    p.add_argument(
        "--follow", "-f", action="store_true", help="keep printing new lines until the process ends"
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--stderr", dest="stream", action="store_const", const="stderr", help="stderr instead")
    which.add_argument(
        "--output", dest="stream", action="store_const", const="output", help="stdout and stderr, merged"
    )
    p.set_defaults(stream="stdout")

    p = _sub(
        subs,
        "run",
        "Run a command in a sandbox (no stdin), print its output as it comes, exit with its code.",
        "tensorlake-sandbox run my-sandbox --timeout 60 -- make test",
    )
    _sandbox_and_key(p)
    p.add_argument(
        "--timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="kill the command (and what it started) after this long, and exit 124 (default: no limit)",
    )
    p.set_defaults(request_timeout=60.0)
    _command_options(p)
    p.description = (
        (p.description or "")
        + " stdout and stderr go to this command's stdout and stderr, line by line. Exits with the"
        " remote exit code (128+N when killed by signal N). Ctrl-C kills the remote command."
    )
