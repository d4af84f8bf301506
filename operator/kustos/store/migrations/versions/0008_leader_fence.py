"""The leader's fencing token: the largest leader term that has written to the store.

One row per fenced role (`operator`): `term` is the `leaseTransitions` of the Lease at the
time the writing replica acquired it, `holder` its identity. Every fenced write transaction
raises it to its own term or is refused when it is lower (kustos.store.tx), so a deposed
operator replica never writes after its successor has (kustos.models.fencing).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "kustos_fence",
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("term", sa.BigInteger, nullable=False),
        sa.Column("holder", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_kustos_fence"),
    )
    op.bulk_insert(table, [{"name": "operator", "term": -1, "holder": ""}])


def downgrade() -> None:
    op.drop_table("kustos_fence")
