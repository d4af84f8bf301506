"""The periodic resync: one background loop for all ManagedSecrets, instead of a Kopf timer
per object (Kopf's timers put a finalizer on every object: one more write each, and a
deletion that waits for the operator).

Every `interval` seconds it lists the ManagedSecrets (one request), reconciles each (which
restores edited or deleted projected Secrets and follows changed sources) and patches a
status only when it differs. Other periodic work (due rotations, purges) registers a hook.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from kustos.errors import KustosError

__all__ = ["Resyncer"]

log = logging.getLogger(__name__)

Reconcile = Callable[[dict[str, Any]], dict[str, Any] | None]
Hook = Callable[[], None]


class Resyncer:
    def __init__(
        self,
        list_objects: Callable[[], list[dict[str, Any]]],
        reconcile: Callable[[dict[str, Any]], None],
        interval: float,
    ) -> None:
        self._list = list_objects
        self._reconcile = reconcile
        self._interval = interval
        self._hooks: list[tuple[str, Hook]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kustos-resync", daemon=True)

    def add_hook(self, name: str, hook: Hook) -> None:
        """Run `hook` once per resync pass, after the objects (errors are logged)."""
        self._hooks.append((name, hook))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def run_once(self) -> None:
        try:
            objects = self._list()
        except KustosError as exc:
            log.warning("resync: %s", exc.message)
            objects = []
        for obj in objects:
            if self._stop.is_set():
                return
            if obj.get("metadata", {}).get("deletionTimestamp"):
                continue
            try:
                self._reconcile(obj)
            except KustosError:
                pass  # already reported on the object's status and Events
            except Exception:
                meta = obj.get("metadata", {})
                log.exception("resync of %s/%s failed", meta.get("namespace"), meta.get("name"))
        for name, hook in self._hooks:
            try:
                hook()
            except Exception:
                log.exception("resync hook %s failed", name)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.run_once()
