"""What a denied caller is told, and the AccessDenied Event posted on the ManagedSecret.

The message follows AWS's wording ("User: <arn> is not authorized to perform: <action> on
resource: <arn> because no identity-based policy allows the <action> action") and holds
ARNs and action names only. Events are posted off the request path by one worker thread,
at most one per (secret, caller, action) every `throttle` seconds (the audit log has every
denial); the ManagedSecret's uid, which an Event needs, is looked up and cached briefly.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from kustos.kube.events import EventSink, ObjectRef
from kustos.models.identity import Principal
from kustos.models.reasons import EventType, Reason
from kustos.models.records import SecretRecord
from kustos.policy import Decision, DecisionKind, PolicyKind, Request

__all__ = ["DenialEvents", "UidLookup", "denial_message"]

log = logging.getLogger(__name__)
UidLookup = Callable[[str, str], "str | None"]


def denial_message(principal: Principal, action: str, request: Request, decision: Decision) -> str:
    on = f" on resource: {request.resource}" if request.resource != "*" else ""
    head = f"User: {principal.arn} is not authorized to perform: {action}{on}"
    if decision.kind is DecisionKind.EXPLICIT_DENY:
        kinds = {s.kind for s in decision.statements}
        where = "resource-based" if kinds == {PolicyKind.RESOURCE} else "identity-based"
        return f"{head} with an explicit deny in a {where} policy"
    target = request.target_namespace
    cross = bool(target) and request.caller_namespace != target
    has_identity_allow = any(s.kind is PolicyKind.IDENTITY for s in decision.statements)
    if cross and has_identity_allow:
        return f"{head} because no resource-based policy allows the {action} action"
    return f"{head} because no identity-based policy allows the {action} action"


class DenialEvents:
    def __init__(
        self,
        sink: EventSink,
        uid_lookup: UidLookup,
        *,
        throttle: float = 5.0,
        uid_ttl: float = 60.0,
    ) -> None:
        self._sink = sink
        self._uid_lookup = uid_lookup
        self._throttle = throttle
        self._uid_ttl = uid_ttl
        self._uids: dict[tuple[str, str], tuple[str | None, float]] = {}
        self._last: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kustos-denials")

    def post(
        self, principal: Principal, action: str, record: SecretRecord, decision: Decision
    ) -> None:
        if not record.object_name:
            return
        key = (record.arn, principal.arn, action)
        now = time.monotonic()
        with self._lock:
            if now - self._last.get(key, -1e9) < self._throttle:
                return
            if len(self._last) > 10_000:
                self._last.clear()
            self._last[key] = now
        how = f" via {principal.auth_method}" if principal.auth_method else ""
        message = f"{principal.arn}{how} was denied {action}: {decision.reason}"
        self._executor.submit(self._emit, record.namespace, record.object_name, message)

    def _emit(self, namespace: str, name: str, message: str) -> None:
        try:
            uid = self._uid(namespace, name)
            if uid is not None:
                ref = ObjectRef("kustos.io/v1alpha1", "ManagedSecret", namespace, name, uid)
                self._sink.emit(ref, Reason.ACCESS_DENIED, message, EventType.WARNING)
        except Exception:  # best effort; the audit log has the denial
            log.warning("could not post AccessDenied on %s/%s", namespace, name, exc_info=True)

    def _uid(self, namespace: str, name: str) -> str | None:
        now = time.monotonic()
        cached = self._uids.get((namespace, name))
        if cached is not None and cached[1] > now:
            return cached[0]
        uid = self._uid_lookup(namespace, name)
        self._uids[(namespace, name)] = (uid, now + self._uid_ttl)
        return uid

    def flush(self) -> None:
        """Wait until the Events submitted so far are posted (tests, shutdown)."""
        self._executor.submit(lambda: None).result()

    def close(self) -> None:
        self._executor.shutdown(wait=True)
