"""Alembic environment for the Kustos store; run only through `kustos.store.migrate`.

Migrations run programmatically when a store opens (``upgrade head``), on the connection and
inside the transaction that `kustos.store.migrate.upgrade` holds; nobody runs them by hand.

Adding a migration: copy ``versions/0001_initial.py`` to ``versions/NNNN_<what>.py``, set
``revision = "NNNN"`` and ``down_revision`` to the previous number, write ``upgrade`` with
``op`` calls (use ``op.batch_alter_table`` to alter existing tables, which SQLite needs),
then update ``kustos/store/schema.py`` to match; ``test_store.py`` checks they agree.
"""

from __future__ import annotations

from alembic import context

from kustos.store.migrate import VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    version_table=VERSION_TABLE,
    transactional_ddl=True,
    render_as_batch=True,
)
with context.begin_transaction():
    context.run_migrations()
