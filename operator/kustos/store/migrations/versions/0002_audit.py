"""The audit log (append-only, hash-chained) and its signed digests and checkpoints.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            nullable=False,
            autoincrement=False,
        ),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("event_time", sa.Text, nullable=False),
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
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
        sa.UniqueConstraint("event_id", name="uq_audit_log_event_id"),
    )
    for columns in (
        ["event_time"],
        ["secret_arn", "seq"],
        ["namespace", "secret_name", "seq"],
        ["event_name", "seq"],
        ["principal_arn", "seq"],
        ["user_name", "seq"],
        ["denied", "seq"],
    ):
        op.create_index(f"ix_audit_log_{'_'.join(columns)}", "audit_log", columns)
    op.create_table(
        "audit_digests",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("chain_hash", sa.Text, nullable=False),
        sa.Column("prev_signature", sa.Text, nullable=False),
        sa.Column("key_id", sa.Text, nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_digests"),
    )


def downgrade() -> None:
    op.drop_table("audit_digests")
    op.drop_table("audit_log")
