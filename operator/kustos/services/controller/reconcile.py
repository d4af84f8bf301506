"""Reconciles one ManagedSecret: its secret record, its versions, its projected Secret.

Level-based and idempotent: called on create, update, resume and periodically, it compares
what is declared with what exists and writes only the difference. A restarted operator
therefore creates no versions and writes nothing when nothing changed. The returned status
is what the adapter patches (only if it differs from the current one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kustos.errors import (
    ConflictError,
    KustosError,
    StoreError,
)
from kustos.kube.events import EventSink
from kustos.models.reasons import ConditionType, EventType, Reason
from kustos.models.records import SecretRecord, VersionRecord
from kustos.models.spec import ManagedSecretSpec
from kustos.models.status import ManagedSecretStatus, set_condition
from kustos.services.consumers.sharing import SharingService
from kustos.services.controller.projection import Projection, ProjectionOutcome, ProjectionService
from kustos.services.controller.sources import (
    SourceService,
    not_allowed_message,
)
from kustos.services.core.objects import ManagedObject, parse_spec, reason_for
from kustos.services.core.resource_policy import PUBLIC_ACCEPTED, follow_spec
from kustos.services.core.secrets import SecretService
from kustos.services.core.spec_fields import plain_fields

_log = logging.getLogger(__name__)

__all__ = ["ManagedSecretService", "Reconciled"]

#: How many versions the status lists (labelled ones always; then the newest).
STATUS_VERSIONS = 10


@dataclass(frozen=True)
class Check:
    """A condition besides Ready that this controller owns, present only where it applies
    (so objects that never had the problem get no new status field)."""

    type: ConditionType
    ok: bool
    reason: Reason
    message: str
    #: Whether a failed check makes the object not Ready (a warning does not).
    blocks_ready: bool = True


#: The condition types `_status` owns besides Ready (others belong to other services).
CHECKS = (
    ConditionType.RESOURCE_POLICY_IN_FORCE,
    ConditionType.SOURCE_OPTED_IN,
    ConditionType.DRIFT_WATCHED,
)


@dataclass(frozen=True)
class Reconciled:
    status: ManagedSecretStatus
    error: KustosError | None = None


#: The Normal Events of a new object's first reconcile that `_FirstStory` joins.
_STORY = frozenset({Reason.CREATED, Reason.VERSION_ADDED, Reason.PROJECTED})


class _FirstStory:
    """The sink of one reconcile: for an object whose record it created, the Normal Events
    `Created`, `VersionAdded` and `Projected` are held and posted as one `Created` Event
    (`flush`), which is also one audit record: the record, its first version and the
    projection are one story, as CreateSecret is one CloudTrail event. A new object then
    costs the apiserver one Event, not three. Everything else passes through at once."""

    def __init__(self, sink: EventSink) -> None:
        self._sink = sink
        self._parts: list[str] = []
        self._ref: Any = None
        self.holding = False

    def emit(
        self, ref: Any, reason: Reason, message: str, type: EventType = EventType.NORMAL
    ) -> None:
        if self.holding and type is EventType.NORMAL and reason in _STORY:
            self._ref = ref
            self._parts.append(message)
            return
        self._sink.emit(ref, reason, message, type)

    def flush(self) -> None:
        if self._parts:
            self._sink.emit(self._ref, Reason.CREATED, "; ".join(self._parts))
            self._parts = []


class ManagedSecretService:
    def __init__(
        self,
        secrets: SecretService,
        sources: SourceService,
        projection: ProjectionService,
        events: EventSink,
        sharing: SharingService | None = None,
        unwatched: Callable[[str], bool] | None = None,
    ) -> None:
        """`sharing`: copies into other namespaces (target.shareWith); None: not offered.
        `unwatched(namespace)`: the watch of projected Secrets is refused there (no
        RoleBinding of kustos-projection-watch); the objects say so in `DriftWatched`."""
        self._unwatched = unwatched
        self._secrets = secrets
        self._sources = sources
        self._projection = projection
        self._events = events
        self._sharing = sharing

    def reconcile(
        self,
        obj: ManagedObject,
        status: ManagedSecretStatus | None = None,
        *,
        verify: bool = True,
    ) -> Reconciled:
        """Bring the record, versions and projected Secret in line with `obj`; fills in
        `status` (the object's own when None). `verify=False` (the periodic safety net)
        trusts the status for the projected Secret: it is read and written only when the
        store's AWSCURRENT is not the version the status shows."""
        status = status if status is not None else ManagedSecretStatus.from_raw(obj.status)
        record: SecretRecord | None = None
        checks: list[Check] = []
        story = _FirstStory(self._events)
        try:
            spec = parse_spec(obj.spec)
            record = self._ensure_record(obj, spec, story)
            record = self._ensure_policy(obj, spec, record, checks)
            if record.deletion_date is not None:  # values are not served during the window
                self._status(
                    status,
                    obj,
                    spec,
                    record,
                    Reason.DELETION_SCHEDULED,
                    f"secret scheduled for deletion on {_iso(record.deletion_date)}; "
                    "restore it with RestoreSecret",
                    ready=False,
                    checks=checks,
                )
                return Reconciled(status)
            self._ensure_version(obj, spec, record, checks, story)
            current = self._secrets.current(record)
            if current is None:
                story.flush()
                self._status(
                    status,
                    obj,
                    spec,
                    record,
                    Reason.NO_VALUE,
                    "the secret has no value yet",
                    ready=False,
                    checks=checks,
                )
                return Reconciled(status)
            target = spec.target_name(obj.name)
            if verify or not _shows_projected(status, obj, target, current.version_id):
                self._project(obj, spec, record, current, story)
            story.flush()
            if self._unwatched is not None and self._unwatched(obj.namespace):
                self._fail(
                    obj,
                    checks,
                    Check(
                        ConditionType.DRIFT_WATCHED,
                        False,
                        Reason.DRIFT_NOT_WATCHED,
                        f"namespace {obj.namespace} does not bind kustos-projection-watch: "
                        f"edits to Secret {target} are found by the periodic drift pass, "
                        "not at once (docs/security.md)",
                        blocks_ready=False,
                    ),
                )
            if self._sharing is not None and (spec.target.share_with or status.sharing):
                self._share(obj, spec, record, current, status)
            message = f"version {current.version_id} projected into Secret {target}"
            self._status(status, obj, spec, record, Reason.PROJECTED, message, checks=checks)
            return Reconciled(status)
        except KustosError as error:
            story.flush()  # what was done before the failure
            reason = reason_for(error)
            self._events.emit(obj.ref, reason, error.message, EventType.WARNING)
            self._status(status, obj, None, record, reason, error.message, ready=False)
            return Reconciled(status, error)

    # -- steps ---------------------------------------------------------------------------
    def _ensure_record(
        self, obj: ManagedObject, spec: ManagedSecretSpec, story: _FirstStory
    ) -> SecretRecord:
        name = spec.secret_name(obj.name)
        record = self._secrets.find(obj.namespace, name)
        fields = plain_fields(obj.spec)
        if record is None:
            # One insert: the record with this generation's spec fields (not a create then
            # an apply_spec: a new object costs the store one commit fewer).
            record = self._secrets.create(
                obj.namespace,
                name,
                description=fields["description"],
                tags=fields["tags"],
                object_name=obj.name,
                spec_generation=obj.generation,
                spec_uid=obj.uid,
            )
            story.holding = True
            story.emit(obj.ref, Reason.CREATED, f"secret {name} created as {record.arn}")
            return record
        if record.object_name not in (None, obj.name):
            raise ConflictError(
                f"secret {name} is already declared by ManagedSecret {record.object_name}"
            )
        if record.object_name is None:
            record = self._secrets.update(record.evolve(object_name=obj.name))
        stale = any(getattr(record, key) != value for key, value in fields.items())
        if (
            obj.generation > record.spec_generation
            or record.spec_uid != obj.uid
            or (obj.generation == record.spec_generation and stale)
        ):
            # Compare-and-set on the generation: when the API (or another worker) wrote a
            # newer spec's fields meanwhile, this older spec changes nothing.
            self._secrets.apply_spec(record, obj.generation, fields, obj.uid)
        return record

    def _ensure_policy(
        self,
        obj: ManagedObject,
        spec: ManagedSecretSpec,
        record: SecretRecord,
        checks: list[Check],
    ) -> SecretRecord:
        """spec.resourcePolicy becomes the policy in force, if it passes the checks of
        PutResourcePolicy (with BlockPublicPolicy); if not, the previous one stays."""
        decided = follow_spec(record, spec.resource_policy)
        ctype = ConditionType.RESOURCE_POLICY_IN_FORCE
        if decided.problem is not None:
            kept = "the previous resource policy" if record.resource_policy else "no policy"
            self._fail(
                obj,
                checks,
                Check(
                    ctype,
                    False,
                    Reason.RESOURCE_POLICY_REJECTED,
                    f"spec.resourcePolicy is not in force: {decided.problem}; {kept} stays in force",  # noqa: E501
                ),
            )
            return record
        if decided.changed:
            # Compare-and-set with the spec's generation, like the other spec-owned fields.
            if decided.record.extra.get(PUBLIC_ACCEPTED) != record.extra.get(PUBLIC_ACCEPTED):
                self._secrets.merge_extra(record, **{PUBLIC_ACCEPTED: None})
            self._secrets.apply_spec(
                record, obj.generation, {"resource_policy": decided.record.resource_policy}, obj.uid
            )
            record = decided.record
            self._events.emit(
                obj.ref,
                Reason.POLICY_CHANGED,
                "resource policy from spec.resourcePolicy in force"
                if record.resource_policy
                else "resource policy removed",
            )
        if spec.resource_policy is not None:
            checks.append(
                Check(
                    ctype,
                    True,
                    Reason.RECONCILED,
                    "spec.resourcePolicy is the resource policy in force",
                )
            )
        return record

    def _fail(self, obj: ManagedObject, checks: list[Check], check: Check) -> None:
        """Record a failed check; its Warning Event is posted when the problem is new, not
        at every resync."""
        old = _find(obj.status.get("conditions") or [], check.type)
        shown = ("False", check.message[:1024])  # as set_condition keeps it
        if old is None or (old.get("status"), old.get("message")) != shown:
            self._events.emit(obj.ref, check.reason, check.message, EventType.WARNING)
        checks.append(check)

    def _ensure_version(
        self,
        obj: ManagedObject,
        spec: ManagedSecretSpec,
        record: SecretRecord,
        checks: list[Check],
        story: _FirstStory,
    ) -> None:
        fingerprint = spec.source_fingerprint()
        if not fingerprint:
            return
        current = self._secrets.current(record)
        applied = record.extra.get("source")
        if current is not None and fingerprint in (applied, current.fingerprint):
            if applied != fingerprint:  # a crash between adding the version and this note
                self._secrets.merge_extra(record, source=fingerprint)
            self._follow_source_changes(obj, spec, record, current, checks)
            return
        source = self._sources.materialize(obj.namespace, spec, obj.name)
        version = self._secrets.add_version(
            record,
            source.value,
            fingerprint=fingerprint,
            extra={"source": fingerprint, "source_revision": source.revision},
        )
        story.emit(
            obj.ref, Reason.VERSION_ADDED, f"version {version.version_id} added as AWSCURRENT"
        )

    def _follow_source_changes(
        self,
        obj: ManagedObject,
        spec: ManagedSecretSpec,
        record: SecretRecord,
        current: VersionRecord,
        checks: list[Check],
    ) -> None:
        """valueFrom: when the source Secret changed, its new content becomes a version.

        Not when the secret rotates: then the source gave only the first value, and later
        values belong to the rotation (copying the source again would put back credentials
        the database no longer accepts). An import made before sources had to opt in keeps
        working, with a warning until the source Secret opts in."""
        if spec.rotation:
            return
        state = self._sources.inspect(obj.namespace, spec, obj.name)
        if state is None:
            return
        if spec.value_from is not None and not state.opted_in:
            source_name = spec.value_from.secret_ref.name
            self._fail(
                obj,
                checks,
                Check(
                    ConditionType.SOURCE_OPTED_IN,
                    False,
                    Reason.SOURCE_NOT_ALLOWED,
                    "imported before sources had to opt in; it keeps working, but "
                    + not_allowed_message(obj.namespace, source_name, obj.name),
                    blocks_ready=False,
                ),
            )
        if state.revision == record.extra.get("source_revision"):
            return
        source = self._sources.materialize(obj.namespace, spec, obj.name, existing=True)
        if source.value != self._secrets.open(current):
            version = self._secrets.add_version(
                record, source.value, fingerprint=current.fingerprint
            )
            self._events.emit(
                obj.ref,
                Reason.VERSION_ADDED,
                f"source Secret changed: version {version.version_id} added as AWSCURRENT",
            )
        self._secrets.merge_extra(record, source_revision=source.revision)

    def _projection_of(
        self,
        obj: ManagedObject,
        spec: ManagedSecretSpec,
        record: SecretRecord,
        current: VersionRecord,
    ) -> Projection:
        return Projection(
            owner=obj.ref,
            target_name=spec.target_name(obj.name),
            target_type=spec.target.type,
            arn=record.arn,
            version_id=current.version_id,
            value=self._secrets.open(current),
            static_data=dict(spec.target.static_data),
            labels=dict(spec.target.labels),
            annotations=dict(spec.target.annotations),
            template=spec.target.template,
            restart_on_change=tuple((w.kind, w.name) for w in spec.target.restart_on_change),
        )

    def _share(
        self,
        obj: ManagedObject,
        spec: ManagedSecretSpec,
        record: SecretRecord,
        current: VersionRecord,
        status: ManagedSecretStatus,
    ) -> None:
        """Copies into the namespaces that consent; a failure here leaves the own Secret
        (already projected) and the copies as they are, and says so in an Event."""
        assert self._sharing is not None
        holding = list((status.sharing or {}).get("namespaces") or [])
        target = spec.target_name(obj.name)
        try:
            desired = self._projection.desired(self._projection_of(obj, spec, record, current))
            result = self._sharing.sync(obj.ref, spec.target.share_with, target, desired, holding)
        except KustosError as error:
            self._events.emit(
                obj.ref,
                Reason.SHARE_FAILED,
                f"cannot share Secret {target}: {error.message}",
                EventType.WARNING,
            )
            return
        old_conflicts = set((status.sharing or {}).get("conflicts") or [])
        status.sharing = result.status()
        for namespace, what in result.changes:
            reason = Reason.SHARE_REMOVED if what == "removed" else Reason.SHARED
            message = (
                f"copy of Secret {target} removed from namespace {namespace} (consent withdrawn)"
                if what == "removed"
                else f"version {current.version_id} of Secret {target} {what} in namespace "
                f"{namespace}"
            )
            self._events.emit(obj.ref, reason, message)
        for namespace in sorted(set(result.conflicts) - old_conflicts):
            self._events.emit(
                obj.ref,
                Reason.TARGET_CONFLICT,
                f"namespace {namespace} has a Secret {target} that is not "
                "Kustos's copy; not shared there",
                EventType.WARNING,
            )

    def unshare(self, body: Mapping[str, Any]) -> None:
        """The object is gone: delete its copies (best effort)."""
        obj = ManagedObject.from_body(body)
        holding = ((obj.status or {}).get("sharing") or {}).get("namespaces") or []
        if self._sharing is None or not holding:
            return
        try:
            target = parse_spec(obj.spec).target_name(obj.name)
            self._sharing.sync(obj.ref, None, target, None, holding)
        except KustosError as error:
            _log.warning(
                "cannot remove the shared copies of %s/%s: %s",
                obj.namespace,
                obj.name,
                error.message,
            )

    def _project(
        self,
        obj: ManagedObject,
        spec: ManagedSecretSpec,
        record: SecretRecord,
        current: VersionRecord,
        events: EventSink,
    ) -> None:
        target = spec.target_name(obj.name)
        outcome = self._projection.project(self._projection_of(obj, spec, record, current))
        if outcome is ProjectionOutcome.DRIFT_CORRECTED:
            events.emit(
                obj.ref,
                Reason.DRIFT_CORRECTED,
                f"Secret {target} was changed or deleted outside Kustos; restored "
                f"version {current.version_id}",
                EventType.WARNING,
            )
        elif outcome is not ProjectionOutcome.UNCHANGED:
            events.emit(
                obj.ref,
                Reason.PROJECTED,
                f"version {current.version_id} projected into Secret {target}",
            )

    # -- status --------------------------------------------------------------------------
    def _status(
        self,
        status: ManagedSecretStatus,
        obj: ManagedObject,
        spec: ManagedSecretSpec | None,
        record: SecretRecord | None,
        reason: Reason,
        message: str,
        *,
        ready: bool = True,
        checks: Sequence[Check] = (),
    ) -> None:
        """Fill in `status`. A failed blocking check makes the object not Ready even though
        the secret still serves and projects (e.g. under the previous policy)."""
        status.observed_generation = obj.generation
        if record is not None:
            versions = self._safe_versions(record)
            status.arn, status.secret_name = record.arn, record.name
            current = next((v for v in versions if "AWSCURRENT" in v.stages), None)
            status.current_version_id = current.version_id if current else None
            status.versions = [
                {
                    "versionId": v.version_id,
                    "stages": list(v.stages),
                    "createdAt": _iso(v.created_at),
                }
                for v in _status_versions(versions)
            ]
        if spec is not None:
            status.projected_secret = spec.target_name(obj.name)
        blocking = next((c for c in checks if not c.ok and c.blocks_ready), None)
        if blocking is not None and ready:
            ready, reason, message = False, blocking.reason, blocking.message
        now, generation = self._secrets.clock(), obj.generation
        set_condition(
            status, ConditionType.READY, ready, reason, message, generation=generation, now=now
        )
        for check in checks:
            set_condition(
                status,
                check.type,
                check.ok,
                check.reason,
                check.message,
                generation=generation,
                now=now,
            )
        if spec is not None:  # else the reconcile stopped early: keep what was known
            for ctype in CHECKS:  # checks that no longer apply go (others: other services)
                if all(c.type != ctype for c in checks):
                    status.drop_condition(ctype)

    def _safe_versions(self, record: SecretRecord) -> list[VersionRecord]:
        try:
            return self._secrets.versions(record)
        except StoreError:
            return []


def _shows_projected(
    status: ManagedSecretStatus, obj: ManagedObject, target: str, version_id: str
) -> bool:
    ready = status.condition(ConditionType.READY)
    return (
        ready is not None
        and ready.status == "True"
        and status.observed_generation == obj.generation
        and status.projected_secret == target
        and status.current_version_id == version_id
    )


def _find(conditions: list[dict[str, Any]], ctype: ConditionType) -> dict[str, Any] | None:
    return next((c for c in conditions if c.get("type") == str(ctype)), None)


def _status_versions(versions: list[VersionRecord]) -> list[VersionRecord]:
    labelled = [v for v in versions if v.stages]
    rest = [v for v in versions if not v.stages]
    return (labelled + rest)[: max(STATUS_VERSIONS, len(labelled))]


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
