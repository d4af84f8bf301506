"""A per-object serialized work queue with a bounded worker pool and timers.

Kopf's own shape (`kopf/_core/reactor/queueing.py`): work for one object never runs twice at
once, and triggers that arrive while it runs are coalesced into the next run (a burst of
events becomes one reconcile). Triggers may be delayed (`submit(..., delay=)`: rotation due
times, retry backoff, the spread of a periodic pass); one dispatcher thread moves due
triggers to the workers. The queue knows nothing of ManagedSecrets: `process(key, triggers)`
is given by the adapter.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

__all__ = ["ObjectQueue", "jittered"]

log = logging.getLogger(__name__)
K = TypeVar("K", bound=Hashable)
T = TypeVar("T", bound=Hashable)


def jittered(seconds: float, spread: float = 0.2, rng: random.Random | None = None) -> float:
    """`seconds` ± `spread` (a fraction): retries and periodic passes of many objects or
    replicas do not fall into step."""
    draw = (rng or random).uniform(-spread, spread)
    return max(0.0, seconds * (1.0 + draw))


class ObjectQueue(Generic[K, T]):
    def __init__(
        self,
        process: Callable[[K, frozenset[T]], None],
        workers: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._process = process
        self._clock = clock
        self._workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kustos-work")
        self._cond = threading.Condition()
        self._pending: dict[K, set[T]] = {}  # triggers due now, per object
        self._ready: deque[K] = deque()  # objects with due triggers, not running, in arrival order
        self._running: set[K] = set()
        self._timers: list[tuple[float, int, K, T]] = []
        self._seq = itertools.count()
        self._stopped = False
        self._thread = threading.Thread(target=self._dispatch, name="kustos-queue", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout=timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, key: K, trigger: T, delay: float = 0.0) -> None:
        with self._cond:
            if self._stopped:
                return
            if delay > 0:
                heapq.heappush(self._timers, (self._clock() + delay, next(self._seq), key, trigger))
            else:
                self._add(key, trigger)
            self._cond.notify_all()

    def size(self) -> int:
        with self._cond:
            return len(self._pending) + len(self._running)

    def wait_idle(self, timeout: float) -> bool:
        """Tests and benchmarks: wait until nothing is pending or running (timers aside)."""
        deadline = self._clock() + timeout
        with self._cond:
            while self._pending or self._running:
                left = deadline - self._clock()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    # -- inside ------------------------------------------------------------------------
    def _add(self, key: K, trigger: T) -> None:
        triggers = self._pending.get(key)
        if triggers is None:
            self._pending[key] = {trigger}
            if key not in self._running:
                self._ready.append(key)
        else:
            triggers.add(trigger)

    def _dispatch(self) -> None:
        with self._cond:
            while not self._stopped:
                now = self._clock()
                while self._timers and self._timers[0][0] <= now:
                    _, _, key, trigger = heapq.heappop(self._timers)
                    self._add(key, trigger)
                while self._ready and len(self._running) < self._workers:
                    key = self._ready.popleft()
                    triggers = frozenset(self._pending.pop(key))
                    self._running.add(key)
                    self._pool.submit(self._run, key, triggers)
                # Woken by submit, by a worker that finished, or by the next timer.
                self._cond.wait(self._timers[0][0] - now if self._timers else None)

    def _run(self, key: K, triggers: frozenset[T]) -> None:
        try:
            self._process(key, triggers)
        except Exception:
            log.exception("processing %s failed", key)
        finally:
            with self._cond:
                self._running.discard(key)
                if key in self._pending:
                    self._ready.append(key)  # triggers that came while it ran
                self._cond.notify_all()
