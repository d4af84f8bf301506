"""The read epoch: one counter that every change to secrets, versions or labels moves.

Triggers on `secrets`, `versions` and `stages` (insert, update, delete) add one to
`kustos_read_epoch.n` inside the writing transaction, whichever process or code path wrote.
A reader that saw epoch N and sees N again knows that none of those tables changed in
between; `kustos.store.read_cache` relies on it to serve repeated reads from memory.
SQLite only: on PostgreSQL the table exists but no trigger moves it, and the cache is off.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None

_TABLES = ("secrets", "versions", "stages")
_EVENTS = ("INSERT", "UPDATE", "DELETE")


def upgrade() -> None:
    op.create_table(
        "kustos_read_epoch",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_kustos_read_epoch"),
    )
    op.execute("INSERT INTO kustos_read_epoch (id, n) VALUES (1, 0)")
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in _TABLES:
        for event in _EVENTS:
            name = f"kustos_epoch_{table}_{event.lower()}"
            op.execute(
                f"CREATE TRIGGER {name} AFTER {event} ON {table} BEGIN "  # noqa: S608
                "UPDATE kustos_read_epoch SET n = n + 1 WHERE id = 1; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in _TABLES:
            for event in _EVENTS:
                op.execute(f"DROP TRIGGER IF EXISTS kustos_epoch_{table}_{event.lower()}")
    op.drop_table("kustos_read_epoch")
