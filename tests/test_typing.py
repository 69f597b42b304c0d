"""What a user's type checker sees: the generated functions, used through `sandbox_client`."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROGRAM = textwrap.dedent(
    """
    import io

    from tensorlake_api_client.api.sandbox_processes import sandbox_process_get, sandbox_process_stdin
    from tensorlake_api_client.models import ProcessInfo
    from tensorlake_api_client.types import File
    from tensorlake_sandbox import sandbox_client

    client = sandbox_client(base_url="http://127.0.0.1:8500", api_key="key")
    info = sandbox_process_get.sync(1, client=client, timeout=5.0)
    reveal_type(info)
    exact: ProcessInfo = info
    print(exact.pid + 1)
    sandbox_process_stdin.sync(1, client=client, body=File(payload=io.BytesIO(b"x")))
    """
)


def test_mypy_strict_sees_exactly_processinfo_through_sandbox_client(tmp_path):
    program = tmp_path / "user_program.py"
    program.write_text(PROGRAM)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file=",
            f"--cache-dir={ROOT / '.mypy_cache'}",  # shared with make check's mypy: warm
            str(program),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
        env={**os.environ, "MYPYPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'generated'}"},
    )
    revealed = [
        line.split("Revealed type is ", 1)[1] for line in out.stdout.splitlines() if "Revealed" in line
    ]
    assert revealed == ['"tensorlake_api_client.models.process_info.ProcessInfo"'], out.stdout
    assert out.returncode == 0, out.stdout + out.stderr
