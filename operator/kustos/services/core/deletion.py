"""The deletion lifecycle of a secret: schedule, restore, purge — from the API or kubectl.

Both ways in end in the same state: `DeleteSecret` and `kubectl delete ms` set the record's
`deletion_date` (the end of the recovery window), keep the object's spec in the record, and
remove the ManagedSecret and its projected Secret. `restore` clears the date and recreates
the object when it is gone. `purge_due` removes, for good, the versions of every secret
whose window has passed (the operator calls it periodically). The incarnation (uid) of the
object Kustos removed is kept in the record, so the operator's DELETED event for it is never
handled as a `kubectl delete`, however late it arrives: not even after a RestoreSecret that
came first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from kustos.errors import ConflictError
from kustos.kube.events import EventSink, ObjectRef
from kustos.kube.managed_objects import ManagedObjectGateway
from kustos.kube.secrets import SecretGateway
from kustos.models.reasons import Reason
from kustos.models.records import SecretRecord
from kustos.services.core.naming import object_name_for
from kustos.services.core.secrets import SecretService

__all__ = [
    "DEFAULT_RECOVERY_DAYS",
    "DeletionService",
    "sweep_orphans",
]

log = logging.getLogger(__name__)
DEFAULT_RECOVERY_DAYS = 30
_API_VERSION, _KIND = "kustos.io/v1alpha1", "ManagedSecret"
#: `SecretRecord.extra` key: the uid of the ManagedSecret that `schedule` removed.
REMOVED_UID = "removed_object_uid"


def _ref(obj: dict[str, Any]) -> ObjectRef:
    meta = obj["metadata"]
    return ObjectRef(_API_VERSION, _KIND, meta["namespace"], meta["name"], meta.get("uid", ""))


class DeletionService:
    def __init__(
        self,
        secrets: SecretService,
        objects: ManagedObjectGateway,
        projected: SecretGateway,
        events: EventSink | None = None,
    ) -> None:
        self._secrets = secrets
        self._objects = objects
        self._projected = projected
        self._events = events

    def _emit(self, obj: dict[str, Any] | None, reason: Reason, message: str) -> None:
        if self._events is not None and obj is not None:
            self._events.emit(_ref(obj), reason, message)

    # -- schedule / purge ----------------------------------------------------------------
    def schedule(
        self,
        record: SecretRecord,
        when: datetime,
        *,
        by: str,
        obj: dict[str, Any] | None = None,
    ) -> SecretRecord:
        """Mark the secret deleted as of `when`; remove its object and projected Secret."""
        if obj is None and record.object_name:
            obj = self._objects.get(record.namespace, record.object_name)
        extra = dict(record.extra, deleted_by=by)
        if obj is not None:
            extra["object_spec"] = dict(obj.get("spec") or {})
            extra[REMOVED_UID] = obj["metadata"].get("uid", "")
        record = self._secrets.update(record.evolve(deletion_date=when, extra=extra))
        self._emit(
            obj,
            Reason.DELETION_SCHEDULED,
            f"secret {record.name} scheduled for deletion on {when:%Y-%m-%dT%H:%M:%SZ}",
        )
        self._remove_object(record, obj)
        return record

    def purge(self, record: SecretRecord, *, by: str) -> None:
        """Remove the secret and every version now (ForceDeleteWithoutRecovery, window end)."""
        obj = (
            self._objects.get(record.namespace, record.object_name) if record.object_name else None
        )
        self._remove_object(record, obj)
        self._secrets.store.purge_secret(record.arn)
        log.info("secret %s purged (%s)", record.arn, by)

    def _remove_object(self, record: SecretRecord, obj: dict[str, Any] | None) -> None:
        if obj is None:
            return
        meta, spec = obj["metadata"], obj.get("spec") or {}
        target = (spec.get("target") or {}).get("name") or meta["name"]
        existing = self._projected.get(record.namespace, target)
        refs = (existing or {}).get("metadata", {}).get("ownerReferences") or []
        if existing is not None and any(ref.get("uid") == meta.get("uid") for ref in refs):
            self._projected.delete(record.namespace, target, uid=existing["metadata"]["uid"])
        if meta.get("deletionTimestamp") is None:
            self._objects.delete(record.namespace, meta["name"], uid=meta.get("uid"))

    def purge_due(self, now: datetime | None = None) -> int:
        """Purge every secret whose recovery window has ended; returns how many."""
        now = now or self._secrets.clock()
        purged = 0
        for record in self._secrets.store.secrets_deleted_by(now):
            self.purge(record, by="recovery window ended")
            purged += 1
        return purged

    # -- kubectl delete ------------------------------------------------------------------
    def object_deleted(self, obj: dict[str, Any]) -> SecretRecord | None:
        """A ManagedSecret is being deleted by someone else than Kustos: schedule deletion
        with its spec.recoveryWindowInDays (default 30; 0 purges now)."""
        meta, spec = obj["metadata"], obj.get("spec") or {}
        record = self._secrets.find(meta["namespace"], spec.get("name") or meta["name"])
        if record is None or record.object_name != meta["name"]:
            return None
        if meta.get("uid") and record.extra.get(REMOVED_UID) == meta["uid"]:
            return None  # the incarnation Kustos removed itself (and perhaps restored since)
        if record.deletion_date is not None:
            return None  # deleted through the API, or handled already
        days = spec.get("recoveryWindowInDays")
        days = DEFAULT_RECOVERY_DAYS if days is None else int(days)
        if days == 0:
            self.purge(record, by="kubectl delete")
            return None
        when = self._secrets.clock() + timedelta(days=days)
        return self.schedule(record, when, by="kubectl", obj=obj)

    # -- restore -------------------------------------------------------------------------
    def restore(self, record: SecretRecord) -> SecretRecord:
        """Cancel a scheduled deletion; recreate the ManagedSecret if it is gone."""
        extra = {k: v for k, v in record.extra.items() if k not in ("deleted_by",)}
        spec = dict(extra.pop("object_spec", None) or {"name": record.name})
        spec["name"] = record.name
        spec.pop("description", None)
        spec.pop("tags", None)
        if record.description:
            spec["description"] = record.description
        if record.tags:
            spec["tags"] = dict(record.tags)
        name = record.object_name or record.name
        existing = self._objects.get(record.namespace, name) if record.object_name else None
        record = self._secrets.update(record.evolve(deletion_date=None, extra=extra))
        self._secrets.store.note_change(record.arn, "restore")  # re-project at once
        if existing is not None:
            return record
        annotations = {"kustos.io/restored": "true"}
        try:
            created = self._objects.create(record.namespace, name, spec, annotations)
        except ConflictError:
            name = object_name_for(record.name, hashed=True)
            record = self._secrets.update(record.evolve(object_name=name))
            created = self._objects.create(record.namespace, name, spec, annotations)
        self._emit(created, Reason.RESTORED, f"secret {record.name} restored")
        return record


def sweep_orphans(
    deletion: DeletionService,
    secrets: SecretService,
    present: set[tuple[str, str]],
    grace: timedelta = timedelta(minutes=2),
    *,
    gone: Callable[[str, str], bool] | None = None,
) -> int:
    """Schedule deletion of secrets whose ManagedSecret is gone without Kustos noticing
    (deleted while the operator was down). `present` holds the (namespace, name) of every
    object: a complete listing, or, with `gone`, what the watch knows, and then each record
    not among them is deleted only once `gone(namespace, name)` confirms its object is not
    there. Records changed within `grace` are left alone (an object being created or
    restored right now)."""
    now = secrets.clock()
    scheduled = 0
    for record in secrets.store.list_secrets():
        if (
            record.object_name
            and record.deletion_date is None
            and (record.namespace, record.object_name) not in present
            and now - record.updated_at > grace
            and (gone is None or gone(record.namespace, record.object_name))
        ):
            deletion.schedule(
                record, now + timedelta(days=DEFAULT_RECOVERY_DAYS), by="kubectl (noticed late)"
            )
            scheduled += 1
    return scheduled
