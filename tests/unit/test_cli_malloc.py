"""The operator caps glibc's malloc arenas before it starts threads."""

from __future__ import annotations

import platform
import subprocess
import sys
import threading

import pytest

from kustos.cli import malloc
from kustos.cli.malloc import ARENAS

_THREADS_ALLOCATING = """
import ctypes, ctypes.util, sys, threading
from kustos.cli.malloc import limit_arenas
if sys.argv[1] == "cap":
    assert limit_arenas()
barrier = threading.Barrier(8)
def work():
    barrier.wait()
    for _ in range(2000):
        blocks = [bytearray(600) for _ in range(50)]
        del blocks
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
ctypes.CDLL(ctypes.util.find_library("c")).malloc_stats()  # one "Arena n:" per arena
"""


def _probe(script: str, mode: str) -> subprocess.CompletedProcess[str]:
    """`script` in a fresh interpreter (its allocator untouched by this one), given `mode`."""
    return subprocess.run(
        [sys.executable, "-c", script, mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def _arenas(mode: str) -> int:
    out = _probe(_THREADS_ALLOCATING, mode)
    return sum(line.startswith("Arena ") for line in out.stderr.splitlines())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_threads_share_at_most_the_capped_arenas() -> None:
    """Eight threads allocating at once: with the cap, glibc makes no more than ARENAS."""
    assert 1 <= _arenas("cap") <= ARENAS
    assert _arenas("nocap") > ARENAS  # the probe does make arenas without the cap


def test_the_operator_command_sets_it_before_kopf_runs() -> None:
    """`kustos run` calls it first (its threads would already have arenas otherwise)."""
    probe = (
        "import kopf, kustos.cli.malloc as m, kustos.cli.main as c\n"
        "calls = []\n"
        "m.limit_arenas = lambda *a: calls.append('arenas') or True\n"
        "m.start_trimmer = lambda *a: calls.append('trimmer')\n"
        "kopf.run = lambda **k: calls.append('kopf')\n"
        "import kustos.cli.api_cmd as a; a.serve_in_operator = lambda: None\n"
        "c.cli(['run'], standalone_mode=False)\n"
        "print(calls)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "['arenas', 'trimmer', 'kopf']"


_FREED_BELOW_THE_TOP = """
import ctypes, ctypes.util, sys
from kustos.cli.malloc import trim
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
base = rss()
blocks = [bytearray(1000) for _ in range(200_000)]  # about 200 MiB of small malloc blocks
keep = blocks[-1]  # one live block at the top: glibc cannot shrink the heap by itself
del blocks[-1]
del blocks
before = rss()
released = trim() if sys.argv[1] == "trim" else False
print(base, before, rss(), released)
"""


def _freed(mode: str) -> tuple[int, int, int, str]:
    out = _probe(_FREED_BELOW_THE_TOP, mode)
    base, before, after, released = out.stdout.split()
    return int(base), int(before), int(after), released


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc_trim")
def test_trim_hands_back_what_was_freed_below_a_live_block() -> None:
    """Freed memory under a live block stays resident until `trim` releases it."""
    base, before, after, released = _freed("trim")
    assert before - base > 100 << 20, (base, before)  # freed, yet still resident
    assert released == "True"
    assert before - after > 100 << 20, (before, after)
    base, _, after, _ = _freed("none")
    assert after - base > 100 << 20, (base, after)  # without trim glibc keeps it


def test_the_trimmer_trims_until_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon thread calls `trim` every interval and stops when told."""
    calls: list[int] = []
    twice = threading.Event()

    def counting() -> bool:
        calls.append(1)
        if len(calls) >= 2:
            twice.set()
        return True

    monkeypatch.setattr(malloc, "trim", counting)
    stop = threading.Event()
    thread = malloc.start_trimmer(stop, interval=0.01)
    assert thread is not None and thread.daemon
    assert twice.wait(10)
    stop.set()
    thread.join(10)
    assert not thread.is_alive()
