"""The C allocator's settings for a long-running Kustos process (glibc only; elsewhere a no-op).

glibc gives each thread that allocates while another holds the main heap's lock an arena of
its own, up to eight per core, and memory freed into an arena stays with that arena. The
operator runs Kopf's threads, a worker pool and the API's threads. At 10,000 objects its RSS
at rest stays near the peak of the periodic pass over them (VmHWM 331 MiB, VmRSS 259-263
MiB, `docs/benchmarks.md`, issue 9): freed memory that is not handed back. Two arenas bound
how many heaps can each keep such memory. It must run before the process starts threads.
"""

from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["ARENAS", "limit_arenas"]

#: `mallopt`'s M_ARENA_MAX (glibc's malloc.h).
_M_ARENA_MAX = -8
#: Arenas per process (glibc's default: eight per core).
ARENAS = 2


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas at `arenas`; False where there is no glibc `mallopt`."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, arenas))
