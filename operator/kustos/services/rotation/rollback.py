"""Rollback: AWSCURRENT back onto AWSPREVIOUS, or onto a named version, on request.

Requested with the ManagedSecret annotation `kustos.io/rollback` (`kustos rollback` sets
it): `previous` (AWSPREVIOUS) or a version id, optionally followed by `#<anything>` so the
same target can be asked for again. Each distinct value is handled once; the status's
`rollback` says what the last one did.

1. Refused while a rotation is in progress (it owns the labels until it ends or holds).
2. When the secret rotates with a rotator that acts on a target (databases, webhooks), the
   target is first made to accept the version again: setSecret, then testSecret, with that
   version as the pending value (the newest rotation's config, references resolved now).
   alternating-users: the master gives the user its password back (awaitRollout may have
   retired it); single-user: the user logs in with AWSCURRENT and sets the old password.
   Nothing moves if either step fails.
3. AWSCURRENT moves (AWSPREVIOUS follows onto the version it leaves), one store write. The
   caller re-projects the Secret, which restarts the consuming workloads as any change does.

A retryable failure (a database down) is retried on the next pass; any other failure is
recorded in the status and a Warning Event and waits for a new request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kustos.errors import InvalidParameterError, InvalidRequestError, KustosError
from kustos.kube.events import EventSink
from kustos.kube.secrets import SecretGateway
from kustos.models.reasons import EventType, Reason
from kustos.models.records import AWSCURRENT, AWSPREVIOUS, SecretRecord, VersionRecord
from kustos.models.rotation_spec import parse_rotation_spec
from kustos.models.status import ManagedSecretStatus
from kustos.rotation.registry import get_rotator
from kustos.rotation.rotator import SetSecretRequest, TestSecretRequest
from kustos.services.core.objects import ManagedObject, parse_spec
from kustos.services.core.secrets import SecretService
from kustos.services.rotation.support import resolve_refs
from kustos.store.rotations import RotationStore

__all__ = ["ANNOTATION_ROLLBACK", "RollbackResult", "RollbackService", "wanted"]

ANNOTATION_ROLLBACK = "kustos.io/rollback"
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
        at = self._clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            moved_from, moved_to, message = self._roll_back(obj, request)
        except KustosError as error:
            self._events.emit(
                obj.ref,
                Reason.ROLLBACK_FAILED,
                f"rollback {request!r} failed: {error.message}"
                + (" (will retry)" if error.retryable else ""),
                EventType.WARNING,
            )
            if not error.retryable:
                status.rollback = {
                    "request": request,
                    "state": "Failed",
                    "message": error.message[:1024],
                    "at": at,
                }
            return RollbackResult(error=error)
        status.rollback = {
            "request": request,
            "state": "Succeeded",
            "fromVersion": moved_from,
            "toVersion": moved_to,
            "message": message,
            "at": at,
        }
        self._events.emit(obj.ref, Reason.ROLLED_BACK, message)
        return RollbackResult(moved=moved_from != moved_to)

    def _roll_back(self, obj: ManagedObject, request: str) -> tuple[str, str, str]:
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
        target = self._target(record, request.split("#", 1)[0].strip())
        if current is None:
            raise InvalidRequestError("rollback: the secret has no AWSCURRENT version")
        if target.version_id == current.version_id:
            return (
                current.version_id,
                current.version_id,
                (f"version {current.version_id} is already AWSCURRENT; nothing to do"),
            )
        did = self._make_target_accept(obj, record, current, target)
        self._secrets.store.move_stage(
            record.arn, AWSCURRENT, to_version=target.version_id, from_version=current.version_id
        )
        return (
            current.version_id,
            target.version_id,
            (
                f"rolled back: version {target.version_id} is AWSCURRENT again (was "
                f"{current.version_id}){did}"
            ),
        )

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

    def _make_target_accept(
        self,
        obj: ManagedObject,
        record: SecretRecord,
        current: VersionRecord,
        target: VersionRecord,
    ) -> str:
        """setSecret + testSecret with `target` as the pending value; a clause for the
        message saying what was done ("" when the rotator has no target)."""
        rotation = parse_rotation_spec((obj.spec or {}).get("rotation"))
        latest = next(iter(self._store.history(record.arn, limit=1)), None)
        if rotation is not None:
            name, config = rotation.rotator_name, rotation.rotator_config()
            if latest is not None and latest.rotator == name:
                config = dict(latest.config)  # what the target was last rotated with
        elif latest is not None:
            name, config = latest.rotator, dict(latest.config)
        else:
            return ""
        if name in _NO_TARGET:
            return ""
        rotator = get_rotator(name)
        config, master = resolve_refs(self._gateway, config, obj.namespace, obj.name)
        previous = self._secrets.store.get_version(record.arn, stage=AWSPREVIOUS)
        values: dict[str, Any] = dict(
            secret_arn=record.arn,
            secret_name=record.name,
            namespace=obj.namespace,
            token=target.version_id,
            config=config,
            master=master,
            current=self._secrets.open(current),
            pending=self._secrets.open(target),
            previous=self._secrets.open(previous) if previous is not None else None,
        )
        set_message = rotator.set_secret(SetSecretRequest(**values)).message
        rotator.test_secret(TestSecretRequest(**values))
        return f"; {name} accepts it again ({set_message or 'setSecret done'}; testSecret passed)"
