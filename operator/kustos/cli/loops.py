"""The event loop the long-running commands (`kustos run`, `kustos api`) run on: uvloop's.

uvloop implements the loop, its sockets and its TLS transport in C (asyncio's TLS in
Python 3.11 is a Python state machine on memory BIOs), so the API answers more per core
under the same code; Kopf's own CLI picks it the same way. docs/benchmarks.md has the A/B.
"""

from __future__ import annotations

import asyncio

import uvloop

__all__ = ["runner"]


def runner() -> asyncio.Runner:
    """An `asyncio.Runner` on a new uvloop event loop (`with runner() as r: r.run(...)`)."""
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)
