"""The package's public surface: explicit, sorted __all__, every name importable, py.typed shipped."""

import subprocess
import sys
from pathlib import Path

import tensorlake_sandbox


def _isort_key(name: str) -> tuple[int, str]:
    """ruff's RUF022 order: CONSTANTS, then Classes, then functions."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_sorted_and_complete():
    names = tensorlake_sandbox.__all__
    assert list(names) == sorted(names, key=_isort_key)
    for name in names:
        assert hasattr(tensorlake_sandbox, name), name


def test_public_names_have_docstrings():
    for name in tensorlake_sandbox.__all__:
        obj = getattr(tensorlake_sandbox, name)
        if callable(obj):
            assert obj.__doc__, name


def test_typed_marker():
    assert (Path(tensorlake_sandbox.__file__).parent / "py.typed").exists()


def test_generated_import_path_for_users():
    from tensorlake_api_client.api.sandbox_processes import sandbox_process_stdin

    for fn in ("sync", "sync_detailed", "asyncio", "asyncio_detailed"):
        assert callable(getattr(sandbox_process_stdin, fn))


def test_every_public_name_is_lazily_importable():
    assert set(tensorlake_sandbox._LAZY) == set(tensorlake_sandbox.__all__)


def test_help_does_not_import_httpx():
    """`tensorlake-sandbox --help` answers without importing httpx or the generated client."""
    code = (
        "import sys, contextlib, io\n"
        "from tensorlake_sandbox.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = [m for m in ('httpx', 'tensorlake_api_client', 'attrs') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""
