"""What the local sandbox says when its dependencies (the ``local`` extra) are not installed."""

from __future__ import annotations

import sys

__all__ = ["EXTRA_MODULES", "MISSING_EXTRA", "main"]

# Top-level modules of the ``local`` extra.
EXTRA_MODULES = frozenset({"uvicorn", "starlette", "sse_starlette", "h11"})
MISSING_EXTRA = 'the local sandbox needs the "local" extra: pip install "tensorlake-sandbox-client[local]"'


def main(argv: list[str] | None = None, *, prog: str = "python -m tensorlake_sandbox.local") -> int:
    """Print one line naming the missing extra; exit status 1."""
    print(f"{prog}: error: {MISSING_EXTRA}", file=sys.stderr)
    return 1
