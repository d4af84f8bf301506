"""Secrets, their sealed versions, and staging labels.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "secrets",
        sa.Column("arn", sa.Text, nullable=False),
        sa.Column("namespace", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("kms_key_id", sa.Text, nullable=False),
        sa.Column("object_name", sa.Text),
        sa.Column("resource_policy", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deletion_date", sa.DateTime(timezone=True)),
        sa.Column("last_accessed_at", sa.DateTime(timezone=True)),
        sa.Column("last_rotated_at", sa.DateTime(timezone=True)),
        sa.Column("next_rotation_at", sa.DateTime(timezone=True)),
        sa.Column("rotation_enabled", sa.Boolean, nullable=False),
        sa.Column("rotation_rules", sa.Text, nullable=False),
        sa.Column("extra", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("arn", name="pk_secrets"),
        sa.UniqueConstraint("namespace", "name", name="uq_secrets_namespace_name"),
    )
    op.create_table(
        "versions",
        sa.Column("arn", sa.Text, nullable=False),
        sa.Column("version_id", sa.Text, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.Column("key_id", sa.Text, nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
        sa.Column("nonce", sa.LargeBinary, nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("is_binary", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("arn", "version_id", name="pk_versions"),
        sa.ForeignKeyConstraint(
            ["arn"], ["secrets.arn"], name="fk_versions_secrets", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_versions_key_id", "versions", ["key_id"])
    op.create_table(
        "stages",
        sa.Column("arn", sa.Text, nullable=False),
        sa.Column("stage", sa.Text, nullable=False),
        sa.Column("version_id", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("arn", "stage", name="pk_stages"),
        sa.ForeignKeyConstraint(
            ["arn", "version_id"],
            ["versions.arn", "versions.version_id"],
            name="fk_stages_versions",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_stages_arn_version_id", "stages", ["arn", "version_id"])


def downgrade() -> None:
    op.drop_table("stages")
    op.drop_table("versions")
    op.drop_table("secrets")
