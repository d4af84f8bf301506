"""The per-object ManagedSecret controller: one place decides each object's next step.

Given an object and the triggers that woke it (`Trigger`), `handle` runs, in this order:
the deletion path for a deleted object, else reconcile (record, versions, projected Secret)
→ a rollback request (`kustos.io/rollback`), re-projecting when it moved AWSCURRENT →
rotation (when configured) → re-projection when the rotation moved AWSCURRENT. It
returns an `Outcome`: the status merge patch (from the typed `ManagedSecretStatus`), the
error if any (and whether retrying helps), and when a timed look is due next (a scheduled
rotation, the end of a rotation backoff). It knows nothing of Kopf, threads, timers or the
environment: the operator adapter turns watch events, the store's change feed and its
periodic passes into triggers, runs one `handle` at a time per object, and patches what
comes back.

Which triggers read the projected Secret: every trigger but `RESYNC` and `ROTATION_DUE`.
Those two, the periodic safety net and the rotation timer, trust the status for it (the
projected Secret is read and written only when the store's AWSCURRENT is not the version
the status shows), so a pass over n unchanged objects reads no Secret.
`DRIFT_CHECK`, a slower periodic pass, compares each one and restores it if edited (the
operator's watched cache of projected Secrets answers those reads where it runs), and
`PROJECTED_CHANGED`, that watch's news of someone else's edit or deletion, does so at once.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from kustos.errors import KustosError
from kustos.models.reasons import ConditionType
from kustos.models.status import ManagedSecretStatus
from kustos.services.controller.reconcile import ManagedSecretService
from kustos.services.core.deletion import DeletionService
from kustos.services.core.objects import ManagedObject
from kustos.services.rotation.rollback import ANNOTATION_ROLLBACK
from kustos.services.rotation.rollback import wanted as rollback_wanted
from kustos.services.rotation.service import ANNOTATION_ROTATE_NOW, RotationService

__all__ = ["ManagedSecretController", "Outcome", "Trigger", "settles"]


class Trigger(StrEnum):
    #: The watch saw the object for the first time, or its spec or annotations changed.
    CHANGED = "changed"
    #: The periodic safety net (trusts the status for the projected Secret).
    RESYNC = "resync"
    #: The slower periodic pass that reads the projected Secret (drift).
    DRIFT_CHECK = "drift-check"
    #: A scheduled rotation or the end of a rotation backoff is due.
    ROTATION_DUE = "rotation-due"
    #: `kustos.io/rotate-now` changed (RotateSecret, or kubectl annotate).
    ROTATE_NOW = "rotate-now"
    #: The store's change feed: a version was added, a label moved, a restore, a key change.
    VALUE_CHANGED = "value-changed"
    #: The object is gone (the watch's DELETED event).
    DELETED = "deleted"
    #: Someone else edited or deleted the projected Secret (the Secrets' watch).
    PROJECTED_CHANGED = "projected-changed"


#: Triggers that do not read the projected Secret (see the module docstring).
_TRUSTING = frozenset({Trigger.RESYNC, Trigger.ROTATION_DUE})


@dataclass(frozen=True)
class Outcome:
    #: The status merge patch (changed keys only; empty: nothing to write).
    patch: dict[str, Any] = field(default_factory=dict)
    error: KustosError | None = None
    #: When to look again on a timer (a rotation due, a backoff ending); None: no timer.
    due: datetime | None = None
    #: The object was deleted and its deletion path ran.
    deleted: bool = False
    #: A rotation moved AWSCURRENT (and the new value was re-projected).
    rotated: bool = False

    @property
    def clean(self) -> bool:
        """Nothing was written, nothing failed, nothing is due: the object is settled."""
        return not self.patch and self.error is None and self.due is None and not self.rotated

    @property
    def retry(self) -> bool:
        """The error is worth retrying (with backoff) before the next trigger."""
        return self.error is not None and self.error.retryable


class ManagedSecretController:
    def __init__(
        self,
        managed: ManagedSecretService,
        rotation: Callable[[], RotationService],
        deletion: Callable[[], DeletionService],
    ) -> None:
        """`rotation` and `deletion` are factories: built on first use."""
        self._managed = managed
        self._rotation = rotation
        self._deletion = deletion

    def handle(self, body: Mapping[str, Any], triggers: Collection[Trigger]) -> Outcome:
        if Trigger.DELETED in triggers:
            self._managed.unshare(body)  # copies elsewhere have no ownerReference to follow
            self._deletion().object_deleted(dict(body))
            return Outcome(deleted=True)
        obj = ManagedObject.from_body(body)
        if obj.deleting:
            return Outcome()  # being deleted (garbage collection): the DELETED event follows
        status = ManagedSecretStatus.from_raw(obj.status)
        verify = not set(triggers) <= _TRUSTING
        reconciled = self._managed.reconcile(obj, status, verify=verify)
        error, due, rotated = reconciled.error, None, False
        request = rollback_wanted(obj, status) if error is None else None
        if request is not None:  # before rotation: a due rotation must not race it
            back = self._rotation().rollback(obj, status, request)
            error, rotated = back.error, back.moved
            if back.moved:
                error = self._managed.reconcile(obj, status, verify=True).error
        if _rotation_work(obj, status):
            tick = self._rotation().tick(
                obj, status, rotate_now=obj.annotations.get(ANNOTATION_ROTATE_NOW)
            )
            due, rotated = tick.due, rotated or tick.rotated
            if tick.rotated:  # project the new AWSCURRENT now, not at the next pass
                reprojected = self._managed.reconcile(obj, status, verify=True)
                error = reprojected.error
            elif error is None:
                error = tick.error
        return Outcome(patch=status.patch(obj.status), error=error, due=due, rotated=rotated)


def _rotation_work(obj: ManagedObject, status: ManagedSecretStatus) -> bool:
    """Rotation is configured, or was (its state must be cleaned up or finished)."""
    return bool(obj.spec.get("rotation") or status.rotation or status.next_rotation_at)


def settles(body: Mapping[str, Any]) -> bool:
    """Whether a clean `RESYNC` of this body stays clean until the body or the store's
    feed says otherwise, so the operator may skip the next ones (`DRIFT_CHECK` still looks).

    Not for objects whose next step depends on time or on other objects: rotation (timers,
    state to finish), a `valueFrom` source (its Secret is followed by the resync), copies
    shared with other namespaces (a new namespace may match), a pending rollback, a
    deletion; and only when the status shows Ready at the current generation."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    if meta.get("deletionTimestamp") or spec.get("rotation") or spec.get("valueFrom"):
        return False
    if (spec.get("target") or {}).get("shareWith"):
        return False
    if status.get("rotation") or status.get("nextRotationAt") or status.get("sharing"):
        return False
    request = ((meta.get("annotations") or {}).get(ANNOTATION_ROLLBACK) or "").strip()[:128]
    if request and request != (status.get("rollback") or {}).get("request"):
        return False
    generation = meta.get("generation")
    return (
        any(
            c.get("type") == str(ConditionType.READY)
            and c.get("status") == "True"
            and c.get("observedGeneration") == generation
            for c in status.get("conditions") or []
        )
        and status.get("observedGeneration") == generation
    )
