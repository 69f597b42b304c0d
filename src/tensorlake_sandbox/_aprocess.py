"""The async process layer: `arun`, `astart`, `AsyncRemoteProcess`, `AsyncLineStream` (import path kept).

The source of truth is ``_async/_process.py``; the sync half is generated from it.
"""

from ._async._process import AsyncLineStream, AsyncRemoteProcess, arun, arun_streaming, astart

__all__ = ["AsyncLineStream", "AsyncRemoteProcess", "arun", "arun_streaming", "astart"]
