"""The command line's grammar. Imports nothing heavy, so ``--help`` answers fast."""

from __future__ import annotations

import argparse

__all__ = ["EXIT_CODES", "build_parser"]

# Each exit code once: the commands use the constants, --help shows the table built from them.
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_NOT_WRITABLE = 4
EXIT_AUTH = 5
EXIT_UNAVAILABLE = 6
EXIT_DELIVERY_UNKNOWN = 7
EXIT_INTERRUPTED = 130

_EXIT_MEANINGS = {
    0: "success (exec: the remote process's own exit code; 128+N if killed by signal N)",
    EXIT_ERROR: "the sandbox answered with an unexpected error",
    EXIT_USAGE: "bad usage or configuration (arguments, sandbox name, API key)",
    EXIT_NOT_FOUND: "no such process",
    EXIT_NOT_WRITABLE: "the process's stdin is not writable (not a pipe, closed, or the process exited)",
    EXIT_AUTH: "authentication failed (check TENSORLAKE_API_KEY)",
    EXIT_UNAVAILABLE: "the sandbox could not be reached, or did not answer in time",
    EXIT_DELIVERY_UNKNOWN: "delivery unknown: the last request may or may not have reached the process",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
}
EXIT_CODES = "exit codes:\n" + "".join(f"  {code:<5}{text}\n" for code, text in _EXIT_MEANINGS.items())

_SANDBOX_HELP = (
    "a sandbox ID or name (https://NAME.sandbox.tensorlake.ai), or a base URL such as "
    "http://127.0.0.1:8500 for a local sandbox"
)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("sandbox", metavar="SANDBOX", help=_SANDBOX_HELP)
    p.add_argument(
        "--api-key-file",
        metavar="PATH",
        help="read the API key from this file (default: the TENSORLAKE_API_KEY environment variable)",
    )
    p.add_argument(
        "--timeout", type=float, default=60.0, metavar="SECONDS", help="per-request timeout (default 60)"
    )


def _pid(p: argparse.ArgumentParser) -> None:
    p.add_argument("pid", metavar="PID", type=int, help="the process's operating-system PID")


def _sub(
    subs: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str, example: str
) -> argparse.ArgumentParser:
    return subs.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=f"example:\n  {example}\n\n{EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
        help="largest request body (default 1 MiB)",
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
        "Kill a process (SIGKILL), or send it another signal.",
        "tensorlake-sandbox kill my-sandbox 42 --signal TERM",
    )
    _common(p)
    _pid(p)
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
    p.add_argument(
        "--env", "-e", action="append", default=[], metavar="KEY=VALUE", help="set a variable (repeatable)"
    )
    p.add_argument("--cwd", metavar="DIR", default=None, help="working directory in the sandbox")
    p.add_argument("argv", metavar="COMMAND", nargs="+", help="the command and its arguments, after --")
    p.description = (
        (p.description or "")
        + " Local stdin is forwarded until it ends (then EOF is sent); output is printed live,"
        " line by line. The first Ctrl-C sends SIGINT to the remote process, a second one kills it."
        " Exits with the remote exit code."
    )

    p = _sub(
        subs,
        "local",
        "Run a local sandbox on this machine (the process API on 127.0.0.1; processes run as you).",
        "tensorlake-sandbox local --port 8500",
    )
    p.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser
