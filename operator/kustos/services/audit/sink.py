"""An `EventSink` that writes every lifecycle Event to the audit log before posting it.

Wraps the Kubernetes event recorder used by the services, so each lifecycle Event (Created,
VersionAdded, Projected, DriftCorrected, Rotation*, Deletion*, KeyRotated, ...) also becomes
an audit record: event type ``AwsServiceEvent``, principal `KUSTOS_SYSTEM`, the Event's
reason as eventName. The operator acts on ManagedSecrets that someone changed with kubectl,
but it never learns who that was: the Kubernetes audit log holds the user (see
docs/audit.md).

Fail closed for changes: when a Normal (success) Event cannot be audited, `emit` raises
`AuditUnavailableError`, so the reconcile fails and is retried. A Warning Event (an error
report) whose audit record fails is logged instead, so reporting one failure cannot mask it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from kustos.errors import AuditUnavailableError
from kustos.kube.events import EventSink, ObjectRef
from kustos.models.audit import AuditEvent
from kustos.models.identity import KUSTOS_SYSTEM
from kustos.models.reasons import EventType, Reason
from kustos.models.records import SecretRecord
from kustos.services.audit.service import AuditService

__all__ = ["AuditingEventSink", "Resolver"]

log = logging.getLogger(__name__)
#: Finds the secret a ManagedSecret (namespace, object name) declares, if it exists yet.
Resolver = Callable[[str, str], SecretRecord | None]


class AuditingEventSink:
    def __init__(self, inner: EventSink, audit: AuditService, resolve: Resolver) -> None:
        self._inner = inner
        self._audit = audit
        self._resolve = resolve
        self._known: dict[str, tuple[str, str]] = {}  # object uid -> (arn, secret name)

    def _secret(self, ref: ObjectRef) -> tuple[str | None, str | None]:
        known = self._known.get(ref.uid)
        if known is not None:
            return known
        try:
            record = self._resolve(ref.namespace, ref.name)
        except Exception:  # the store may be the thing that failed
            record = None
        if record is None:
            return None, None
        self._known[ref.uid] = (record.arn, record.name)
        if len(self._known) > 50_000:
            self._known.clear()
        return record.arn, record.name

    def emit(
        self, ref: ObjectRef, reason: Reason, message: str, type: EventType = EventType.NORMAL
    ) -> None:
        arn, name = self._secret(ref)
        warning = type == EventType.WARNING
        event = AuditEvent(
            event_name=str(reason),
            principal=KUSTOS_SYSTEM,
            event_type="AwsServiceEvent",
            namespace=ref.namespace,
            secret_arn=arn,
            secret_name=name,
            error_code=str(reason) if warning else None,
            error_message=message if warning else None,
            additional={
                "kind": ref.kind,
                "objectName": ref.name,
                "objectUID": ref.uid,
                "eventType": str(type),
                "message": message[:1024],
            },
        )
        try:
            self._audit.record(event)
        except AuditUnavailableError as exc:
            if not warning:
                self._inner.emit(ref, reason, message, type)
                raise
            log.error(
                "audit: could not record %s on %s/%s: %s",
                reason,
                ref.namespace,
                ref.name,
                exc.message,
            )
        self._inner.emit(ref, reason, message, type)
