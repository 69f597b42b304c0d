"""`make demo` (python -m tensorlake_sandbox.demo) runs end to end: the process reports
reading exactly the bytes the demo wrote, and exits 0."""

import re
import subprocess
import sys


def test_demo_round_trip():
    result = subprocess.run(
        [sys.executable, "-m", "tensorlake_sandbox.demo"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    wrote = re.search(r"wrote (\d+) bytes, sha256 ([0-9a-f]{64}) -> HTTP 204", result.stdout)
    read = re.search(r"process says: read (\d+) bytes, sha256 ([0-9a-f]{64})", result.stdout)
    assert wrote and read, result.stdout
    assert wrote.groups() == read.groups()
    assert "process exited with exit code 0" in result.stdout
    assert "local sandbox stopped" in result.stdout
