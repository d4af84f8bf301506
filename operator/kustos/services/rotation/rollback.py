"""Rollback: AWSCURRENT back onto AWSPREVIOUS, or onto a named version, on request.

Requested with the ManagedSecret annotation `kustos.io/rollback` (`kustos rollback` sets
it): `previous` (AWSPREVIOUS) or a version id, optionally prefixed with `force:` (below) and
followed by `#<anything>` so the same target can be asked for again. Each distinct value is
handled once; the status's `rollback` says what the last one did.

1. Refused while a rotation is in progress (it owns the labels until it ends or holds).
2. Refused, unless forced, when the rotator says the target accepting that version again
   would lock out AWSCURRENT's holders (`RollbackGuard`: alternating users, a version of
   AWSCURRENT's own user, two rotations back). The message names the safe alternative (the
   other user's version, normally AWSPREVIOUS); the status, a RollbackRefused condition and
   a Warning Event say so, and nothing is touched. A forced one proceeds and posts a Warning
   (RollbackForced) that the pods running on that user fail new logins until restarted.
3. When the secret rotates with a rotator that acts on a target (databases, webhooks), the
   target is first made to accept the version again: setSecret, then testSecret, with that
   version as the pending value (the newest rotation's config, references resolved now).
   alternating-users: the master gives the user its password back (awaitRollout may have
   retired it); single-user: the user logs in with AWSCURRENT and sets the old password.
   Nothing moves if either step fails.
4. AWSCURRENT moves (AWSPREVIOUS follows onto the version it leaves), one store write. The
   caller re-projects the Secret, which restarts the consuming workloads as any change does.

A retryable failure (a database down) is retried on the next pass; any other failure is
recorded in the status and a Warning Event and waits for a new request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kustos.errors import (
    InvalidParameterError,
    InvalidRequestError,
    KustosError,
    RollbackRefusedError,
)
from kustos.kube.events import EventSink
from kustos.kube.secrets import SecretGateway
from kustos.models.reasons import ConditionType, EventType, Reason
from kustos.models.records import AWSCURRENT, AWSPREVIOUS, SecretRecord, VersionRecord
from kustos.models.rotation_spec import parse_rotation_spec
from kustos.models.status import ManagedSecretStatus, set_condition
from kustos.rotation.registry import get_rotator
from kustos.rotation.rotator import RollbackGuard, Rotator, SetSecretRequest, TestSecretRequest
from kustos.services.core.objects import ManagedObject, parse_spec
from kustos.services.core.secrets import SecretService
from kustos.services.rotation.support import resolve_refs
from kustos.store.rotations import RotationStore

__all__ = [
    "ANNOTATION_ROLLBACK",
    "FORCE_PREFIX",
    "RollbackResult",
    "RollbackService",
    "parse_request",
    "wanted",
]

ANNOTATION_ROLLBACK = "kustos.io/rollback"
#: `force:<target>[#...]`: roll back even when it locks out AWSCURRENT's holders.
FORCE_PREFIX = "force:"
#: Rotators whose setSecret changes nothing outside Kustos.
_NO_TARGET = frozenset({"generated"})


@dataclass(frozen=True)
class RollbackResult:
    #: AWSCURRENT moved: re-project.
    moved: bool = False
    error: KustosError | None = None


def wanted(obj: ManagedObject, status: ManagedSecretStatus) -> str | None:
    """The rollback request not handled yet, if any."""
    request = (obj.annotations.get(ANNOTATION_ROLLBACK) or "").strip()[:128]
    if not request or request == (status.rollback or {}).get("request"):
        return None
    return request


def parse_request(request: str) -> tuple[str, bool]:
    """(the target: "" or `previous` for AWSPREVIOUS, else a version id; whether forced)."""
    target = request.split("#", 1)[0].strip()
    force = target.lower().startswith(FORCE_PREFIX)
    return (target[len(FORCE_PREFIX) :].strip() if force else target), force


@dataclass(frozen=True)
class _Done:
    """What `_roll_back` did."""

    from_version: str
    to_version: str
    message: str
    #: A forced rollback's lockout (why AWSCURRENT's holders now fail to log in), if any.
    lockout: str | None = None


class RollbackService:
    def __init__(
        self,
        secrets: SecretService,
        store: RotationStore,
        gateway: SecretGateway,
        events: EventSink,
        clock: Callable[[], datetime],
    ) -> None:
        self._secrets, self._store, self._gateway = secrets, store, gateway
        self._events, self._clock = events, clock

    def handle(
        self, obj: ManagedObject, status: ManagedSecretStatus, request: str
    ) -> RollbackResult:
        now = self._clock()
        at = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            done = self._roll_back(obj, request)
        except RollbackRefusedError as error:
            self._events.emit(obj.ref, Reason.ROLLBACK_REFUSED, error.message, EventType.WARNING)
            status.rollback = {
                "request": request,
                "state": "Refused",
                "message": error.message[:1024],
                "at": at,
            }
            set_condition(
                status,
                ConditionType.ROLLBACK_REFUSED,
                True,
                Reason.ROLLBACK_REFUSED,
                error.message,
                generation=obj.generation,
                now=now,
            )
            return RollbackResult(error=error)
        except KustosError as error:
            self._events.emit(
                obj.ref,
                Reason.ROLLBACK_FAILED,
                f"rollback {request!r} failed: {error.message}"
                + (" (will retry)" if error.retryable else ""),
                EventType.WARNING,
            )
            if not error.retryable:
                status.drop_condition(ConditionType.ROLLBACK_REFUSED)
                status.rollback = {
                    "request": request,
                    "state": "Failed",
                    "message": error.message[:1024],
                    "at": at,
                }
            return RollbackResult(error=error)
        status.drop_condition(ConditionType.ROLLBACK_REFUSED)
        status.rollback = {
            "request": request,
            "state": "Succeeded",
            "fromVersion": done.from_version,
            "toVersion": done.to_version,
            "message": done.message[:1024],
            "at": at,
            **({"forced": True} if done.lockout else {}),
        }
        self._events.emit(obj.ref, Reason.ROLLED_BACK, done.message)
        if done.lockout:
            self._events.emit(
                obj.ref,
                Reason.ROLLBACK_FORCED,
                f"forced rollback to version {done.to_version} (AWSCURRENT was "
                f"{done.from_version}): {done.lockout}",
                EventType.WARNING,
            )
        return RollbackResult(moved=done.from_version != done.to_version)

    def _roll_back(self, obj: ManagedObject, request: str) -> _Done:
        spec = parse_spec(obj.spec)
        record = self._secrets.find(obj.namespace, spec.secret_name(obj.name))
        if record is None:
            raise InvalidRequestError("rollback: the secret has no record yet")
        active = self._store.active(record.arn)
        if active is not None:
            raise InvalidRequestError(
                f"rollback: rotation {active.token} is in progress (step {active.step}); "
                "roll back once it has ended"
            )
        current = self._secrets.current(record)
        name, force = parse_request(request)
        target = self._target(record, name)
        if current is None:
            raise InvalidRequestError("rollback: the secret has no AWSCURRENT version")
        if target.version_id == current.version_id:
            return _Done(
                current.version_id,
                current.version_id,
                f"version {current.version_id} is already AWSCURRENT; nothing to do",
            )
        did, lockout = "", None
        plan = self._rotator(obj, record)
        if plan is not None:
            rotator_name, rotator, config = plan
            values = self._step_values(obj, record, current, target, config)
            if isinstance(rotator, RollbackGuard):
                lockout = rotator.rollback_lockout(SetSecretRequest(**values))
            if lockout is not None and not force:
                raise RollbackRefusedError(self._refusal(record, current, target, lockout))
            did = self._make_target_accept(obj, rotator_name, rotator, values)
        self._secrets.store.move_stage(
            record.arn, AWSCURRENT, to_version=target.version_id, from_version=current.version_id
        )
        return _Done(
            current.version_id,
            target.version_id,
            (
                f"rolled back{' (forced)' if lockout else ''}: version {target.version_id} "
                f"is AWSCURRENT again (was {current.version_id}){did}"
            ),
            lockout,
        )

    def _refusal(
        self, record: SecretRecord, current: VersionRecord, target: VersionRecord, lockout: str
    ) -> str:
        """The refusal's message: why, the safe alternative, and how to force it."""
        user = self._username(current)
        safe = None
        previous = self._secrets.store.get_version(record.arn, stage=AWSPREVIOUS)
        if previous is not None and self._username(previous) not in (None, user):
            safe = (
                f"AWSPREVIOUS (version {previous.version_id}, user {self._username(previous)}: "
                f"`kustos rollback --secret-id {record.name}`)"
            )
        else:
            for version in self._secrets.store.list_versions(record.arn):  # newest first
                other = self._username(version)
                if version.version_id != target.version_id and other not in (None, user):
                    safe = (
                        f"version {version.version_id} (user {other}: `kustos rollback "
                        f"--secret-id {record.name} --version-id {version.version_id}`)"
                    )
                    break
        alternative = (
            f"roll back to a version of the other user instead: {safe}"
            if safe is not None
            else "no version of another user is kept to roll back to instead"
        )
        return (
            f"rollback to version {target.version_id} refused: {lockout}. To keep them "
            f"logging in, {alternative}. To do it anyway, force it (`kustos rollback "
            f"--force`, or the annotation {ANNOTATION_ROLLBACK}={FORCE_PREFIX}"
            f"{target.version_id}) and restart the pods"
        )

    def _username(self, version: VersionRecord) -> str | None:
        found = (self._secrets.open(version).as_mapping() or {}).get("username")
        return found if isinstance(found, str) else None

    def _target(self, record: SecretRecord, name: str) -> VersionRecord:
        if name.lower() in ("", "previous", "awsprevious"):
            found = self._secrets.store.get_version(record.arn, stage=AWSPREVIOUS)
            if found is None:
                raise InvalidRequestError("rollback: the secret has no AWSPREVIOUS version")
            return found
        found = self._secrets.store.get_version(record.arn, version_id=name)
        if found is None:
            raise InvalidParameterError(f"rollback: the secret has no version {name[:64]!r}")
        return found

    def _rotator(
        self, obj: ManagedObject, record: SecretRecord
    ) -> tuple[str, Rotator, dict[str, Any]] | None:
        """The rotator that acts on the secret's target and its config (references not
        resolved yet), or None when there is no target to make accept a version."""
        rotation = parse_rotation_spec((obj.spec or {}).get("rotation"))
        latest = next(iter(self._store.history(record.arn, limit=1)), None)
        if rotation is not None:
            name, config = rotation.rotator_name, rotation.rotator_config()
            if latest is not None and latest.rotator == name:
                config = dict(latest.config)  # what the target was last rotated with
        elif latest is not None:
            name, config = latest.rotator, dict(latest.config)
        else:
            return None
        if name in _NO_TARGET:
            return None
        return name, get_rotator(name), dict(config)

    def _step_values(
        self,
        obj: ManagedObject,
        record: SecretRecord,
        current: VersionRecord,
        target: VersionRecord,
        config: dict[str, Any],
    ) -> dict[str, Any]:
        """A step request's fields with `target` as the pending value."""
        previous = self._secrets.store.get_version(record.arn, stage=AWSPREVIOUS)
        return dict(
            secret_arn=record.arn,
            secret_name=record.name,
            namespace=obj.namespace,
            token=target.version_id,
            config=config,
            current=self._secrets.open(current),
            pending=self._secrets.open(target),
            previous=self._secrets.open(previous) if previous is not None else None,
        )

    def _make_target_accept(
        self, obj: ManagedObject, name: str, rotator: Rotator, values: dict[str, Any]
    ) -> str:
        """setSecret + testSecret with the pending value of `values`, references resolved;
        a clause for the message saying what was done."""
        config, master = resolve_refs(self._gateway, values["config"], obj.namespace, obj.name)
        values = {**values, "config": config, "master": master}
        set_message = rotator.set_secret(SetSecretRequest(**values)).message
        rotator.test_secret(TestSecretRequest(**values))
        return f"; {name} accepts it again ({set_message or 'setSecret done'}; testSecret passed)"
