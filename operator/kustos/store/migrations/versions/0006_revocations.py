"""Revoked principals: every credential of a principal issued before `revoked_at` is refused.

One row per principal ARN (a later revocation moves `revoked_at` forward). API replicas poll
this small table, so a revocation written by any process is in force on all of them within
the polling bound (`kustos.services.access.revocations`).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "revocations",
        sa.Column("principal_arn", sa.Text, nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_by", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("principal_arn", name="pk_revocations"),
    )


def downgrade() -> None:
    op.drop_table("revocations")
