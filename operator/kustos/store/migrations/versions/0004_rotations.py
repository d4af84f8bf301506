"""Rotation state: one row per (secret, rotation token), and when rotation was enabled.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rotations",
        sa.Column("arn", sa.Text, nullable=False),
        sa.Column("token", sa.Text, nullable=False),
        sa.Column("rotator", sa.Text, nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("trigger", sa.Text, nullable=False),
        sa.Column("step", sa.Text, nullable=False),
        sa.Column("phase", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        # = arn while the rotation is in progress, NULL after: one active rotation per secret.
        sa.Column("active_arn", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("arn", "token", name="pk_rotations"),
        sa.UniqueConstraint("active_arn", name="uq_rotations_active_arn"),
        sa.ForeignKeyConstraint(
            ["arn"], ["secrets.arn"], name="fk_rotations_secrets", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_rotations_arn_created_at", "rotations", ["arn", "created_at"])
    op.create_table(
        "rotation_schedules",
        sa.Column("arn", sa.Text, nullable=False),
        sa.Column("enabled_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("arn", name="pk_rotation_schedules"),
        sa.ForeignKeyConstraint(
            ["arn"], ["secrets.arn"], name="fk_rotation_schedules_secrets", ondelete="CASCADE"
        ),
    )


def downgrade() -> None:
    op.drop_table("rotation_schedules")
    op.drop_index("ix_rotations_arn_created_at", table_name="rotations")
    op.drop_table("rotations")
