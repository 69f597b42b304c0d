"""Plant the most important bugs one at a time and check that the tests catch each (`make mutants`).

Each mutant is a textual edit of the hand-written source: short, distinctive fragments, each
of which must occur exactly once (otherwise the run stops with "mutant no longer applies":
update the fragment after a refactor rather than lose the mutant silently). The working tree
is never touched: every mutant is applied to a fresh copy of the project in a temporary
directory, whose ``src/`` is put first on PYTHONPATH, and the tests named for that mutant run
there. A mutant survives when those tests pass; the command fails if any survives, if the
tests do not pass on the unmutated copy, or if a mutant stops the tests from even running.

    python -m tests.mutants              # every mutant
    python -m tests.mutants timeout-leak # only the named ones
    python -m tests.mutants --list
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
COPIED = ("src", "generated", "tests", "pyproject.toml", "openapi.yaml", "README.md")
# Where fragments are looked for: globs ("|" between several), so that code moving between
# modules does not matter. The hand-written package: its top level, _async/ and _transports/.
SRC = "src/tensorlake_sandbox/*.py|src/tensorlake_sandbox/_async/*.py|src/tensorlake_sandbox/_transports/*.py"
# Anywhere in the package: for fragments that occur once in it (modules may move into folders).
PKG = "src/tensorlake_sandbox/**/*.py"
ASYNC = "src/tensorlake_sandbox/_async/*.py"  # the source of the sync code ...
SYNC = "src/tensorlake_sandbox/_sync/*.py"  # ... generated from it: a mutant edits both
SYNC_STDIN = SYNC
CLI = "src/tensorlake_sandbox/cli/*.py"
RETRY = SRC
CLIENT = SRC
GENERATED_CLIENT = "generated/tensorlake_api_client/client.py"
LOCAL = "src/tensorlake_sandbox/local/*.py"
# The tests each mutant must be caught by. Few distinct sets, so that each runs once on the
# unmutated copy; with -x a caught mutant stops at its first failing test.
STDIN_TESTS = ("tests/test_stdin_faults.py",)
CLIENT_TESTS = ("tests/test_client_http.py",)
LOCAL_TESTS = ("tests/test_local_security.py",)
ENGINE_TESTS = ("tests/test_engine.py",)


@dataclass(frozen=True)
class Mutant:
    name: str
    what: str
    edits: tuple[tuple[str, str, str], ...]  # (file or glob, fragment, replacement)
    tests: tuple[str, ...]  # pytest arguments: files, node ids, -k expressions


MUTANTS = [
    # -- retry classification --------------------------------------------------------------
    Mutant(
        "retry-any-503",
        "every 503 is taken for 'not forwarded' and resent",
        ((RETRY, "if status == 503 and error.code in NOT_FORWARDED_CODES:", "if status == 503:"),),
        STDIN_TESTS,
    ),
    Mutant(
        "retry-5xx-resent",
        "a 502/504/500 after the body is taken for 'not sent' and resent",
        (
            (
                RETRY,
                "            return Outcome.REJECTED\n        return Outcome.UNKNOWN\n",
                "            return Outcome.REJECTED\n        return Outcome.NOT_SENT\n",
            ),
        ),
        STDIN_TESTS,
    ),
    Mutant(
        "retry-dropped-connection-resent",
        "a timeout or dropped connection once bytes may have left is resent",
        (
            (
                RETRY,
                "return Outcome.UNKNOWN if error.may_have_been_sent else Outcome.NOT_SENT",
                "return Outcome.NOT_SENT",
            ),
        ),
        STDIN_TESTS,
    ),
    Mutant(
        "retry-raw-httpx-error-resent",
        "the pure rule takes a read/write failure (raw httpx, or mapped) for 'not sent'",
        (
            (
                RETRY,
                "        return Outcome.UNKNOWN if error.may_have_been_sent else Outcome.NOT_SENT",
                "        return Outcome.NOT_SENT",
            ),
        ),
        ("tests/test_stdin_inputs.py",),
    ),
    # -- 413 halving, and the smaller size kept ---------------------------------------------
    Mutant(
        "413-not-halved",
        "after a 413 the request shrinks by one byte instead of by half",
        ((SRC, "self.limit = max(1, size // 2)", "self.limit = max(1, size - 1)"),),
        STDIN_TESTS,
    ),
    Mutant(
        "413-size-reset-per-chunk",
        "after a 413 the next chunk goes back to the full chunk size",
        (
            (
                SRC,
                "        self.limit = chunk_size\n",
                "        self.limit = self.chunk_size = chunk_size\n",
            ),
            (
                SYNC_STDIN,
                "            chunk = source.take(state.limit)\n",
                "            state.limit = state.chunk_size  # type: ignore[attr-defined]\n"
                "            chunk = source.take(state.limit)\n",
            ),
        ),
        STDIN_TESTS,
    ),
    # -- byte accounting --------------------------------------------------------------------
    Mutant(
        "accounting-delivered-reset",
        "bytes_delivered counts only the last confirmed request",
        ((SRC, "self.delivered += size\n", "self.delivered = size\n"),),
        STDIN_TESTS,
    ),
    Mutant(
        "accounting-unknown-counts-the-failed-request",
        "DeliveryUnknownError counts the unconfirmed request as delivered",
        (
            (
                SRC,
                "unknown.bytes_delivered = self.delivered\n",
                "unknown.bytes_delivered = self.delivered + size\n",
            ),
        ),
        STDIN_TESTS,
    ),
    Mutant(
        "accounting-annotate-off-by-request",
        "a refused request's error reports the request size as delivered",
        (
            (
                SRC,
                "error.bytes_delivered = self.delivered",
                "error.bytes_delivered = self.delivered + size",
            ),
        ),
        STDIN_TESTS,
    ),
    # -- per-call timeout scope -------------------------------------------------------------
    Mutant(
        "timeout-leak",
        "a per-call timeout stays in force for the calls after it",
        (
            (
                SRC,
                "    if timeout is None:\n        return UNSET\n",
                # Remember the last override and apply it to calls that give none.
                "    global _last\n"
                "    if timeout is None:\n"
                '        return globals().get("_last", UNSET)\n'
                "    _last = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)\n",
            ),
        ),
        STDIN_TESTS,
    ),
    Mutant(
        "default-timeout-connect-60",
        "the connect timeout is 60 s instead of the README's 10 s",
        ((CLIENT, "httpx.Timeout(60.0, connect=10.0)", "httpx.Timeout(60.0, connect=60.0)"),),
        CLIENT_TESTS,
    ),
    # -- key secrecy --------------------------------------------------------------------------
    Mutant(
        "key-in-client-repr",
        "repr(client) shows the key",
        (
            (
                CLIENT,
                'return f"SandboxClient(base_url={self._base_url!r})"',
                'return f"SandboxClient(base_url={self._base_url!r}, token={self.token!r})"',
            ),
        ),
        CLIENT_TESTS,
    ),
    Mutant(
        "key-in-auth-repr",
        "repr of the bearer auth shows the key",
        ((GENERATED_CLIENT, 'return "BearerAuth(<secret>)"', 'return f"BearerAuth({self._value})"'),),
        CLIENT_TESTS,
    ),
    # -- the engine: the one transport and the one client factory ---------------------------
    Mutant(
        "engine-smuggled-response-trusted",
        "bytes after a complete response are left for the next request's answer",
        (
            (ASYNC, "        if conn.h11.trailing_data[0] or late:\n", "        if False:\n"),
            (SYNC, "        if conn.h11.trailing_data[0] or late:\n", "        if False:\n"),
        ),
        ENGINE_TESTS,
    ),
    Mutant(
        "engine-204-body-trusted",
        "a 204 that announces a body is taken as it is",
        ((SRC, "    if event.status_code == 204 and (", "    if False and ("),),
        ("tests/test_client_hardening.py",),
    ),
    Mutant(
        "engine-connect-failure-may-have-been-sent",
        "a refused connection is reported as 'may have been sent' (no retry)",
        (
            (
                ASYNC,
                '    "connect": (httpx.ConnectTimeout, httpx.ConnectError, httpx.ConnectError),',
                '    "connect": (httpx.WriteTimeout, httpx.WriteError, httpx.ConnectError),',
            ),
            (
                SYNC,
                '    "connect": (httpx.ConnectTimeout, httpx.ConnectError, httpx.ConnectError),',
                '    "connect": (httpx.WriteTimeout, httpx.WriteError, httpx.ConnectError),',
            ),
        ),
        ENGINE_TESTS,
    ),
    Mutant(
        "engine-write-failure-not-sent",
        "a failure while the body is sent is taken for 'not sent' (resent: duplicated bytes)",
        (
            (
                ASYNC,
                '    "write": (httpx.WriteTimeout, httpx.WriteError, httpx.RemoteProtocolError),',
                '    "write": (httpx.ConnectTimeout, httpx.ConnectError, httpx.RemoteProtocolError),',
            ),
            (
                SYNC,
                '    "write": (httpx.WriteTimeout, httpx.WriteError, httpx.RemoteProtocolError),',
                '    "write": (httpx.ConnectTimeout, httpx.ConnectError, httpx.RemoteProtocolError),',
            ),
        ),
        ("tests/test_stdin_faults.py", "tests/test_engine.py"),
    ),
    Mutant(
        "engine-loopback-through-proxy",
        "a loopback sandbox is sent to the environment's proxy (with the key)",
        ((SRC, "    if not is_loopback_host(base.host):", "    if True:"),),
        ENGINE_TESTS,
    ),
    Mutant(
        "proxy-credentials-dropped",
        "the proxy URL's user and password are not sent on CONNECT (a 407 for every request)",
        (
            (ASYNC, "        if proxy.username:\n", "        if False:\n"),
            (SYNC, "        if proxy.username:\n", "        if False:\n"),
        ),
        ("tests/test_proxy.py", "-k", "credentials"),
    ),
    Mutant(
        "proxy-refusal-taken-for-a-tunnel",
        "a proxy's refusal of the CONNECT is taken for an open tunnel",
        (
            (ASYNC, "        if status // 100 != 2:", "        if False:"),
            (SYNC, "        if status // 100 != 2:", "        if False:"),
        ),
        ("tests/test_proxy.py", "-k", "refused"),
    ),
    Mutant(
        "proxy-tunnel-in-clear",
        "requests through the proxy's tunnel are sent without TLS (the key in clear to the proxy)",
        (
            (ASYNC, '                if scheme == "https":\n', "                if False:\n"),
            (SYNC, '                if scheme == "https":\n', "                if False:\n"),
        ),
        ("tests/test_proxy.py",),
    ),
    Mutant(
        "tls-records-unlocked",
        "two threads on one TLS connection (a sync terminal) use OpenSSL at once",
        (
            (
                ASYNC,
                "        self._openssl = threading.Lock()",
                "        self._openssl = __import__('contextlib').nullcontext()",
            ),
            (
                SYNC,
                "        self._openssl = threading.Lock()",
                "        self._openssl = __import__('contextlib').nullcontext()",
            ),
        ),
        ("tests/test_engine_attacks.py", "-k", "two_threads"),
    ),
    Mutant(
        "tls-late-records-ignored",
        "a smuggled answer in a TLS record of its own is left for the next request",
        (
            (ASYNC, "        late = conn.late_records()", "        late = None"),
            (SYNC, "        late = conn.late_records()", "        late = None"),
        ),
        ("tests/test_engine_attacks.py", "-k", "tls"),
    ),
    Mutant(
        "early-error-answer-lost",
        "an error answered before the body was read is lost to the failed write",
        (
            (
                ASYNC,
                "            if cut is not None and not (isinstance(event, h11.Response)",
                "            if cut is not None and (True or isinstance(event, h11.Response)",
            ),
            (
                SYNC,
                "            if cut is not None and not (isinstance(event, h11.Response)",
                "            if cut is not None and (True or isinstance(event, h11.Response)",
            ),
        ),
        ("tests/test_engine_attacks.py", "-k", "before_the_body"),
    ),
    Mutant(
        "forked-child-keeps-the-parents-pool",
        "a forked child keeps the parent's idle sockets and lock (reuses them, or deadlocks)",
        (
            (ASYNC, "after_in_child=lambda: [t.forked() for t in list(_TRANSPORTS)]", "after_in_child=list"),
            (SYNC, "after_in_child=lambda: [t.forked() for t in list(_TRANSPORTS)]", "after_in_child=list"),
        ),
        ("tests/test_engine_attacks.py", "-k", "fork"),
    ),
    Mutant(
        "sync-timeout-per-call",
        "a sync timeout bounds each socket call, not its whole block",
        (
            (
                SRC,
                "    token = _deadline.set(end if outer is None else outer if end is None else ",
                "    token = _deadline.set(end if True else outer if end is None else ",
            ),
        ),
        ("tests/test_engine_attacks.py", "-k", "trickles"),
    ),
    # -- the local sandbox's Host check and loopback bind -------------------------------------
    Mutant(
        "host-check-off",
        "the local sandbox answers any Host (DNS rebinding)",
        (
            (
                LOCAL,
                "return self._allowed_hosts is None or host.lower() in self._allowed_hosts",
                "return True",
            ),
        ),
        LOCAL_TESTS,
    ),
    Mutant(
        "bind-all-addresses",
        "the local sandbox listens on every address while its URL still says 127.0.0.1",
        (
            (LOCAL, "        sock.bind((host, port))\n", '        sock.bind(("0.0.0.0", port))\n'),
            (
                LOCAL,
                "    host, port = sock.getsockname()[:2]\n",
                "    host, port = sock.getsockname()[:2]\n"
                '    host = "127.0.0.1" if host == "0.0.0.0" else host\n',
            ),
        ),
        LOCAL_TESTS,
    ),
    # -- fidelity to the daemon (issue 22) ------------------------------------------------------
    Mutant(
        "kill-misses-detached-children",
        "kill reaches only the process group: a child that ran setsid survives",
        (
            (
                LOCAL,
                "    if not _LINUX or not roots:\n        return set()\n",
                "    if True:\n        return set()\n",
            ),
        ),
        ("tests/test_local_tree.py",),
    ),
    Mutant(
        "pty-kill-removes-at-once",
        "a killed terminal disappears at once instead of staying visible, dead, for the grace",
        ((LOCAL, "                await asyncio.sleep(self.kill_grace)\n", ""),),
        ("tests/test_terminal.py", "-k", "killed_terminal"),
    ),
    Mutant(
        "managed-never-restarted",
        "the supervisor never restarts a managed process, whatever its policy",
        ((LOCAL, '        return config.policy == "always" or failed\n', "        return False\n"),),
        ("tests/test_local_managed.py",),
    ),
    # -- the process layer (run, communicate, follow) -------------------------------------------
    Mutant(
        "run-broken-stream-not-killed",
        "a broken run event stream leaves the process running",
        (
            (ASYNC, "        if state.returncode is None:\n", "        if False:\n"),
            (SYNC, "        if state.returncode is None:\n", "        if False:\n"),
        ),
        ("tests/test_process.py", "-k", "broken_run_stream"),
    ),
    Mutant(
        "communicate-second-input-ignored",
        "a second communicate(input=...) is silently ignored instead of refused",
        (
            (
                ASYNC,
                "        elif input is not None:\n            raise ValueError(",
                "        elif False:\n            raise ValueError(",
            ),
            (
                SYNC,
                "        elif input is not None:\n            raise ValueError(",
                "        elif False:\n            raise ValueError(",
            ),
        ),
        ("tests/test_process.py", "-k", "second_communicate"),
    ),
    Mutant(
        "run-no-fallback-without-the-run-endpoint",
        "against a sandbox without /processes/run, run fails instead of starting and following",
        (
            (ASYNC, "        if state.pid is None and is_missing(worker.error):\n", "        if False:\n"),
            (SYNC, "        if state.pid is None and is_missing(worker.error):\n", "        if False:\n"),
        ),
        ("tests/test_process.py", "-k", "without_the_run_endpoint"),
    ),
    Mutant(
        "run-timeout-rounded-down",
        "the server-side run timeout (whole seconds) is rounded down, below the caller's",
        ((PKG, "body.timeout = max(1, math.ceil(timeout))", "body.timeout = max(1, math.floor(timeout))"),),
        ("tests/test_run_wire.py", "-k", "rounded_up"),
    ),
    Mutant(
        "run-oom-as-137",
        "a run ended by the OOM killer reports 137 instead of -9",
        (
            (
                PKG,
                'if event.oom_killed is True or event.reason == "oom_killed":\n'
                "        return -int(_signal.SIGKILL)",
                'if event.oom_killed is True or event.reason == "oom_killed":\n'
                "        return 128 + int(_signal.SIGKILL)",
            ),
        ),
        ("tests/test_run_wire.py", "-k", "oom"),
    ),
    Mutant(
        "status-oom-as-137",
        "a process the OOM killer ended reports 137 instead of -9 from its status",
        (
            (
                PKG,
                'if info.status == "oom_killed":\n        return -int(_signal.SIGKILL)',
                'if info.status == "oom_killed":\n        return 128 + int(_signal.SIGKILL)',
            ),
        ),
        ("tests/test_run_wire.py", "-k", "oom"),
    ),
    Mutant(
        "stream-read-timeout",
        "output streams keep the client's read timeout: a run silent for longer is broken and killed",
        (
            (
                PKG,
                "return httpx.Timeout(connect=t.connect, read=None,",
                "return httpx.Timeout(connect=t.connect, read=t.read,",
            ),
        ),
        ("tests/test_process.py", "-k", "silent_for_longer"),
    ),
    Mutant(
        "positions-jump-accepted",
        "a jump in the output positions (lines dropped) is taken as the next line",
        (
            (
                PKG,
                "        if position < self.next:\n            return False\n        raise self.lost(",
                "        if position < self.next:\n            return False\n"
                "        self.next = position + 1\n        return True\n        raise self.lost(",
            ),
        ),
        ("tests/test_output_positions.py",),
    ),
    Mutant(
        "gap-event-ignored",
        "a gap event past the lines taken raises nothing",
        (
            (
                PKG,
                "        if to > self.next:\n            raise self.lost(",
                "        if False:\n            raise self.lost(",
            ),
        ),
        ("tests/test_output_positions.py",),
    ),
    # -- the terminal client -------------------------------------------------------------------
    Mutant(
        "terminal-read-never-times-out",
        "Terminal.read(timeout) waits forever when nothing arrives",
        (
            (
                ASYNC,
                "                if left is not None and left <= _POLL:\n"
                "                    raise TimeoutError",
                "                if False:\n                    raise TimeoutError",
            ),
            (
                SYNC,
                "                if left is not None and left <= _POLL:\n"
                "                    raise TimeoutError",
                "                if False:\n                    raise TimeoutError",
            ),
        ),
        ("tests/test_terminal.py", "-k", "nothing_arrives"),
    ),
    Mutant(
        "terminal-input-frame-over-the-server-limit",
        "input frames grow past the 64 KiB the server accepts",
        ((PKG, "MAX_INPUT_FRAME = 32 * 1024", "MAX_INPUT_FRAME = 128 * 1024"),),
        ("tests/test_terminal_protocol.py",),
    ),
    Mutant(
        "terminal-resize-rows-cols-swapped",
        "a resize frame sends rows where the server reads cols",
        ((PKG, 'struct.pack(">BHH", OP_RESIZE, cols, rows)', 'struct.pack(">BHH", OP_RESIZE, rows, cols)'),),
        ("tests/test_terminal_protocol.py",),
    ),
    Mutant(
        "terminal-exit-reason-misread",
        "the exit code in an 'exit:<code>' close reason is misread",
        ((PKG, "        return int(reason[5:])\n", "        return int(reason[6:] or -1)\n"),),
        ("tests/test_terminal_protocol.py",),
    ),
    # -- the local PTY server ------------------------------------------------------------------
    Mutant(
        "pty-kill-never-sigkill",
        "killing a terminal never escalates to SIGKILL: a program ignoring SIGHUP survives",
        (
            (
                LOCAL,
                "kill_tree(self.proc.pid, self.owner, signal.SIGKILL, group=",
                "kill_tree(self.proc.pid, self.owner, signal.SIGHUP, group=",
            ),
        ),
        ("tests/test_terminal.py", "-k", "ignores_sighup"),
    ),
    Mutant(
        "pty-history-trimmed-at-the-wrong-end",
        "a full terminal history drops its newest output instead of its oldest",
        (
            (LOCAL, "            first = self._chunks[0]\n", "            first = self._chunks[-1]\n"),
            (LOCAL, "                self._chunks.popleft()\n", "                self._chunks.pop()\n"),
            (
                LOCAL,
                "                self._chunks[0] = first[excess:]\n",
                "                self._chunks[-1] = first[:-excess]\n",
            ),
        ),
        ("tests/test_terminal.py", "-k", "oldest_output"),
    ),
    Mutant(
        "pty-lone-paused-reader-dropped",
        "a terminal's only reader, paused, is closed instead of holding the program back",
        (
            (
                LOCAL,
                "                if len(stalled) == len(self.clients):\n                    continue",
                "                if False:\n                    continue",
            ),
        ),
        ("tests/test_terminal_flow.py", "-k", "paused_reader"),
    ),
    # -- the transport's error mapping -----------------------------------------------------------
    Mutant(
        "pool-timeout-may-have-been-sent",
        "a timeout waiting for a connection (nothing sent) is reported as 'may have been sent'",
        ((PKG, "    httpx.PoolTimeout,\n    httpx.UnsupportedProtocol,", "    httpx.UnsupportedProtocol,"),),
        ("tests/test_errors.py",),
    ),
    Mutant(
        "engine-body-read-errors-unmapped",
        "a failure while the engine reads an answer's body escapes as a raw socket/h11 error",
        (
            (
                ASYNC,
                '            self._conn.close()\n            fail(exc, "read", self._request)',
                "            self._conn.close()\n            raise",
            ),
            (
                SYNC,
                '            self._conn.close()\n            fail(exc, "read", self._request)',
                "            self._conn.close()\n            raise",
            ),
        ),
        ("tests/test_errors.py", "-k", "cut_short_through_the_own"),
    ),
    Mutant(
        "malformed-answer-unmapped",
        "a malformed or cut HTTP answer escapes as an h11 error, not a connection error",
        (
            (
                ASYNC,
                "    elif isinstance(exc, h11.ProtocolError):  # a malformed",
                "    elif False:  # a malformed",
            ),
            (
                SYNC,
                "    elif isinstance(exc, h11.ProtocolError):  # a malformed",
                "    elif False:  # a malformed",
            ),
        ),
        ("tests/test_errors.py", "-k", "malformed_answer"),
    ),
    # -- the CLI ------------------------------------------------------------------------------------
    Mutant(
        "cli-timeout-said-unreachable",
        "a timeout is described as 'cannot reach the sandbox'",
        ((CLI, "    if isinstance(error, (SandboxTimeoutError, httpx.TimeoutException)):", "    if False:"),),
        ("tests/test_first_hour.py", "-k", "no_answer_in_time"),
    ),
    Mutant(
        "cli-shell-no-eof-at-end-of-input",
        "`shell` does not forward the end of its input (Ctrl-D) when local stdin ends",
        (
            (
                CLI,
                "                    stdin = None\n"
                "                    with contextlib.suppress(Exception):\n"
                '                        self.term.write(b"\\x04")',
                "                    stdin = None\n"
                "                    with contextlib.suppress(Exception):\n"
                "                        pass",
            ),
        ),
        ("tests/test_first_hour.py", "-k", "piped_input"),
    ),
    Mutant(
        "cli-not-found-exits-126",
        "a command missing in the sandbox exits 126 instead of 127",
        ((CLI, "    if any(r in reason.lower() for r in _NOT_FOUND_REASONS):", "    if False:"),),
        ("tests/test_first_hour.py", "-k", "exits_127 or exits_126"),
    ),
    Mutant(
        "cli-cannot-run-exits-1",
        "a command the sandbox cannot run exits 1 instead of 126",
        (
            (
                CLI,
                'cannot run it in the sandbox ({reason})", EXIT_CANNOT_RUN)',
                'cannot run it in the sandbox ({reason})", EXIT_ERROR)',
            ),
        ),
        ("tests/test_first_hour.py", "-k", "exits_127 or exits_126"),
    ),
    Mutant(
        "timeout-upper-bound-gone",
        "a timeout longer than the sandbox takes is sent instead of refused",
        ((PKG, "if not 0 < timeout <= MAX_TIMEOUT:", "if not 0 < timeout:"),),
        ("tests/test_first_hour.py", "-k", "cannot_take"),
    ),
    # -- the local process server ---------------------------------------------------------------
    Mutant(
        "follow-resume-off-by-one",
        "a follow resumed with Last-Event-ID repeats the last line the client saw",
        ((LOCAL, "    position = int(last) + 1\n", "    position = int(last)\n"),),
        ("tests/test_output_integrity.py", "-k", "last_event_id"),
    ),
    Mutant(
        "managed-backoff-not-doubled",
        "a managed process's restart backoff never grows",
        ((LOCAL, "max(1, self._backoff_ms * 2))", "max(1, self._backoff_ms))"),),
        ("tests/test_local_managed.py", "-k", "backoff"),
    ),
    Mutant(
        "managed-name-not-found",
        "a managed process cannot be found by its name",
        (
            (
                LOCAL,
                "        return None if supervisor is None else supervisor.current\n",
                "        return None\n",
            ),
        ),
        ("tests/test_local_managed.py", "-k", "by_name"),
    ),
    Mutant(
        "validation-deep-json-500",
        "a deeply nested JSON body is a 500 instead of a 400",
        (
            (
                LOCAL,
                "    except RecursionError:\n        raise ValueError(",
                "    except ZeroDivisionError:\n        raise ValueError(",
            ),
        ),
        ("tests/test_local_validation.py",),
    ),
]


class NoLongerApplies(Exception):
    pass


def copy_project(dest: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".hypothesis")
    for name in COPIED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        else:
            shutil.copy2(src, dest / name)


def paths(tree: Path, pattern: str) -> list[Path]:
    """The files of ``tree`` that ``pattern`` (globs separated by "|") names."""
    return sorted({p for glob in pattern.split("|") for p in tree.glob(glob)})


def apply(mutant: Mutant, tree: Path) -> None:
    """Apply each edit; ``file`` may be a glob (code moves between modules): the fragment must
    occur exactly once in all the files it matches together."""
    for pattern, fragment, replacement in mutant.edits:
        hits = [(p, p.read_text().count(fragment)) for p in paths(tree, pattern)]
        count = sum(n for _, n in hits)
        if count != 1:
            raise NoLongerApplies(
                f"mutant {mutant.name!r} no longer applies: {pattern} contains the fragment {count} times "
                f"(expected exactly once):\n{fragment}\nupdate its definition in tests/mutants.py"
            )
        path = next(p for p, n in hits if n)
        path.write_text(path.read_text().replace(fragment, replacement))


def run_tests(tree: Path, args: tuple[str, ...]) -> tuple[int, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tree / "src"), str(tree / "generated"), str(tree)])
    env.pop("PYTEST_ADDOPTS", None)
    # What a mutant run asks is whether an assertion catches the bug. A connection the garbage
    # collector finds unclosed at some later point (a warning the suite turns into an error)
    # would decide it by timing instead, so that warning is ignored here (not in `make test`).
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    # The mutants' tests use neither plugin; loading them costs seconds per run. One worker: the
    # first failure ends the run at once.
    cmd += ["-p", "no:schemathesis.pytest.plugin", "-p", "no:_hypothesis_pytestplugin", "-n", "0"]
    cmd += ["-W", "ignore::pytest.PytestUnraisableExceptionWarning"]
    # A mutant that makes a test hang is caught too, after 30 s rather than the suite's five minutes.
    cmd += ["-o", "timeout=30", *args]
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout + done.stderr


def imports_from(tree: Path) -> bool:
    """The copy's source, not the project's, is what the tests import."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tree / "src"), str(tree / "generated")]))
    probe = "import tensorlake_sandbox, sys; sys.stdout.write(tensorlake_sandbox.__file__)"
    out = subprocess.run([sys.executable, "-c", probe], cwd=tree, env=env, capture_output=True, text=True)
    return out.stdout.startswith(str(tree))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutants", description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", help="mutants to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    opts = parser.parse_args(argv)
    if opts.list:
        for m in MUTANTS:
            print(f"{m.name:45} {m.what}")
        return 0
    unknown = set(opts.names) - {m.name for m in MUTANTS}
    if unknown:
        parser.error(f"no such mutant: {', '.join(sorted(unknown))} (see --list)")
    chosen = [m for m in MUTANTS if not opts.names or m.name in opts.names]

    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="tl-mutants-") as tmp:
        # Every fragment must apply before anything runs.
        for mutant in chosen:
            scratch = Path(tmp) / "check"
            copy_project(scratch)
            try:
                apply(mutant, scratch)
            except NoLongerApplies as exc:
                failures.append(str(exc))
            shutil.rmtree(scratch)
        if failures:
            print("\n\n".join(failures), file=sys.stderr)
            return 1
        baseline = Path(tmp) / "baseline"
        copy_project(baseline)
        assert imports_from(baseline), "the copy's src/ is not what the tests import"
        passing: set[tuple[str, ...]] = set()
        for mutant in chosen:
            started = time.monotonic()
            if mutant.tests not in passing:
                code, output = run_tests(baseline, mutant.tests)
                if code != 0:
                    print(output[:3000], "\n...\n", output[-2000:], file=sys.stderr)
                    print(f"the tests for {mutant.name!r} fail without the mutant", file=sys.stderr)
                    return 1
                passing.add(mutant.tests)
            tree = Path(tmp) / mutant.name
            copy_project(tree)
            apply(mutant, tree)
            code, output = run_tests(tree, mutant.tests)
            took = time.monotonic() - started
            if code == 1:
                caught = next((line for line in output.splitlines() if line.startswith("FAILED")), "")
                print(f"killed    {mutant.name:45} {took:5.1f} s  {caught[:100]}")
            elif code == 0:
                print(f"SURVIVED  {mutant.name:45} {took:5.1f} s  ({mutant.what})")
                failures.append(f"{mutant.name}: {mutant.what}")
            else:
                print(output[-3000:], file=sys.stderr)
                print(f"ERROR     {mutant.name}: pytest exit code {code} (the mutant broke the run)")
                failures.append(f"{mutant.name}: pytest exit code {code}")
            shutil.rmtree(tree)
    if failures:
        print(f"\n{len(failures)} of {len(chosen)} mutants not killed:\n  " + "\n  ".join(failures))
        return 1
    print(f"\nall {len(chosen)} mutants killed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
