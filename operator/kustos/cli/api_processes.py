"""The serving processes of `--processes N` (`$KUSTOS_API_PROCESSES` in the operator):
started, kept running, stopped.

Each is a `kustos api --reuse-port` child on the same address. It gets SIGTERM when its
parent dies, even by SIGKILL (PR_SET_PDEATHSIG, Linux). One that exits while the parent
runs is started again: at once after a long life, and after a doubling delay (up to
`MAX_RESTART_DELAY`) when it keeps exiting soon after its start (a bad certificate, a port
taken), so a broken setting is logged every few seconds instead of spinning a core.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["WORKER_LISTENERS", "ServingProcesses", "serving_argv"]

log = logging.getLogger("kustos.api")

#: A process that ran at least this long is restarted at once when it exits.
HEALTHY_SECONDS = 30.0
#: Delays between restarts of a process that keeps exiting soon after its start.
FIRST_RESTART_DELAY = 0.5
MAX_RESTART_DELAY = 30.0
#: Listening sockets of each child in the port's SO_REUSEPORT group; the first process has
#: one. The first also runs the audit hub and its writer (and, in the operator, Kopf), so it
#: has less time per connection: a child takes about twice its share of new connections.
WORKER_LISTENERS = 2


def serving_argv(
    host: str, port: int, tls_secret: str, insecure: bool, hub: str | None
) -> list[str]:
    """The command line of one serving process (metrics only in the parent)."""
    argv = [sys.executable, "-m", "kustos.cli.main", "api", "--host", host, "--port", str(port)]
    argv += ["--tls-secret", tls_secret, "--reuse-port", "--metrics-port", "0"]
    argv += ["--listeners", str(WORKER_LISTENERS)]
    if insecure:
        argv.append("--insecure")
    if hub is not None:
        argv += ["--audit-hub", hub]
    return argv


@dataclass
class _Slot:
    proc: subprocess.Popen[bytes]
    started: float
    delay: float = 0.0  # before the next start, once this one has exited
    due: float | None = None  # when the next start is due (None: running)


class ServingProcesses:
    """`n` children running `argv`; `supervise` restarts those that exit (module docstring)."""

    def __init__(
        self, argv: Sequence[str], n: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.argv = list(argv)
        self.n = n
        self._clock = clock
        self._slots: list[_Slot] = []
        self._stopping = False
        self._prctl = _prctl()

    def _spawn(self) -> subprocess.Popen[bytes]:
        prctl, term = self._prctl, int(signal.SIGTERM)
        # Between fork and exec, only a C call (no imports, no locks).
        hook = None if prctl is None else (lambda: prctl(1, term) and None)
        return subprocess.Popen(self.argv, preexec_fn=hook)

    def start(self) -> None:
        now = self._clock()
        self._slots = [_Slot(self._spawn(), now) for _ in range(self.n)]

    @property
    def pids(self) -> list[int]:
        return [slot.proc.pid for slot in self._slots if slot.due is None]

    def supervise_once(self) -> int:
        """Start again what exited and is due; returns how many were started."""
        if self._stopping:
            return 0
        started, now = 0, self._clock()
        for index, slot in enumerate(self._slots):
            if slot.due is None:
                code = slot.proc.poll()
                if code is None:
                    continue
                quick = now - slot.started < HEALTHY_SECONDS
                slot.delay = (
                    min(MAX_RESTART_DELAY, max(FIRST_RESTART_DELAY, slot.delay * 2))
                    if quick
                    else 0.0
                )
                slot.due = now + slot.delay
                log.warning(
                    "API process %d exited with %s; starting another in %.1f s",
                    slot.proc.pid,
                    code,
                    slot.delay,
                )
            if slot.due is not None and now >= slot.due:
                self._slots[index] = _Slot(self._spawn(), now, delay=slot.delay)
                started += 1
        return started

    def running(self) -> bool:
        return any(slot.proc.poll() is None for slot in self._slots)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to each (each drains, `kustos api`'s shutdown), then wait; kill stragglers."""
        self._stopping = True
        for slot in self._slots:
            if slot.proc.poll() is None:
                slot.proc.send_signal(signal.SIGTERM)
        for slot in self._slots:
            try:
                slot.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                slot.proc.kill()
                slot.proc.wait()


def _prctl() -> Any:
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
