"""The package's public surface: explicit, sorted __all__, every name importable, py.typed shipped."""

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
