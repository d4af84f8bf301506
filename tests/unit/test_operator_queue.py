"""The operator's per-object queue and the watch-event rules of its runtime: one run per
object at a time, triggers coalesced while it runs, a bounded pool, timers; status-only
watch events are no trigger."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from typing import Any

from tests.unit.fakes import managed

from kustos.operator.queue import ObjectQueue, jittered
from kustos.operator.runtime import _what_changed
from kustos.services.controller.controller import Trigger
from kustos.services.rotation.service import ANNOTATION_ROTATE_NOW


def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_one_run_per_object_at_a_time_and_triggers_coalesce() -> None:
    running: dict[str, int] = defaultdict(int)
    overlap: list[str] = []
    runs: list[tuple[str, frozenset[str]]] = []
    release = threading.Event()
    lock = threading.Lock()

    def process(key: str, triggers: frozenset[str]) -> None:
        with lock:
            running[key] += 1
            if running[key] > 1:
                overlap.append(key)
            runs.append((key, triggers))
        if key == "a" and len(runs) == 1:
            release.wait(5)
        with lock:
            running[key] -= 1

    queue: ObjectQueue[str, str] = ObjectQueue(process, workers=4)
    queue.start()
    try:
        queue.submit("a", "first")
        wait_until(lambda: len(runs) == 1)
        for trigger in ("x", "y", "x", "z"):  # while "a" runs
            queue.submit("a", trigger)
        queue.submit("b", "other")
        wait_until(lambda: any(k == "b" for k, _ in runs))  # b is not blocked behind a
        release.set()
        assert queue.wait_idle(30)
    finally:
        queue.stop()
    assert overlap == []
    assert [t for k, t in runs if k == "a"] == [frozenset({"first"}), frozenset({"x", "y", "z"})]


def test_the_pool_is_bounded() -> None:
    active, peak = [0], [0]
    lock = threading.Lock()

    def process(key: int, triggers: frozenset[str]) -> None:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.02)
        with lock:
            active[0] -= 1

    queue: ObjectQueue[int, str] = ObjectQueue(process, workers=3)
    queue.start()
    try:
        for key in range(20):
            queue.submit(key, "t")
        assert queue.wait_idle(30)
    finally:
        queue.stop()
    assert peak[0] == 3


def test_delayed_triggers_wait_for_their_time() -> None:
    seen: list[tuple[float, frozenset[str]]] = []
    queue: ObjectQueue[str, str] = ObjectQueue(
        lambda key, triggers: seen.append((time.monotonic(), triggers)), workers=2
    )
    queue.start()
    try:
        start = time.monotonic()
        queue.submit("a", "later", delay=0.3)
        queue.submit("a", "now")
        wait_until(lambda: len(seen) == 2)
    finally:
        queue.stop()
    assert seen[0][1] == frozenset({"now"})
    assert seen[1][1] == frozenset({"later"}) and seen[1][0] - start >= 0.3


def test_jitter_stays_within_its_spread() -> None:
    draws = [jittered(10.0, 0.2) for _ in range(500)]
    assert all(8.0 <= d <= 12.0 for d in draws)
    assert len({round(d, 3) for d in draws}) > 100  # not in step


def test_watch_events_map_to_triggers() -> None:
    body = managed("db", {"name": "x"}, generation=1)
    assert _what_changed(None, body) is Trigger.CHANGED
    status_only = managed("db", {"name": "x"}, generation=1, status={"arn": "a"})
    assert _what_changed(body, status_only) is None  # our own status patch
    assert _what_changed(body, managed("db", {"name": "y"}, generation=2)) is Trigger.CHANGED
    recreated = managed("db", {"name": "x"}, generation=1, uid="other")
    assert _what_changed(body, recreated) is Trigger.CHANGED
    rotate = managed("db", {"name": "x"}, annotations={ANNOTATION_ROTATE_NOW: "t1"})
    assert _what_changed(body, rotate) is Trigger.ROTATE_NOW
