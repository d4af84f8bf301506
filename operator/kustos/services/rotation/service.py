"""Rotation use case: decide when a ManagedSecret rotates, start it, drive it to the end.

`tick(obj)` is level-based and cheap when nothing is due: it validates the `rotation`
section (schedule, window, rotator and its config, Secret references in the same namespace
only), resumes an in-progress rotation (after a crash or a failure, once its backoff has
passed), or starts one when the schedule, `rotateImmediately` or a new `kustos.io/rotate-now`
annotation value says so. Preconditions (master Secret present with its keys, a current value
to rotate) are checked before anything is written, so bad input rotates nothing. Limits: a
global number of concurrent rotations and a number per database host. Every start, step,
success, failure and abandonment is an Event; the status carries lastRotatedAt,
nextRotationAt, the rotation's progress and a RotationFailed condition. AWSCURRENT moves only
at finishSecret; the caller then re-projects the Secret.

awaitRollout, the step after finishSecret: when workloads restart on the projected Secret's
changes (`services/consumers`), finishSecret keeps the rotation open (persisted in its row,
so an operator restart resumes the wait). Each tick reads the consumers' rollout state
(`consumers/health`: the workload's status, then, once that says done, one LIST of its pods
so that no pod of an older template, terminating ones included, is still there); when every
one has rolled out the new version, the rotator retires the
previous credentials (alternating users: the previous user's password is replaced by one
nobody keeps) and the rotation closes as Succeeded. If they have not within
`rolloutTimeoutSeconds` of finishSecret, the rotation holds: AWSCURRENT moves back to the
version it came from (the workloads roll back to it through the same restarts), the row
closes as Held with the reason, an Event and the RotationFailed condition (reason
RotationHeld) say why, and no scheduled rotation starts for `hold_seconds` (a new
rotate-now does). Without consumers the rotation closes at finishSecret, as before.
Each awaitRollout tick asks again for the restart of consumers not restarted for the version
(`restart`, the rollout coordinator's `secret_changed`: a no-op while one is pending or once
the workload names the version): the restart the projection asked for lives in the memory of
the replica that projected, and a successor that took over the Lease (the leader killed
inside the debounce window) would otherwise wait for a restart nobody makes, then hold.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import urlsplit

from kustos.errors import InvalidRequestError, KustosError
from kustos.kube.events import EventSink, ObjectRef
from kustos.kube.secrets import SecretGateway
from kustos.models.reasons import ConditionType, EventType, Reason
from kustos.models.records import AWSPENDING, AWSPREVIOUS, SecretRecord
from kustos.models.rotation_spec import RotationSpec, parse_rotation_spec
from kustos.models.status import ManagedSecretStatus, set_condition
from kustos.rotation.engine import AWAIT, STEPS, RotationEngine, RotationJob
from kustos.rotation.registry import get_rotator
from kustos.rotation.rotator import RetireSecretRequest, RetiringRotator
from kustos.rotation.schedule import Schedule, parse_schedule
from kustos.services.consumers.health import (
    ConsumerState,
    RolloutState,
    consumers_of,
    ref_of,
    rollout_state,
)
from kustos.services.consumers.rollouts import Workloads
from kustos.services.core.objects import ManagedObject, parse_spec, reason_for
from kustos.services.core.secrets import SecretService
from kustos.services.rotation.rollback import RollbackResult, RollbackService
from kustos.services.rotation.support import (
    RotationLimits,
    SecretVault,
    check_refs,
    resolve_refs,
)
from kustos.store.rotations import HELD, STARTED, RotationRecord, RotationStore

__all__ = ["ANNOTATION_ROTATE_NOW", "RotationService", "RotationTick"]

#: What may serve as a version id (AWS: 32-64 characters; Kustos: letters, digits, dashes).
_VERSION_ID = re.compile(r"[A-Za-z0-9-]{32,64}")

_log = logging.getLogger(__name__)

ANNOTATION_ROTATE_NOW = "kustos.io/rotate-now"
#: Rotators that log in to a database server (their config has `tls`).
DATABASE_ROTATORS = ("postgresql", "mysql")
#: The TLS of a database rotation that predates verify-full as the default (see _default_tls).
LEGACY_TLS: dict[str, Any] = {"mode": "require"}


@dataclass(frozen=True)
class RotationTick:
    """What one look did. The status fields (lastRotatedAt, nextRotationAt, rotation, the
    RotationFailed condition) are written into the status passed to `tick`."""

    #: AWSCURRENT moved: the projected Secret must be re-projected now.
    rotated: bool = False
    error: KustosError | None = None
    token: str | None = None
    #: When the next look is due (next scheduled rotation, end of a backoff), if known.
    due: datetime | None = None


#: What `_tick` answers when the secret has no record yet (the status is left alone).
_NO_RECORD = RotationTick()


#: How often awaitRollout looks at the consumers again while they roll out.
ROLLOUT_POLL_SECONDS = 3.0
#: rolloutTimeoutSeconds when the spec has none (rotation disabled while awaiting).
DEFAULT_ROLLOUT_TIMEOUT = 600


class ConsumerWorkloads(Workloads, Protocol):
    """The workloads (rollouts.Workloads) and their pods (`WorkloadGateway.pods`)."""

    def pods(self, namespace: str, selector: Mapping[str, Any]) -> list[dict[str, Any]]: ...


class RestartRequest(Protocol):
    """Ask for the restart of the workloads consuming Secret `secret` for `version_id`
    (`RolloutCoordinator.secret_changed`)."""

    def __call__(
        self,
        namespace: str,
        secret: str,
        version_id: str,
        named: tuple[tuple[str, str], ...] = (),
        owner: ObjectRef | None = None,
    ) -> object: ...


class RotationService:
    def __init__(
        self,
        secrets: SecretService,
        store: RotationStore,
        gateway: SecretGateway,
        events: EventSink,
        engine: RotationEngine,
        limits: RotationLimits,
        workloads: ConsumerWorkloads | None = None,
        hold_seconds: float = 3600.0,
        restart: RestartRequest | None = None,
    ) -> None:
        """`workloads`: where the consumers are read (None: no awaitRollout step);
        `hold_seconds`: how long a held rotation keeps the schedule from starting another;
        `restart`: asks again for consumers' restarts while awaiting them (module docstring)."""
        self._secrets, self._store, self._gateway = secrets, store, gateway
        self._events, self._engine, self._limits = events, engine, limits
        self._workloads, self._hold_seconds = workloads, hold_seconds
        self._restart = restart

    def _now(self) -> datetime:
        return self._secrets.clock()

    def rollback(
        self, obj: ManagedObject, status: ManagedSecretStatus, request: str
    ) -> RollbackResult:
        """Handle a `kustos.io/rollback` request (see services/rollback)."""
        return RollbackService(
            self._secrets, self._store, self._gateway, self._events, self._now
        ).handle(obj, status, request)

    def tick(
        self,
        obj: ManagedObject,
        status: ManagedSecretStatus | None = None,
        *,
        rotate_now: str | None = None,
        force: str | None = None,
    ) -> RotationTick:
        """One look at `obj`; fills in `status`. `rotate_now` is the `kustos.io/rotate-now`
        annotation's value (a value not seen before starts a rotation); `force` (a trigger
        name) starts one."""
        status = status if status is not None else ManagedSecretStatus.from_raw(obj.status)
        spec_rotation = (obj.spec or {}).get("rotation")
        seen = bool(status.rotation or status.next_rotation_at)
        if spec_rotation is None and not seen and force is None:
            return RotationTick()  # rotation not configured: nothing to read
        checks: list[tuple[Reason, str]] = []
        result = self._tick(obj, status, spec_rotation, checks, rotate_now, force)
        if result is not _NO_RECORD:  # the status was filled in: TLS_VERIFIED is ours too
            status.drop_condition(ConditionType.TLS_VERIFIED)
            for reason, message in checks:
                set_condition(
                    status,
                    ConditionType.TLS_VERIFIED,
                    False,
                    reason,
                    message,
                    generation=obj.generation,
                    now=self._now(),
                )
        return result

    def _tick(
        self,
        obj: ManagedObject,
        status: ManagedSecretStatus,
        spec_rotation: Any,
        checks: list[tuple[Reason, str]],
        rotate_now: str | None,
        force: str | None,
    ) -> RotationTick:
        record: SecretRecord | None = None
        try:
            spec = parse_spec(obj.spec)
            record = self._secrets.find(obj.namespace, spec.secret_name(obj.name))
            if record is None:
                return _NO_RECORD  # the reconciler has not created it yet
            rotation = parse_rotation_spec(spec_rotation)
            active = self._store.active(record.arn)
            if rotation is None:
                return self._disabled(obj, status, record, active)
            schedule = (
                parse_schedule(rotation.schedule, rotation.window) if rotation.schedule else None
            )
            config = rotation.rotator_config()
            if rotation.generated is not None and "keys" not in config and spec.generate:
                config["keys"] = list(spec.generate.keys)
            if rotation.section in DATABASE_ROTATORS and "tls" not in config:
                config["tls"] = self._default_tls(record)
            check_refs(config, obj.namespace)
            get_rotator(rotation.rotator_name).validate(config)
            self._warn_unverified_tls(obj, rotation, config, checks)
            if active is not None and (active.rotator, _comparable(active.config, config)) != (
                rotation.rotator_name,
                config,
            ):
                active = self._abandon_if_early(obj, active, "the rotation spec changed")
            enabled_at, _ = self._store.enabled_at(record.arn, self._now())
            last = self._store.last_success(record.arn)
            base = max(last.finished_at or enabled_at, enabled_at) if last else enabled_at
            due = schedule.next_rotation(base=base, now=self._now()) if schedule else None
            self._note_schedule(obj, record, True, due)
            if active is None:
                trigger = force or self._trigger(record, rotation, rotate_now, enabled_at, due)
                if trigger is None:
                    self._status(status, obj, record, due, None, None)
                    return RotationTick(due=due)
                active = self._begin(obj, record, rotation.rotator_name, config, trigger)
            return self._advance(
                obj, status, record, active, config, schedule, due, rotation.rollout_timeout_seconds
            )
        except KustosError as error:
            reason = (
                Reason.INVALID_SPEC
                if reason_for(error) is Reason.INVALID_SPEC
                else Reason.ROTATION_FAILED
            )
            old = status.condition(ConditionType.ROTATION_FAILED)
            if old is None or (old.status, old.message) != ("True", error.message[:1024]):
                self._events.emit(obj.ref, reason, error.message, EventType.WARNING)
            self._status(status, obj, record, None, None, (reason, error.message))
            return RotationTick(error=error)

    # -- TLS to databases ----------------------------------------------------------------
    def _default_tls(self, record: SecretRecord) -> Any:
        """The TLS of a database rotation whose spec says none: verify-full, except for a
        secret that rotated before that was the default (its newest rotation has no `tls`, or
        has this function's legacy mark): it keeps `require`, with a warning. The legacy
        value is the mapping {"mode": "require"}, a form a spec never produces (its
        rotator_config collapses a bare mode to a string), so it marks itself."""
        latest = next(iter(self._store.history(record.arn, limit=1)), None)
        if latest is not None and latest.config.get("tls", LEGACY_TLS) == LEGACY_TLS:
            return dict(LEGACY_TLS)
        return "verify-full"

    def _warn_unverified_tls(
        self,
        obj: ManagedObject,
        rotation: RotationSpec,
        config: dict[str, Any],
        checks: list[tuple[Reason, str]],
    ) -> None:
        if rotation.section not in DATABASE_ROTATORS:
            return
        tls = config.get("tls")
        mode = tls.get("mode", "verify-full") if isinstance(tls, dict) else tls
        if mode == "verify-full":
            return
        if tls == LEGACY_TLS:
            message = (
                "rotation: the database server's certificate is not verified (tls is not "
                "set, and this secret rotated before verify-full became the default); "
                "set tls.mode verify-full with tls.caSecretRef, or tls.mode require to "
                "keep this explicitly"
            )
        else:
            message = (
                f"rotation: tls.mode {mode}: the database server is not verified, so an "
                "impostor could collect the credentials the rotation logs in with; use "
                "verify-full with tls.caSecretRef"
            )
        old: dict[str, Any] = next(
            (
                c
                for c in obj.status.get("conditions") or []
                if c.get("type") == ConditionType.TLS_VERIFIED
            ),
            {},
        )
        if (old.get("status"), old.get("message")) != ("False", message):
            self._events.emit(obj.ref, Reason.TLS_NOT_VERIFIED, message, EventType.WARNING)
        checks.append((Reason.TLS_NOT_VERIFIED, message))

    # -- deciding ------------------------------------------------------------------------
    def _trigger(
        self,
        record: SecretRecord,
        rotation: RotationSpec,
        rotate_now: str | None,
        enabled_at: datetime,
        due: datetime | None,
    ) -> str | None:
        history = self._store.history(record.arn, limit=20)
        wanted = (rotate_now or "")[:64]
        if wanted and all(r.trigger != f"rotate-now:{wanted}" for r in history):
            return f"rotate-now:{wanted}"
        held = history[0] if history and history[0].status == HELD else None
        if held is not None and held.next_attempt_at and held.next_attempt_at > self._now():
            return None  # a held rotation: the next attempt waits (a new rotate-now does not)
        if rotation.rotate_immediately and not any(r.created_at >= enabled_at for r in history):
            return "immediate"
        if due is not None and self._now() >= due:
            return "schedule"
        return None

    def _abandon_if_early(
        self, obj: ManagedObject, active: RotationRecord, why: str
    ) -> RotationRecord | None:
        """Abandon a rotation that has not touched the target yet; else keep it going."""
        touched = self._engine.resume_point(active) > 1 or (
            active.step == STEPS[1] and active.phase == STARTED
        )
        if touched:
            return active
        self._store.abandon(active.arn, active.token, self._now())
        self._events.emit(
            obj.ref,
            Reason.ROTATION_ABANDONED,
            f"rotation {active.token} abandoned before setSecret: {why}",
            EventType.WARNING,
        )
        return None

    def _begin(
        self,
        obj: ManagedObject,
        record: SecretRecord,
        rotator: str,
        config: dict[str, Any],
        trigger: str,
    ) -> RotationRecord:
        # preflight: nothing written yet
        resolve_refs(self._gateway, config, obj.namespace, obj.name)
        if self._secrets.current(record) is None:
            raise InvalidRequestError(f"secret {record.name} has no AWSCURRENT value to rotate")
        stray = self._secrets.store.get_version(record.arn, stage=AWSPENDING)
        if stray is not None and self._store.drop_stray_pending(record.arn, stray.version_id):
            self._events.emit(
                obj.ref,
                Reason.ROTATION_ABANDONED,
                f"AWSPENDING removed from version {stray.version_id} left by an "
                "earlier, unfinished rotation (the version is kept)",
                EventType.WARNING,
            )
        token = self._requested_token(record, trigger) or str(uuid.uuid4())
        active = self._store.begin(
            record.arn, token, rotator=rotator, config=config, trigger=trigger, now=self._now()
        )
        self._events.emit(
            obj.ref,
            Reason.ROTATION_STARTED,
            f"rotation {token} started ({trigger.split(':')[0]}) with rotator {rotator}",
        )
        return active

    def _requested_token(self, record: SecretRecord, trigger: str) -> str | None:
        """A rotate-now value that is a usable version id (RotateSecret's ClientRequestToken)
        becomes the new version's id, so the API can answer with it before the rotation ends."""
        value = trigger.removeprefix("rotate-now:") if trigger.startswith("rotate-now:") else ""
        if not _VERSION_ID.fullmatch(value):
            return None
        if self._secrets.store.get_version(record.arn, version_id=value) is not None:
            return None
        return value

    # -- running -------------------------------------------------------------------------
    def _advance(
        self,
        obj: ManagedObject,
        status: ManagedSecretStatus,
        record: SecretRecord,
        active: RotationRecord,
        config: dict[str, Any],
        schedule: Schedule | None,
        due: datetime | None,
        timeout: int = DEFAULT_ROLLOUT_TIMEOUT,
    ) -> RotationTick:
        if active.next_attempt_at is not None and active.next_attempt_at > self._now():
            self._status(status, obj, record, due, active, self._failure(active))
            return RotationTick(due=active.next_attempt_at)
        if active.step == AWAIT:
            return self._await_rollout(obj, status, record, active, config, schedule, timeout)
        config, master = resolve_refs(self._gateway, config, obj.namespace, obj.name)
        current = self._secrets.current(record)
        consumers = self._consumers(obj) if self._engine.resume_point(active) <= 3 else []
        job = RotationJob(
            arn=record.arn,
            name=record.name,
            namespace=obj.namespace,
            token=active.token,
            rotator=get_rotator(active.rotator),
            config=config,
            master=master,
            generate=self._generate(obj),
            vault=SecretVault(self._secrets, record, current.fingerprint if current else ""),
            await_rollout=bool(consumers),
        )
        value = self._secrets.open(current).as_mapping() if current is not None else None
        with self._limits.slot(_host(config, value or {})) as free:
            if not free:  # deferred to the next tick
                self._status(status, obj, record, due, active, self._failure(active))
                return RotationTick(due=self._now())
            result = self._engine.run(
                job,
                on_step=lambda step, msg: self._events.emit(
                    obj.ref,
                    Reason.ROTATION_STEP,
                    f"{step} done for rotation {active.token}" + (f": {msg}" if msg else ""),
                ),
            )
        after = self._store.get(record.arn, active.token) or active
        if not result.finished:
            self._events.emit(
                obj.ref,
                Reason.ROTATION_FAILED,
                f"rotation {active.token} failed: {result.message}",
                EventType.WARNING,
            )
            self._status(status, obj, record, due, after, self._failure(after))
            return RotationTick(error=result.error, token=active.token, due=after.next_attempt_at)
        version = self._secrets.current(record)
        if after.step == AWAIT and after.active:
            names = ", ".join(
                str(ConsumerState(ref_of(w), RolloutState.NOT_RESTARTED)) for w in consumers
            )
            self._events.emit(
                obj.ref,
                Reason.AWAITING_ROLLOUT,
                f"rotation {active.token}: version {active.token} is AWSCURRENT; "
                f"waiting up to {timeout}s for {len(consumers)} workload(s) to "
                f"roll it out ({names}) before retiring the previous "
                "credentials",
            )
            self._status(
                status,
                obj,
                record,
                due,
                after,
                None,
                self._rollout_status(
                    after,
                    [ConsumerState(ref_of(w), RolloutState.NOT_RESTARTED) for w in consumers],
                    timeout,
                ),
            )
            return RotationTick(
                rotated=True,
                token=active.token,
                due=self._now() + timedelta(seconds=ROLLOUT_POLL_SECONDS),
            )
        self._events.emit(
            obj.ref,
            Reason.ROTATION_SUCCEEDED,
            f"rotation {active.token} succeeded: version "
            f"{version.version_id if version else active.token} is AWSCURRENT",
        )
        now = self._now()
        nxt = schedule.next_rotation(base=now, now=now) if schedule is not None else None
        self._status(status, obj, record, nxt, after, None)
        return RotationTick(rotated=True, token=active.token, due=nxt)

    # -- awaitRollout ---------------------------------------------------------------------
    def _consumers(self, obj: ManagedObject) -> list[dict[str, Any]]:
        """The workloads restarted on the projected Secret's changes (none when unreadable:
        the restarts cannot happen either)."""
        if self._workloads is None:
            return []
        spec = parse_spec(obj.spec)
        named = [(w.kind, w.name) for w in spec.target.restart_on_change]
        try:
            found = self._workloads.list(obj.namespace)
        except KustosError as error:
            _log.warning(
                "rotation of %s/%s: cannot read its consumers, not awaiting them: %s",
                obj.namespace,
                obj.name,
                error.message,
            )
            return []
        return [dict(w) for w in consumers_of(found, spec.target_name(obj.name), named)]

    def _rollout_state(self, workload: dict[str, Any], secret: str, token: str) -> RolloutState:
        """The status first; once it says done, the pods (one LIST): still rolling while a pod
        of an older template runs or terminates (consumers/health)."""
        state = rollout_state(workload, secret, token)
        if state is not RolloutState.DONE or self._workloads is None:
            return state
        meta = workload.get("metadata") or {}
        selector = (workload.get("spec") or {}).get("selector") or {}
        try:
            pods = self._workloads.pods(str(meta.get("namespace") or ""), selector)
        except KustosError as error:  # cannot tell whether old pods remain: wait, do not retire
            _log.warning(
                "rotation %s: cannot list the pods of %s %s, waiting: %s",
                token,
                workload.get("kind"),
                meta.get("name"),
                error.message,
            )
            return RolloutState.ROLLING
        return rollout_state(workload, secret, token, pods)

    def _await_rollout(
        self,
        obj: ManagedObject,
        status: ManagedSecretStatus,
        record: SecretRecord,
        active: RotationRecord,
        config: dict[str, Any],
        schedule: Schedule | None,
        timeout: int,
    ) -> RotationTick:
        now, token = self._now(), active.token
        target = parse_spec(obj.spec).target_name(obj.name)
        states = [
            ConsumerState(ref_of(w), self._rollout_state(w, target, token))
            for w in self._consumers(obj)
        ]
        deadline = (active.finished_at or active.updated_at) + timedelta(seconds=timeout)
        if (
            self._restart is not None
            and now < deadline
            and any(c.state is RolloutState.NOT_RESTARTED for c in states)
        ):
            spec = parse_spec(obj.spec)
            named = tuple((w.kind, w.name) for w in spec.target.restart_on_change)
            self._restart(obj.namespace, target, token, named, owner=obj.ref)
        if all(c.state is RolloutState.DONE for c in states):
            message = self._retire(obj, record, active, config)
            self._store.close(record.arn, token, now)
            after = self._store.get(record.arn, token) or active
            self._events.emit(
                obj.ref,
                Reason.CREDENTIALS_RETIRED,
                f"rotation {token}: {len(states)} workload(s) rolled out version "
                f"{token}; {message}",
            )
            self._events.emit(
                obj.ref,
                Reason.ROTATION_SUCCEEDED,
                f"rotation {token} succeeded: version {token} is AWSCURRENT",
            )
            nxt = schedule.next_rotation(base=now, now=now) if schedule is not None else None
            self._status(
                status, obj, record, nxt, after, None, self._rollout_status(after, states, timeout)
            )
            return RotationTick(token=token, due=nxt)
        if now < deadline:
            self._status(
                status,
                obj,
                record,
                None,
                active,
                None,
                self._rollout_status(active, states, timeout),
            )
            poll = now + timedelta(seconds=ROLLOUT_POLL_SECONDS)
            return RotationTick(token=token, due=min(poll, deadline))
        return self._hold(obj, status, record, active, states, timeout)

    def _retire(
        self,
        obj: ManagedObject,
        record: SecretRecord,
        active: RotationRecord,
        config: dict[str, Any],
    ) -> str:
        rotator = get_rotator(active.rotator)
        if not isinstance(rotator, RetiringRotator):
            return "nothing to retire"
        config, master = resolve_refs(self._gateway, config, obj.namespace, obj.name)
        current, previous = (
            self._secrets.current(record),
            self._secrets.store.get_version(record.arn, stage=AWSPREVIOUS),
        )
        req = RetireSecretRequest(
            secret_arn=record.arn,
            secret_name=record.name,
            namespace=obj.namespace,
            token=active.token,
            config=config,
            master=master,
            generate=self._generate(obj),
            current=self._secrets.open(current) if current is not None else None,
            previous=self._secrets.open(previous) if previous is not None else None,
        )
        return rotator.retire_secret(req).message or "previous credentials retired"

    def _hold(
        self,
        obj: ManagedObject,
        status: ManagedSecretStatus,
        record: SecretRecord,
        active: RotationRecord,
        states: list[ConsumerState],
        timeout: int,
    ) -> RotationTick:
        now, token = self._now(), active.token
        late = [c for c in states if c.state is not RolloutState.DONE]
        previous = self._secrets.store.get_version(record.arn, stage=AWSPREVIOUS)
        if previous is None:
            raise InvalidRequestError(f"rotation {token}: no AWSPREVIOUS version to go back to")
        why = (
            f"rotation {token} held: {', '.join(f'{c} ({c.state})' for c in late)} did not "
            f"roll out version {token} within {timeout}s; AWSCURRENT is back on version "
            f"{previous.version_id}, the workloads roll back to it, and no scheduled "
            f"rotation starts before "
            f"{_iso(now + timedelta(seconds=self._hold_seconds))}"
        )
        self._store.hold(
            record.arn,
            token,
            back_to=previous.version_id,
            error=why,
            now=now,
            next_attempt_at=now + timedelta(seconds=self._hold_seconds),
        )
        after = self._store.get(record.arn, token) or active
        self._events.emit(obj.ref, Reason.ROTATION_HELD, why, EventType.WARNING)
        self._status(
            status,
            obj,
            record,
            after.next_attempt_at,
            after,
            None,
            self._rollout_status(after, states, timeout),
        )
        return RotationTick(rotated=True, token=token, due=after.next_attempt_at)

    @staticmethod
    def _rollout_status(
        active: RotationRecord, states: list[ConsumerState], timeout: int
    ) -> dict[str, Any]:
        moved = active.finished_at or active.updated_at
        return {
            "rolloutDeadline": _iso(moved + timedelta(seconds=timeout)),
            "consumers": [
                {"kind": c.ref.kind, "name": c.ref.name, "state": str(c.state)} for c in states[:64]
            ],
        }

    def _generate(self, obj: ManagedObject) -> dict[str, Any]:
        spec = parse_spec(obj.spec)
        return spec.generate.aws_parameters() if spec.generate is not None else {}

    def _disabled(
        self,
        obj: ManagedObject,
        status: ManagedSecretStatus,
        record: SecretRecord,
        active: RotationRecord | None,
    ) -> RotationTick:
        if active is not None:
            active = self._abandon_if_early(obj, active, "rotation was disabled")
        if active is not None:  # past setSecret: finish it with the config it started with
            return self._advance(obj, status, record, active, dict(active.config), None, None)
        self._store.disable(record.arn)
        self._note_schedule(obj, record, False, None)
        self._status(status, obj, record, None, None, None)
        status.rotation = None
        status.drop_condition(ConditionType.ROTATION_FAILED)
        return RotationTick()

    def _note_schedule(
        self, obj: ManagedObject, record: SecretRecord, enabled: bool, due: datetime | None
    ) -> None:
        """Keep the record's RotationEnabled and NextRotationDate (DescribeSecret, metrics) in
        step with the spec; written only when they change, and never from a spec older than
        the one the record reflects (an API write such as CancelRotateSecret records its own
        generation: a pass over the previous spec must not undo it)."""
        due = due.replace(microsecond=0) if due is not None else None
        if (record.rotation_enabled, record.next_rotation_at) == (enabled, due):
            return
        fresh = self._secrets.store.get_secret_by_arn(record.arn)  # finish may have written
        if fresh is None or (fresh.rotation_enabled, fresh.next_rotation_at) == (enabled, due):
            return
        if fresh.spec_uid == obj.uid and fresh.spec_generation > obj.generation:
            return  # a newer spec was written; its own pass brings the schedule in step
        self._secrets.update(fresh.evolve(rotation_enabled=enabled, next_rotation_at=due))

    # -- status --------------------------------------------------------------------------
    @staticmethod
    def _failure(active: RotationRecord) -> tuple[Reason, str] | None:
        if not active.last_error:
            return None
        if active.status == HELD:
            return Reason.ROTATION_HELD, active.last_error
        return Reason.ROTATION_FAILED, f"rotation {active.token}: {active.last_error}"

    def _status(
        self,
        status: ManagedSecretStatus,
        obj: ManagedObject,
        record: SecretRecord | None,
        due: datetime | None,
        active: RotationRecord | None,
        failure: tuple[Reason, str] | None,
        rollout: dict[str, Any] | None = None,
    ) -> None:
        last = self._store.last_success(record.arn) if record is not None else None
        status.last_rotated_at = _iso(last.finished_at) if last and last.finished_at else None
        status.next_rotation_at = _iso(due) if due is not None else None
        if active is None and record is not None:  # show the last one
            active = next(iter(self._store.history(record.arn, limit=1)), None)
        if active is not None:
            rotation = {
                "token": active.token,
                "rotator": active.rotator,
                "step": active.step,
                "phase": active.phase,
                "state": active.status,
                "attempts": active.attempts,
                "trigger": active.trigger.split(":")[0],
                "lastError": active.last_error,
                "nextAttemptAt": _iso(active.next_attempt_at) if active.next_attempt_at else None,
                **(rollout or {}),
            }
            # A merge patch drops null fields: leave them out, or every tick differs.
            status.rotation = {k: v for k, v in rotation.items() if v is not None}
            if failure is None and active.status == HELD:  # held until a rotation succeeds
                failure = self._failure(active)
        old = status.condition(ConditionType.ROTATION_FAILED)
        now, generation = self._now(), obj.generation
        if failure is not None:
            set_condition(
                status,
                ConditionType.ROTATION_FAILED,
                True,
                failure[0],
                failure[1],
                generation=generation,
                now=now,
            )
        elif (active is not None and not active.active) or old is not None:
            set_condition(
                status,
                ConditionType.ROTATION_FAILED,
                False,
                Reason.ROTATION_SUCCEEDED,
                "the last rotation succeeded" if last else "no rotation has failed",
                generation=generation,
                now=now,
            )


def _comparable(stored: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """A rotation started before TLS defaults were written into its config (no `tls`) is
    the same rotation as one with the default filled in."""
    if "tls" not in stored and config.get("tls") in (LEGACY_TLS, "verify-full"):
        return {**stored, "tls": config["tls"]}
    return stored


def _host(config: dict[str, Any], value: dict[str, Any]) -> str | None:
    """The target host (for the per-host limit): config first, then the current value."""
    host = config.get("host") or value.get("host")
    if isinstance(host, str) and host:
        return f"{host}:{config.get('port') or value.get('port') or ''}"
    url = config.get("url")
    return urlsplit(url).netloc if isinstance(url, str) else None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
