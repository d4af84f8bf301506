"""The tables the SQL store queries, as SQLAlchemy Core metadata.

The migrations under ``migrations/versions`` create these tables and are the source of truth
for the DDL; this module mirrors the latest revision for queries, and a unit test checks that
the two agree. Timestamps are UTC: ``timestamptz`` on PostgreSQL, ISO text
(``YYYY-MM-DD HH:MM:SS.ffffff``, as SQLAlchemy writes SQLite datetimes) on SQLite.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

__all__ = [
    "NAMING_CONVENTION",
    "UTCDateTime",
    "changes",
    "fence",
    "metadata",
    "read_epoch",
    "secrets",
    "stages",
    "versions",
]

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
_SQLITE_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


class UTCDateTime(sa.types.TypeDecorator[Any]):
    """Aware UTC datetimes in, aware UTC datetimes out; naive input is taken as UTC.

    On SQLite the text is parsed here rather than by SQLAlchemy, so one unparsable value
    comes back as its raw text (for the row reader to flag) instead of failing a whole fetch.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String())
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError("UTCDateTime binds datetime values")
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.strftime(_SQLITE_FORMAT) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                return value
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value


metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)

secrets = sa.Table(
    "secrets",
    metadata,
    sa.Column("arn", sa.Text, primary_key=True),
    sa.Column("namespace", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("tags", sa.Text, nullable=False),
    sa.Column("kms_key_id", sa.Text, nullable=False),
    sa.Column("object_name", sa.Text),
    sa.Column("resource_policy", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("deletion_date", UTCDateTime),
    sa.Column("last_accessed_at", UTCDateTime),
    sa.Column("last_rotated_at", UTCDateTime),
    sa.Column("next_rotation_at", UTCDateTime),
    sa.Column("rotation_enabled", sa.Boolean, nullable=False),
    sa.Column("rotation_rules", sa.Text, nullable=False),
    sa.Column("extra", sa.Text, nullable=False),
    # The ManagedSecret metadata.generation the spec-owned columns reflect (migration 0007).
    sa.Column("spec_generation", sa.Integer, nullable=False, server_default="0"),
    sa.Column("spec_uid", sa.Text),
    sa.UniqueConstraint("namespace", "name"),
)

versions = sa.Table(
    "versions",
    metadata,
    sa.Column("arn", sa.Text, sa.ForeignKey("secrets.arn", ondelete="CASCADE"), nullable=False),
    sa.Column("version_id", sa.Text, nullable=False),
    # Insertion order within a secret: breaks ties between equal created_at values.
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("fingerprint", sa.Text, nullable=False),
    sa.Column("key_id", sa.Text, nullable=False),
    sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
    sa.Column("nonce", sa.LargeBinary, nullable=False),
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    sa.Column("is_binary", sa.Boolean, nullable=False),
    sa.PrimaryKeyConstraint("arn", "version_id"),
    sa.Index(None, "key_id"),
)

stages = sa.Table(
    "stages",
    metadata,
    sa.Column("arn", sa.Text, nullable=False),
    sa.Column("stage", sa.Text, nullable=False),
    sa.Column("version_id", sa.Text, nullable=False),
    sa.PrimaryKeyConstraint("arn", "stage"),
    sa.ForeignKeyConstraint(
        ["arn", "version_id"], ["versions.arn", "versions.version_id"], ondelete="CASCADE"
    ),
    sa.Index(None, "arn", "version_id"),
)

#: Moved by triggers on every change to secrets, versions and stages (migration 0005);
#: `kustos.store.read_cache` trusts a cached read while it stands still.
read_epoch = sa.Table(
    "kustos_read_epoch",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("n", sa.BigInteger, nullable=False),
)

#: Append-only feed of changes to what projected Secrets hold (tailed by operators).
changes = sa.Table(
    "changes",
    metadata,
    sa.Column("seq", sa.Integer, nullable=False, autoincrement=True),
    sa.Column("arn", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint("seq"),
    sqlite_autoincrement=True,
)

#: The largest leader term that has written (migration 0008; kustos.models.fencing).
fence = sa.Table(
    "kustos_fence",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("term", sa.BigInteger, nullable=False),
    sa.Column("holder", sa.Text, nullable=False),
)
