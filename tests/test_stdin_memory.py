"""Peak memory of write_stdin: 192 MiB from a file keeps the client's peak RSS under 64 MiB.

Three times the limit is enough to see a writer that keeps what it sent (it ran with 512 MiB,
at nearly three times the cost).

httpx keeps each request in reference cycles, so a body would linger until the cycle
collector runs; the writer frees each body once sent. Measured in a fresh subprocess (its
own VmHWM), streaming to a process in the local sandbox that discards its stdin.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

PROBE = textwrap.dedent(
    """
    import asyncio, sys
    from tensorlake_sandbox import awrite_stdin, sandbox_client, write_stdin

    def vm_hwm_mib():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError("no VmHWM")

    url, token, pid, path, mode = sys.argv[1:6]
    client = sandbox_client(base_url=url, api_key=token)
    with open(path, "rb") as f:
        if mode == "sync":
            n = write_stdin(client, int(pid), f)
        else:
            async def main():
                try:
                    return await awrite_stdin(client, int(pid), f)
                finally:
                    await client.aclose()
            n = asyncio.run(main())
    print(n, round(vm_hwm_mib(), 1))
    """
)

SIZE = 192 << 20
LIMIT_MIB = 64


def _peak(local_sandbox, start_process, tmp_path, mode: str) -> float:
    path = tmp_path / "big.bin"
    with open(path, "wb") as f:
        f.write(os.urandom(1 << 20))
        f.truncate(SIZE)  # the rest is sparse: zeros, no disk, still read in full
    info = start_process("sh", "-c", "cat > /dev/null", stdin="pipe")
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            local_sandbox.base_url,
            local_sandbox.token,
            str(info.pid),
            str(path),
            mode,
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    sent, peak = out.stdout.split()
    assert int(sent) == SIZE
    print(f"{SIZE >> 20} MiB via write_stdin ({mode}): client peak RSS {peak} MiB")
    return float(peak)


def test_sync_peak_rss_for_192_mib(local_sandbox, start_process, tmp_path):
    assert _peak(local_sandbox, start_process, tmp_path, "sync") < LIMIT_MIB


def test_async_peak_rss_for_192_mib(local_sandbox, start_process, tmp_path):
    assert _peak(local_sandbox, start_process, tmp_path, "async") < LIMIT_MIB
