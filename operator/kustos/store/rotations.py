"""`RotationStore`: the rotation state machine's rows (migration 0004) on the store's engine.

One row per (secret ARN, rotation token): the step reached and whether it was `started` or
`done` (written ahead by the engine), status, attempts, the last error (already sanitized by
the engine), timestamps, and a snapshot of the rotator's configuration (references only,
never values). At most one rotation per secret is in progress: `active_arn` equals the ARN
while it is and is NULL after, under a unique constraint, so the database itself refuses a
second one. `finish` moves AWSCURRENT to the pending version (AWSPREVIOUS follows), removes
AWSPENDING and closes the row in ONE transaction, so a crash leaves either the old or the new
labelling, never a mix. With `then` (the awaitRollout step, see services/rotation), finish
keeps the row in progress at that step instead; `close` ends it as Succeeded, `hold` ends it
as Held and moves AWSCURRENT back to the version it came from, again in one transaction.
`rotation_schedules` remembers when rotation was enabled.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from kustos.errors import InvalidRequestError, ResourceNotFoundError, StoreError
from kustos.models.records import AWSCURRENT, AWSPENDING
from kustos.store.labels import attach, holder_of, lock_secret, version_exists
from kustos.store.schema import UTCDateTime, metadata, secrets, stages
from kustos.store.tx import Tables

__all__ = [
    "ABANDONED",
    "DONE",
    "HELD",
    "IN_PROGRESS",
    "PENDING",
    "STARTED",
    "SUCCEEDED",
    "RotationInProgressError",
    "RotationRecord",
    "RotationStore",
    "rotation_schedules",
    "rotations",
]

IN_PROGRESS, SUCCEEDED, ABANDONED, HELD = "InProgress", "Succeeded", "Abandoned", "Held"
PENDING, STARTED, DONE = "pending", "started", "done"

rotations = sa.Table(
    "rotations",
    metadata,
    sa.Column("arn", sa.Text, sa.ForeignKey("secrets.arn", ondelete="CASCADE"), nullable=False),
    sa.Column("token", sa.Text, nullable=False),
    sa.Column("rotator", sa.Text, nullable=False),
    sa.Column("config", sa.Text, nullable=False),
    sa.Column("trigger", sa.Text, nullable=False),
    sa.Column("step", sa.Text, nullable=False),
    sa.Column("phase", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("active_arn", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("next_attempt_at", UTCDateTime),
    sa.Column("finished_at", UTCDateTime),
    sa.PrimaryKeyConstraint("arn", "token"),
    sa.UniqueConstraint("active_arn"),
    sa.Index(None, "arn", "created_at"),
)

rotation_schedules = sa.Table(
    "rotation_schedules",
    metadata,
    sa.Column("arn", sa.Text, sa.ForeignKey("secrets.arn", ondelete="CASCADE"), primary_key=True),
    sa.Column("enabled_at", UTCDateTime, nullable=False),
)


class RotationInProgressError(InvalidRequestError):
    """Another rotation of the secret has not finished (AWS says the same)."""


@dataclass(frozen=True)
class RotationRecord:
    arn: str
    token: str
    rotator: str
    trigger: str
    step: str
    phase: str
    status: str
    attempts: int
    created_at: datetime
    updated_at: datetime
    config: dict[str, Any] = field(default_factory=dict)
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.status == IN_PROGRESS


def _record(row: Mapping[Any, Any]) -> RotationRecord:
    try:
        config = json.loads(row["config"])
    except (TypeError, ValueError):
        raise StoreError(f"rotation {row['token']!r} of {row['arn']!r} is corrupted") from None
    return RotationRecord(
        arn=row["arn"],
        token=row["token"],
        rotator=row["rotator"],
        trigger=row["trigger"],
        step=row["step"],
        phase=row["phase"],
        status=row["status"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        config=config,
        last_error=row["last_error"],
        next_attempt_at=row["next_attempt_at"],
        finished_at=row["finished_at"],
    )


class RotationStore(Tables):
    # -- reading -------------------------------------------------------------------------
    def get(self, arn: str, token: str) -> RotationRecord | None:
        query = sa.select(rotations).where(rotations.c.arn == arn, rotations.c.token == token)
        with self._tx("read a rotation") as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _record(row)

    def active(self, arn: str) -> RotationRecord | None:
        with self._tx("read a rotation") as conn:
            row = conn.execute(sa.select(rotations).where(rotations.c.active_arn == arn))
            found = row.mappings().first()
        return None if found is None else _record(found)

    def list_active(self) -> list[RotationRecord]:
        query = sa.select(rotations).where(rotations.c.active_arn.is_not(None))
        with self._tx("list rotations") as conn:
            return [_record(r) for r in conn.execute(query).mappings().all()]

    def history(self, arn: str, limit: int = 20) -> list[RotationRecord]:
        """The secret's rotations, newest first."""
        query = (
            sa.select(rotations)
            .where(rotations.c.arn == arn)
            .order_by(rotations.c.created_at.desc())
            .limit(limit)
        )
        with self._tx("list rotations") as conn:
            return [_record(r) for r in conn.execute(query).mappings().all()]

    def last_success(self, arn: str) -> RotationRecord | None:
        query = (
            sa.select(rotations)
            .where(rotations.c.arn == arn, rotations.c.status == SUCCEEDED)
            .order_by(rotations.c.finished_at.desc())
            .limit(1)
        )
        with self._tx("read a rotation") as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else _record(row)

    # -- writing -------------------------------------------------------------------------
    def begin(
        self,
        arn: str,
        token: str,
        *,
        rotator: str,
        config: Mapping[str, Any],
        trigger: str,
        now: datetime,
    ) -> RotationRecord:
        """Record a new rotation; RotationInProgressError if another one is active."""
        row = {
            "arn": arn,
            "token": token,
            "rotator": rotator,
            "trigger": trigger[:200],
            "config": json.dumps(dict(config), sort_keys=True, default=str),
            "step": "createSecret",
            "phase": PENDING,
            "status": IN_PROGRESS,
            "attempts": 0,
            "active_arn": arn,
            "created_at": now,
            "updated_at": now,
        }
        try:
            with self._tx("begin a rotation", write=True) as conn:
                lock_secret(conn, arn)
                conn.execute(sa.insert(rotations).values(**row))
        except IntegrityError:
            active = self.active(arn)
            raise RotationInProgressError(
                f"a previous rotation of {arn} isn't complete"
                + (f" (token {active.token})" if active else "")
            ) from None
        found = self.get(arn, token)
        assert found is not None
        return found

    def _update(self, arn: str, token: str, what: str, **values: Any) -> None:
        with self._tx(what, write=True) as conn:
            query = (
                sa.update(rotations)
                .where(
                    rotations.c.arn == arn,
                    rotations.c.token == token,
                    rotations.c.status == IN_PROGRESS,
                )
                .values(**values)
            )
            if conn.execute(query).rowcount != 1:
                raise ResourceNotFoundError(f"no rotation {token!r} in progress for {arn!r}")

    def mark(self, arn: str, token: str, step: str, phase: str, now: datetime) -> None:
        """Write ahead: `step` is `started` (before acting) or `done` (after it succeeded)."""
        extra: dict[str, Any] = {"last_error": None} if phase == DONE else {}
        self._update(
            arn, token, f"mark {step} {phase}", step=step, phase=phase, updated_at=now, **extra
        )

    def record_failure(
        self, arn: str, token: str, error: str, *, now: datetime, next_attempt_at: datetime
    ) -> None:
        with self._tx("record a rotation failure", write=True) as conn:
            conn.execute(
                sa.update(rotations)
                .where(rotations.c.arn == arn, rotations.c.token == token)
                .values(
                    attempts=rotations.c.attempts + 1,
                    last_error=error[:1024],
                    updated_at=now,
                    next_attempt_at=next_attempt_at,
                )
            )

    def finish(self, arn: str, token: str, now: datetime, then: str | None = None) -> None:
        """AWSCURRENT onto `token` (AWSPREVIOUS follows), AWSPENDING off, row closed: one tx.
        With `then`, the row stays in progress at step `then` (phase started) instead, and
        `finished_at` says when AWSCURRENT moved.

        Idempotent: finishing a rotation that already finished does nothing.
        """
        with self._tx("finish a rotation", write=True) as conn:
            lock_secret(conn, arn)
            state = conn.execute(
                sa.select(rotations.c.status).where(
                    rotations.c.arn == arn, rotations.c.token == token
                )
            ).scalar_one_or_none()
            if state == SUCCEEDED:
                return
            if state != IN_PROGRESS:
                raise ResourceNotFoundError(f"no rotation {token!r} in progress for {arn!r}")
            if not version_exists(conn, arn, token):
                raise StoreError(f"rotation {token!r} of {arn!r}: the pending version is gone")
            attach(conn, arn, AWSCURRENT, token)
            self._drop_label(conn, arn, AWSPENDING, token)
            closing: dict[str, Any] = {
                "step": "finishSecret",
                "phase": DONE,
                "status": SUCCEEDED,
                "active_arn": None,
            }
            if then is not None:
                closing = {"step": then, "phase": STARTED}
            conn.execute(
                sa.update(rotations)
                .where(rotations.c.arn == arn, rotations.c.token == token)
                .values(
                    last_error=None,
                    updated_at=now,
                    finished_at=now,
                    next_attempt_at=None,
                    **closing,
                )
            )
            conn.execute(sa.update(secrets).where(secrets.c.arn == arn).values(last_rotated_at=now))

    def close(self, arn: str, token: str, now: datetime) -> None:
        """End a rotation kept open after finishSecret (`finish(then=...)`) as Succeeded."""
        self._update(
            arn,
            token,
            "close a rotation",
            phase=DONE,
            status=SUCCEEDED,
            active_arn=None,
            last_error=None,
            updated_at=now,
            next_attempt_at=None,
        )

    def hold(
        self,
        arn: str,
        token: str,
        *,
        back_to: str,
        error: str,
        now: datetime,
        next_attempt_at: datetime,
    ) -> None:
        """End a rotation kept open after finishSecret as Held: AWSCURRENT back onto
        `back_to` (the version it came from; AWSPREVIOUS follows onto `token`), the reason
        recorded, and no new rotation before `next_attempt_at`. One transaction."""
        with self._tx("hold a rotation", write=True) as conn:
            lock_secret(conn, arn)
            state = conn.execute(
                sa.select(rotations.c.status).where(
                    rotations.c.arn == arn, rotations.c.token == token
                )
            ).scalar_one_or_none()
            if state == HELD:
                return
            if state != IN_PROGRESS:
                raise ResourceNotFoundError(f"no rotation {token!r} in progress for {arn!r}")
            if not version_exists(conn, arn, back_to):
                raise StoreError(f"rotation {token!r} of {arn!r}: version {back_to} is gone")
            attach(conn, arn, AWSCURRENT, back_to)
            conn.execute(
                sa.update(rotations)
                .where(rotations.c.arn == arn, rotations.c.token == token)
                .values(
                    status=HELD,
                    phase=DONE,
                    active_arn=None,
                    last_error=error[:1024],
                    updated_at=now,
                    next_attempt_at=next_attempt_at,
                )
            )

    def abandon(self, arn: str, token: str, now: datetime) -> None:
        """Close the rotation without moving AWSCURRENT; its AWSPENDING label goes."""
        with self._tx("abandon a rotation", write=True) as conn:
            lock_secret(conn, arn)
            self._drop_label(conn, arn, AWSPENDING, token)
            conn.execute(
                sa.update(rotations)
                .where(
                    rotations.c.arn == arn,
                    rotations.c.token == token,
                    rotations.c.status == IN_PROGRESS,
                )
                .values(status=ABANDONED, active_arn=None, updated_at=now, finished_at=now)
            )

    def drop_stray_pending(self, arn: str, version_id: str) -> bool:
        """Remove AWSPENDING from `version_id` unless a rotation is in progress for it."""
        with self._tx("remove a stray AWSPENDING", write=True) as conn:
            lock_secret(conn, arn)
            busy = conn.execute(
                sa.select(rotations.c.token).where(rotations.c.active_arn == arn)
            ).first()
            if busy is not None or holder_of(conn, arn, AWSPENDING) != version_id:
                return False
            self._drop_label(conn, arn, AWSPENDING, version_id)
            return True

    @staticmethod
    def _drop_label(conn: Connection, arn: str, stage: str, version_id: str) -> None:
        conn.execute(
            sa.delete(stages).where(
                stages.c.arn == arn, stages.c.stage == stage, stages.c.version_id == version_id
            )
        )

    # -- schedules -----------------------------------------------------------------------
    def enabled_at(self, arn: str, now: datetime) -> tuple[datetime, bool]:
        """When rotation of `arn` was enabled, recording `now` the first time (then True)."""
        query = sa.select(rotation_schedules.c.enabled_at).where(rotation_schedules.c.arn == arn)
        with self._tx("read a rotation schedule") as conn:
            found = conn.execute(query).scalar_one_or_none()
        if found is not None:
            return found, False
        try:
            with self._tx("enable rotation", write=True) as conn:
                conn.execute(sa.insert(rotation_schedules).values(arn=arn, enabled_at=now))
        except IntegrityError:  # enabled meanwhile, or the secret is gone
            with self._tx("read a rotation schedule") as conn:
                found = conn.execute(query).scalar_one_or_none()
            if found is None:
                raise ResourceNotFoundError(f"secret {arn!r} not found") from None
            return found, False
        return now, True

    def disable(self, arn: str) -> None:
        with self._tx("disable rotation", write=True) as conn:
            conn.execute(sa.delete(rotation_schedules).where(rotation_schedules.c.arn == arn))
