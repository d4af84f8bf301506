"""The rotation loop: finds ManagedSecrets with rotation work and runs it off Kopf's workers.

One background thread lists the ManagedSecrets every `interval` seconds (one request) and
hands each object that has a `rotation` section, or rotation state in its status, to a small
thread pool; an object is never in the pool twice. The first pass runs at start, so rotations
that a stopped or killed operator left in progress resume at once. `submit` runs one object
now (the `kustos.io/rotate-now` annotation handler uses it). Like the resync loop, it puts no
finalizer on the objects.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kustos.errors import KustosError

__all__ = ["RotationLoop"]

log = logging.getLogger(__name__)


def has_rotation_work(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    return bool(
        (obj.get("spec") or {}).get("rotation")
        or status.get("rotation")
        or status.get("nextRotationAt")
    )


class RotationLoop:
    def __init__(
        self,
        list_objects: Callable[[], list[dict[str, Any]]],
        rotate: Callable[[dict[str, Any]], None],
        interval: float,
        workers: int,
    ) -> None:
        self._list = list_objects
        self._rotate = rotate
        self._interval = interval
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kustos-rotate")
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kustos-rotation", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, obj: dict[str, Any]) -> bool:
        """Queue `obj` unless it is queued or running already; False when it was."""
        uid = str(obj.get("metadata", {}).get("uid", ""))
        with self._lock:
            if uid in self._busy or self._stop.is_set():
                return False
            self._busy.add(uid)
        try:
            self._pool.submit(self._one, uid, obj)
        except RuntimeError:  # shut down meanwhile
            with self._lock:
                self._busy.discard(uid)
            return False
        return True

    def _one(self, uid: str, obj: dict[str, Any]) -> None:
        try:
            self._rotate(obj)
        except KustosError as exc:
            meta = obj.get("metadata", {})
            log.warning("rotation of %s/%s: %s", meta.get("namespace"), meta.get("name"),
                        exc.message)  # fmt: skip
        except Exception:
            meta = obj.get("metadata", {})
            log.exception("rotation of %s/%s failed", meta.get("namespace"), meta.get("name"))
        finally:
            with self._lock:
                self._busy.discard(uid)

    def run_once(self) -> int:
        try:
            objects = self._list()
        except KustosError as exc:
            log.warning("rotation loop: %s", exc.message)
            return 0
        queued = 0
        for obj in objects:
            if obj.get("metadata", {}).get("deletionTimestamp") or not has_rotation_work(obj):
                continue
            queued += self.submit(obj)
        return queued

    def _run(self) -> None:
        self.run_once()
        while not self._stop.wait(self._interval):
            self.run_once()
