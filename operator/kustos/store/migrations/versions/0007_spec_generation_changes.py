"""Ordering and change notification: the spec generation a record reflects, and a feed of
value changes.

`secrets.spec_generation` is the ManagedSecret `metadata.generation` whose spec the record's
spec-owned columns (description, tags, resource policy) were copied from, and `spec_uid`
the object's uid (generations restart when an object is recreated, e.g. by RestoreSecret);
a write carrying an older generation of the same object leaves them alone (compare-and-set),
so an older spec never overwrites a newer one. `changes` is an append-only feed: every
write that changes what a projected Secret should hold (a version added, a label moved, a
restore, a key change) appends a row in the same transaction, and operators tail it by
`seq` (see kustos.operator.runtime).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (not batch mode): SQLite's batch rebuild would drop the read-epoch
    # triggers of 0005 along with the old table.
    op.add_column(
        "secrets", sa.Column("spec_generation", sa.Integer, nullable=False, server_default="0")
    )
    op.add_column("secrets", sa.Column("spec_uid", sa.Text))
    op.create_table(
        "changes",
        sa.Column("seq", sa.Integer, nullable=False, autoincrement=True),
        sa.Column("arn", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_changes"),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("changes")
    op.drop_column("secrets", "spec_uid")
    op.drop_column("secrets", "spec_generation")
