"""Ctrl-C (SIGINT) during write_stdin, in a subprocess: it raises KeyboardInterrupt promptly,
says that the request in flight may or may not have arrived, and leaves no thread that would
keep the interpreter alive.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PROBE = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    from tensorlake_sandbox import sandbox_client, write_stdin
    from tests.servers.fault import FaultServer, Slow

    where = sys.argv[1]
    server = FaultServer(plan=[Slow(60)] if where == "request" else []).start()
    client = sandbox_client(base_url=server.base_url, api_key="k", timeout=120)
    release = threading.Event()
    blocked = threading.Event()

    def source():
        yield b"first"
        blocked.set()
        release.wait(60)  # blocked, as a quiet pipe or an idle producer would be
        yield b"never"

    def interrupt_when_sent():
        # "first" has arrived (and, with Slow, is held); for "source", the writer now waits on it.
        server.wait_accepted(5, timeout=30)
        if where == "source":
            blocked.wait(30)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt_when_sent, daemon=True).start()
    started = time.monotonic()
    try:
        write_stdin(client, 1, source())
    except KeyboardInterrupt as exc:
        print("interrupted after", round(time.monotonic() - started, 1), "s")
        print("notes:", getattr(exc, "__notes__", []))
    else:
        print("not interrupted")
    alive = [t.name for t in threading.enumerate() if not t.daemon and t is not threading.main_thread()]
    print("non-daemon threads:", alive)
    sys.stdout.flush()
    os._exit(0)  # the fault server's own threads are not under test
    """
)


@pytest.mark.parametrize("where", ["request", "source"])
def test_ctrl_c_interrupts_promptly(where):
    out = subprocess.run(
        [sys.executable, "-c", PROBE, where],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        check=True,
    ).stdout
    assert "interrupted after" in out, out
    seconds = float(out.split("interrupted after", 1)[1].split()[0])
    assert seconds < 10
    assert "non-daemon threads: []" in out
    if where == "request":
        assert "may or may not have arrived" in out
