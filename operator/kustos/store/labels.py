"""Staging-label moves inside a store transaction (SQL; callers hold the secret's lock).

The rule AWS keeps and so do we: a label is on at most one version of a secret, and when
AWSCURRENT moves, the version that held it becomes AWSPREVIOUS (which leaves its holder).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from kustos.errors import ResourceNotFoundError
from kustos.models.records import AWSCURRENT, AWSPREVIOUS
from kustos.store.schema import secrets, stages, versions

__all__ = ["attach", "holder_of", "lock_secret", "version_exists"]


def lock_secret(conn: Connection, arn: str) -> None:
    """Lock the secret's row (PostgreSQL; SQLite writers hold the database lock already).

    ResourceNotFoundError when the secret does not exist.
    """
    query = sa.select(secrets.c.arn).where(secrets.c.arn == arn).with_for_update()
    if conn.execute(query).first() is None:
        raise ResourceNotFoundError(f"secret {arn!r} not found")


def holder_of(conn: Connection, arn: str, stage: str) -> str | None:
    """The version id carrying `stage`, if any."""
    query = sa.select(stages.c.version_id).where(stages.c.arn == arn, stages.c.stage == stage)
    return conn.execute(query).scalar_one_or_none()


def version_exists(conn: Connection, arn: str, version_id: str) -> bool:
    query = sa.select(versions.c.version_id).where(
        versions.c.arn == arn, versions.c.version_id == version_id
    )
    return conn.execute(query).first() is not None


def _put(conn: Connection, arn: str, stage: str, version_id: str) -> None:
    conn.execute(sa.delete(stages).where(stages.c.arn == arn, stages.c.stage == stage))
    conn.execute(sa.insert(stages).values(arn=arn, stage=stage, version_id=version_id))


def attach(conn: Connection, arn: str, stage: str, version_id: str) -> None:
    """Put `stage` on `version_id`, taking it off any other version."""
    holder = holder_of(conn, arn, stage)
    if holder == version_id:
        return
    if stage == AWSCURRENT and holder is not None:
        _put(conn, arn, AWSPREVIOUS, holder)
    _put(conn, arn, stage, version_id)
