"""``make demo``: write bytes to a process's stdin in a local sandbox, with the generated client.

It starts a local sandbox, starts a process whose stdin is a pipe, writes bytes to it,
closes its stdin, waits for it to exit and prints what it printed: the byte count and
SHA-256 of what it read, which must match what was sent.
"""

from __future__ import annotations

import hashlib
import io
import sys
import time

from tensorlake_api_client.api.sandbox_processes import (
    sandbox_process_close_stdin,
    sandbox_process_get,
    sandbox_process_output,
    sandbox_process_start,
    sandbox_process_stdin,
)
from tensorlake_api_client.models import StartProcessRequest, StdinMode
from tensorlake_api_client.types import File
from tensorlake_sandbox.local import LocalSandbox

# The process: read stdin to the end, then report what it got.
READER = (
    "import hashlib, sys; data = sys.stdin.buffer.read(); "
    "print(f'read {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}')"
)


def main() -> int:
    data = b"".join(f"line {i}: hello from the demo\n".encode() for i in range(10_000))
    with LocalSandbox() as sandbox:
        client = sandbox.client()
        print(f"local sandbox at {sandbox.base_url}")

        request = StartProcessRequest(command=sys.executable, args=["-c", READER], stdin_mode=StdinMode.PIPE)
        proc = sandbox_process_start.sync(client=client, body=request)
        print(f"started pid {proc.pid} ({proc.status}, stdin writable: {proc.stdin_writable})")

        # Non-2xx answers raise a typed error from tensorlake_sandbox, so a status here is a success.
        response = sandbox_process_stdin.sync_detailed(
            proc.pid, client=client, body=File(payload=io.BytesIO(data))
        )
        digest = hashlib.sha256(data).hexdigest()
        print(f"wrote {len(data)} bytes, sha256 {digest} -> HTTP {int(response.status_code)}")
        sandbox_process_close_stdin.sync_detailed(proc.pid, client=client)
        print("closed stdin")

        info = proc
        while info.status == "running":
            time.sleep(0.05)
            info = sandbox_process_get.sync(proc.pid, client=client)
        output = sandbox_process_output.sync(proc.pid, client=client)
        for line in output.lines:
            print(f"  process says: {line}")
        print(f"process {info.status} with exit code {info.exit_code}")
    print("local sandbox stopped")
    return 0 if info.exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
