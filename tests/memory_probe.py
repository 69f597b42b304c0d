"""Run in a subprocess by the memory tests: send a file through the shim, print peak RSS.

usage: python -m tests.memory_probe BASE_URL FILE sync|async
Prints "baseline_kib peak_kib": VmHWM after a 1-byte warm-up send, and after the file.
"""

import asyncio
import io
import sys

from tensorlake_api_client.api.sandbox_processes import sandbox_process_stdin
from tensorlake_api_client.types import File
from tensorlake_sandbox import sandbox_client


def vm_hwm_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def main() -> None:
    url, path, mode = sys.argv[1:4]
    client = sandbox_client(base_url=url, api_key="probe-key")

    async def send_async(payload: object) -> None:
        await sandbox_process_stdin.asyncio_detailed(1, client=client, body=File(payload=payload))  # type: ignore[arg-type]

    def send(payload: object) -> None:
        if mode == "sync":
            sandbox_process_stdin.sync_detailed(1, client=client, body=File(payload=payload))  # type: ignore[arg-type]
        else:
            asyncio.run(send_async(payload))

    send(io.BytesIO(b"x"))
    baseline = vm_hwm_kib()
    with open(path, "rb") as f:
        send(f)
    print(baseline, vm_hwm_kib())


if __name__ == "__main__":
    main()
