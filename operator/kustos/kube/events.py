"""Posts Kubernetes Events on Kustos's objects, so `kubectl describe` tells the story.

Reasons come from `kustos.models.reasons`; messages are built by services from names and
ids only. Posting is best effort: a failed Event is logged and never fails the caller.
Repeats of the same (object, reason, message) within a short window are folded into one
Event whose count goes up, as the API server's own recorder does.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from kubernetes import client
from kubernetes.client.rest import ApiException

from kustos.models.reasons import EventType, Reason

__all__ = ["EventRecorder", "EventSink", "ObjectRef"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ObjectRef:
    api_version: str
    kind: str
    namespace: str
    name: str
    uid: str


class EventSink(Protocol):
    def emit(self, ref: ObjectRef, reason: Reason, message: str, type: EventType = ...) -> None: ...


class EventRecorder:
    """Creates core/v1 Events; folds repeats within `fold_seconds` into a count."""

    def __init__(
        self, api: client.ApiClient, component: str = "kustos", fold_seconds: float = 600.0
    ) -> None:
        self._core = client.CoreV1Api(api)
        self._component = component
        self._fold_seconds = fold_seconds
        self._recent: dict[tuple[str, str, str, str], tuple[str, int, float]] = {}
        self._lock = threading.Lock()
        self._created = 0

    def _forget_folded(self) -> None:
        """Drop what can no longer fold (older than `fold_seconds`); at most 10,000 kept."""
        horizon = time.monotonic() - self._fold_seconds
        self._recent = {k: v for k, v in self._recent.items() if v[2] >= horizon}
        if len(self._recent) > 10_000:
            self._recent = {}

    def emit(
        self,
        ref: ObjectRef,
        reason: Reason,
        message: str,
        type: EventType = EventType.NORMAL,
    ) -> None:
        now = datetime.now(UTC)
        # Events about cluster-scoped objects live in `default`, as the API server's own do.
        namespace = ref.namespace or "default"
        key = (ref.uid, str(reason), message, str(type))
        with self._lock:
            seen = self._recent.get(key)
            if seen and time.monotonic() - seen[2] < self._fold_seconds:
                name, count = seen[0], seen[1] + 1
                self._recent[key] = (name, count, seen[2])
            else:
                name, count = "", 1
        try:
            if count > 1:
                self._core.patch_namespaced_event(
                    name, namespace, {"count": count, "lastTimestamp": _ts(now)}
                )
                return
            # A plain dict, and the answer read as JSON: the client's model classes cost
            # more CPU than the request itself (three Events per new object).
            body = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"generateName": f"{ref.name}.", "namespace": namespace},
                "involvedObject": {
                    "apiVersion": ref.api_version,
                    "kind": ref.kind,
                    "name": ref.name,
                    **({"namespace": ref.namespace} if ref.namespace else {}),
                    "uid": ref.uid,
                },
                "reason": str(reason),
                "message": message[:1024],
                "type": str(type),
                "source": {"component": self._component},
                "firstTimestamp": _ts(now),
                "lastTimestamp": _ts(now),
                "count": 1,
            }
            resp = self._core.create_namespaced_event(namespace, body, _preload_content=False)
            created_name = json.loads(resp.data)["metadata"]["name"]
            with self._lock:
                self._recent[key] = (created_name, 1, time.monotonic())
                self._created += 1
                if self._created % 1_000 == 0 or len(self._recent) > 10_000:
                    self._forget_folded()
        except ApiException as exc:
            log.warning(
                "could not post Event %s on %s/%s: HTTP %s",
                reason,
                ref.namespace,
                ref.name,
                exc.status,
            )


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
