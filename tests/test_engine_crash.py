"""The engine survives every way a program uses one client: threads, loops, fork, Ctrl-C.

One `SandboxClient` is used, in this order, from a short-lived thread (the first use: the
one that imports the transport), the main thread, three successive thread pools, several
``asyncio.run()`` loops, ``asyncio.to_thread``, a forked child, and a call interrupted by
SIGINT (Ctrl-C) mid-request; then once more from the main thread. The interpreter must
survive (a native transport that faults once the thread that imported it has exited kills
it with SIGSEGV), and the bytes the server accepted must be exactly the bytes the client
counted, plus the interrupted request that the server had already taken.

It runs in a plain interpreter (``python -c``), so that no pytest plugin imports anything
on the main thread first: that is what hid the crash in the rest of the suite.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent(
    """
    import asyncio, os, signal, sys, threading, time
    from concurrent.futures import ThreadPoolExecutor
    from tensorlake_sandbox import awrite_stdin, sandbox_client, write_stdin
    from tests.servers.fault import FaultServer, Slow

    server = FaultServer().start()
    client = sandbox_client(base_url=server.base_url, api_key="k", timeout=30)
    SMALL, LARGE = b"s" * 16, b"L" * (100 * 1024)  # a small body and one over 64 KiB
    counted = 0

    def write(data):
        return write_stdin(client, 1, data)

    def add(n):
        global counted
        counted += n

    # 1. first use from short-lived threads, each gone before the next use
    for data in (SMALL, LARGE, SMALL):
        box = []
        t = threading.Thread(target=lambda: box.append(write(data)))
        t.start(); t.join()
        add(box[0])
    # 2. the main thread
    for data in (SMALL, LARGE, SMALL):
        add(write(data))
    # 3. three successive thread pools
    for _ in range(3):
        with ThreadPoolExecutor(2) as pool:
            for n in pool.map(write, [SMALL, LARGE, SMALL, SMALL]):
                add(n)
    # 4. several event loops, one after the other, with concurrent writes
    async def fan_out():
        return sum(await asyncio.gather(*(awrite_stdin(client, 1, d) for d in (SMALL, LARGE, SMALL))))
    for _ in range(3):
        add(asyncio.run(fan_out()))
    # 5. asyncio.to_thread inside a loop, then the loop's own writes
    async def mixed():
        n = await asyncio.to_thread(write, SMALL)
        n += await asyncio.to_thread(write, LARGE)
        return n + await awrite_stdin(client, 1, SMALL)
    add(asyncio.run(mixed()))
    # 6. a forked child writes with the same client, and exits on its own
    pid = os.fork()
    if pid == 0:
        try:
            ok = write(SMALL) == len(SMALL) and write(LARGE) == len(LARGE)
        except BaseException as exc:
            print("child failed:", repr(exc), flush=True)
            ok = False
        os._exit(0 if ok else 3)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, f"forked child: status {status}"
    add(len(SMALL) + len(LARGE))
    # 7. Ctrl-C while a request is in flight (the server took the body and does not answer)
    server.plan.append(Slow(60))
    def interrupt():
        server.wait_accepted(counted + len(SMALL), timeout=30)
        os.kill(os.getpid(), signal.SIGINT)
    threading.Thread(target=interrupt, daemon=True).start()
    try:
        write(SMALL)
    except KeyboardInterrupt:
        interrupted = len(SMALL)
    else:
        raise AssertionError("not interrupted")
    # 8. and the client still works, from a new thread and from the main thread
    box = []
    t = threading.Thread(target=lambda: box.append(write(LARGE)))
    t.start(); t.join()
    add(box[0])
    add(write(SMALL))
    assert server.wait_accepted(counted + interrupted, timeout=10)
    assert server.accepted_count == counted + interrupted, (server.accepted_count, counted, interrupted)
    print("survived", counted, interrupted, flush=True)
    os._exit(0)  # the fault server's threads (one still sleeping in Slow) are not under test
    """
)


def test_one_client_survives_threads_loops_fork_and_ctrl_c():
    proc = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode != -signal.SIGSEGV, f"the interpreter crashed (SIGSEGV):\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    assert "survived" in proc.stdout, proc.stdout
