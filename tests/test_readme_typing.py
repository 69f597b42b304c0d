"""Every python block of README.md passes ``mypy --strict`` as a user's program would (issue 23).

Each block is checked on its own, in one mypy run (with the project's warm cache): a file per
block, opened by the names the README's blocks use without defining them (``client``, ``pid``,
...; the same ones `test_readme.py` gives when it runs them), declared with their types, and by
the imports of the blocks before it (a reader, and `test_readme.py`, runs them in order). The
official SDK ships no type information: importing it is not counted as an error (a user's
``mypy --strict`` says the same about it, whatever this package does).
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

from .test_readme import PYTHON, Block

ROOT = Path(__file__).resolve().parent.parent

# What test_readme.given_names provides, as a type checker sees it.
PRELUDE = textwrap.dedent(
    """\
    # mypy: disable-error-code="no-redef, import-untyped"
    from tensorlake_sandbox import SandboxClient

    client: SandboxClient
    pid: int
    token: str
    sandbox_ingress_endpoint: str
    data: bytes
    """
)


def mypy_strict(files: list[Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file=",
            "--no-error-summary",
            f"--cache-dir={ROOT / '.mypy_cache'}",  # shared with make check's mypy: warm
            *map(str, files),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "MYPYPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT / 'generated'}"},
    )


def imports_of(code: str) -> str:
    tree = ast.parse(code)
    return "".join(
        ast.unparse(node) + "\n" for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
    )


def block_files(blocks: list[Block], folder: Path) -> dict[Path, Block]:
    files = {}
    earlier = ""
    for block in blocks:
        path = folder / f"readme_block_{block.number:02d}.py"
        head = PRELUDE + earlier
        path.write_text(head + block.code)
        files[path] = block
        earlier += imports_of(block.code)
    return files


def test_every_python_block_passes_mypy_strict(tmp_path: Path) -> None:
    files = block_files(PYTHON, tmp_path)
    out = mypy_strict(list(files), tmp_path)
    errors = [line for line in out.stdout.splitlines() if ": error:" in line]
    named = []
    for line in errors:
        match = re.match(r"(readme_block_\d+\.py):(\d+)", line)
        block = files[tmp_path / match.group(1)] if match else None
        named.append(f"{block}: {line}")
    assert not named, "\n".join(named)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_check_catches_a_type_error(tmp_path: Path) -> None:
    bad = Block(
        0,
        "python",
        1,
        "planted",
        "from tensorlake_sandbox import start\n"
        "p = start(client, ['cat'], stdin=False)\n"
        "p.stdin.write(b'x')\n",
    )
    files = block_files([bad], tmp_path)
    out = mypy_strict(list(files), tmp_path)
    assert "None" in out.stdout and out.returncode != 0, out.stdout
