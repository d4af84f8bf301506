"""The operator caps glibc's malloc arenas before it starts threads."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

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


def _arenas(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _THREADS_ALLOCATING, mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
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
        "kopf.run = lambda **k: calls.append('kopf')\n"
        "import kustos.cli.api_cmd as a; a.serve_in_operator = lambda: None\n"
        "c.cli(['run'], standalone_mode=False)\n"
        "print(calls)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "['arenas', 'kopf']"
