"""Aggregated `Accessed` Events: who read a secret, without flooding the API server.

Successful reads are counted per (secret, caller) and posted as one Event per window
("read 37 times in the last 60s by <caller>") on the secret's ManagedSecret, by a
background thread, never on the request path. Denials are posted one by one elsewhere
(`denials`); the audit log has every read individually.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable

from kustos.kube.events import EventSink, ObjectRef
from kustos.models.identity import Principal
from kustos.models.reasons import EventType, Reason
from kustos.models.records import SecretRecord

__all__ = ["ReadEvents"]

log = logging.getLogger(__name__)

UidLookup = Callable[[str, str], "str | None"]


class ReadEvents:
    def __init__(self, sink: EventSink, uid_lookup: UidLookup, window: float = 60.0) -> None:
        self._sink = sink
        self._uid_lookup = uid_lookup
        self._window = window
        self._counts: Counter[tuple[str, str, str, str]] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kustos-reads", daemon=True)
        self._thread.start()

    def read(self, principal: Principal, record: SecretRecord, action: str) -> None:
        """Count one successful read (cheap: a dict increment under a lock)."""
        if not record.object_name:
            return
        with self._lock:
            self._counts[(record.namespace, record.object_name, principal.arn, action)] += 1

    def flush(self) -> None:
        with self._lock:
            counts, self._counts = self._counts, Counter()
        for (namespace, name, who, action), n in sorted(counts.items()):
            try:
                uid = self._uid_lookup(namespace, name)
                if uid is None:
                    continue
                ref = ObjectRef("kustos.io/v1alpha1", "ManagedSecret", namespace, name, uid)
                times = "once" if n == 1 else f"{n} times"
                self._sink.emit(
                    ref,
                    Reason.ACCESSED,
                    f"{action} {times} in the last {self._window:g}s by {who}",
                    EventType.NORMAL,
                )
            except Exception:  # best effort: the audit log has every read
                log.warning("could not post Accessed on %s/%s", namespace, name, exc_info=True)

    def _run(self) -> None:
        while not self._stop.wait(self._window):
            self.flush()

    def close(self) -> None:
        self._stop.set()
        self.flush()
