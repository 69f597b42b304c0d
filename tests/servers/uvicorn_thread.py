"""Run an ASGI app under uvicorn on 127.0.0.1 in a background thread, for tests.

The local sandbox's own runner (tensorlake_sandbox.local._runner) does the work.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tensorlake_sandbox.local._runner import ServerThread, bind, make_config


@contextmanager
def serve_in_thread(app: Any, *, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``app`` on a free loopback port; yield its base URL; stop on exit."""
    sock = bind(host, 0)
    server = ServerThread(make_config(app, lifespan="off"), sock, name="test-server")
    server.start()
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.stop(10)
