"""The sync process layer: `run`, `start`, `RemoteProcess`, `LineStream` (import path kept).

Generated into ``_sync/_process.py`` from ``_async/_process.py`` by `scripts/unasync.py`.
"""

from ._backend import Worker as _Worker  # the thread behind run() and communicate()
from ._sync._process import LineStream, RemoteProcess, run, run_streaming, start

__all__ = ["LineStream", "RemoteProcess", "_Worker", "run", "run_streaming", "start"]
