"""The audit tables, on the store's shared metadata (migration 0002 creates them).

``audit_log`` is the append-only, hash-chained log (see `kustos.store.audit` for the chain
format); ``audit_digests`` holds the signed digests and pruning checkpoints.
"""

from __future__ import annotations

import sqlalchemy as sa

from kustos.store.schema import metadata

__all__ = ["audit_digests", "audit_log"]

_SEQ = sa.BigInteger().with_variant(sa.Integer, "sqlite")  # INTEGER PRIMARY KEY on SQLite

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", _SEQ, primary_key=True, autoincrement=False),
    sa.Column("event_id", sa.Text, nullable=False),
    sa.Column("event_time", sa.Text, nullable=False),  # YYYY-MM-DDTHH:MM:SS.ffffffZ (sorts)
    sa.Column("event_name", sa.Text, nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("namespace", sa.Text, nullable=False),
    sa.Column("secret_arn", sa.Text),
    sa.Column("secret_name", sa.Text),
    sa.Column("principal_arn", sa.Text, nullable=False),
    sa.Column("user_name", sa.Text, nullable=False),
    sa.Column("read_only", sa.Boolean, nullable=False),
    sa.Column("denied", sa.Boolean, nullable=False),
    sa.Column("record", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.Text, nullable=False),
    sa.Column("hash", sa.Text, nullable=False),
    sa.UniqueConstraint("event_id"),
    sa.Index(None, "event_time"),
    sa.Index(None, "secret_arn", "seq"),
    sa.Index(None, "namespace", "secret_name", "seq"),
    sa.Index(None, "event_name", "seq"),
    sa.Index(None, "principal_arn", "seq"),
    sa.Index(None, "user_name", "seq"),
    sa.Index(None, "denied", "seq"),
)

audit_digests = sa.Table(
    "audit_digests",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),  # digest | checkpoint
    sa.Column("created_at", sa.Text, nullable=False),
    sa.Column("first_seq", sa.BigInteger, nullable=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("chain_hash", sa.Text, nullable=False),
    sa.Column("prev_signature", sa.Text, nullable=False),
    sa.Column("key_id", sa.Text, nullable=False),
    sa.Column("signature", sa.Text, nullable=False),
)
