"""The C allocator's settings for a long-running Kustos process (glibc only; elsewhere a no-op).

glibc gives each thread that allocates while another holds the main heap's lock an arena of
its own, up to eight per core, and memory freed into an arena stays with that arena. The
operator runs Kopf's threads, a worker pool and the API's threads. At 10,000 objects its RSS
at rest stayed near the peak of the periodic pass over them (VmHWM 331 MiB, VmRSS 259-263
MiB, issue 9), which looked like freed memory not handed back. Two arenas bound how many
heaps can each keep such memory. It must run before the process starts threads.

glibc gives memory back on its own only from the top of the main heap, so what a burst of
work frees below its last live block stays resident. `start_trimmer` hands such pages back
(`malloc_trim(0)` releases the free pages of every arena) once every `TRIM_SECONDS` from a
daemon thread: a walk of the free lists that takes milliseconds and holds each arena's lock
only while it walks that arena.

Measured at 10,000 objects (docs/benchmarks.md, session 13), neither the cap nor the trim
lowered RSS at rest (262 MiB with both, 259-263 without): that memory was live, mostly the
store's pooled SQLite connections (`kustos.store.migrate.POOL_KEPT`). The peaks were lower
in the runs with both (VmHWM 312 MiB after the apply, against 331-332), one run each.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from collections.abc import Callable
from functools import cache

__all__ = ["ARENAS", "TRIM_SECONDS", "limit_arenas", "start_trimmer", "trim"]

log = logging.getLogger(__name__)

#: `mallopt`'s M_ARENA_MAX (glibc's malloc.h).
_M_ARENA_MAX = -8
#: Arenas per process (glibc's default: eight per core).
ARENAS = 2
#: How often the trimmer hands freed memory back to the system.
TRIM_SECONDS = 30.0


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def _function(symbol: str, *argtypes: type[ctypes._SimpleCData[int]]) -> Callable[..., int] | None:
    """libc's `symbol` taking `argtypes` and returning an int; None where libc lacks it."""
    libc = _libc()
    function = getattr(libc, symbol, None) if libc is not None else None
    if function is None:
        return None
    function.argtypes = list(argtypes)
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas at `arenas`; False where there is no glibc `mallopt`."""
    mallopt = _function("mallopt", ctypes.c_int, ctypes.c_int)
    if mallopt is None:
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas))


def trim() -> bool | None:
    """Hand the free pages of every arena back to the system: True if any were, None where
    there is no glibc `malloc_trim`."""
    malloc_trim = _function("malloc_trim", ctypes.c_size_t)
    if malloc_trim is None:
        return None
    return bool(malloc_trim(0))


def start_trimmer(stop: threading.Event, interval: float = TRIM_SECONDS) -> threading.Thread | None:
    """A daemon thread that calls `trim` every `interval` seconds until `stop` is set; None
    (no thread) where there is nothing to call."""
    if _function("malloc_trim") is None:
        return None

    def loop() -> None:
        while not stop.wait(interval):
            try:
                trim()
            except Exception:  # never take the process down over memory housekeeping
                log.exception("malloc_trim failed")

    thread = threading.Thread(target=loop, name="kustos-malloc-trim", daemon=True)
    thread.start()
    return thread
