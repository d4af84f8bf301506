"""Engines and schema migrations for the SQL store (SQLite embedded, PostgreSQL).

`make_engine` configures each connection: on SQLite, WAL journal, foreign keys on, a busy
timeout, ``synchronous=FULL`` (a committed rotation step must survive power loss), and
transactions begun explicitly so that writers take the write lock up front (``BEGIN
IMMEDIATE``) instead of failing on lock upgrade. `upgrade` brings the schema to the newest
Alembic revision under ``migrations/``; it is idempotent and serialised between processes
(the SQLite write lock; a PostgreSQL advisory lock).

Alembic (with Mako and Pygments, about 11 MiB of a process) is imported only when a
migration is due: a store already at `HEAD_REVISION` is recognised by one SELECT, so the
operator and every API process run without it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

__all__ = [
    "HEAD_REVISION",
    "VERSION_TABLE",
    "WRITE",
    "MigrationError",
    "head_revision",
    "make_engine",
    "schema_version",
    "sqlite_pragmas",
    "upgrade",
]

VERSION_TABLE = "kustos_schema_version"
#: The newest revision under ``migrations/``, the one `head_revision` reads from the scripts
#: (a unit test keeps the two equal): what `upgrade` compares without importing Alembic.
HEAD_REVISION = "0008"
#: Execution option marking a connection that will write (BEGIN IMMEDIATE on SQLite).
WRITE = "kustos_write"
BUSY_TIMEOUT_S = 30
MIGRATIONS = Path(__file__).parent / "migrations"
_PG_LOCK_KEY = 0x6B7573746F73  # "kustos"


def normalize_url(url: str) -> URL:
    """`postgresql://` means psycopg 3 (the driver Kustos ships), not psycopg2."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def make_engine(url: str) -> Engine:
    parsed = normalize_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(parsed, pool_pre_ping=True)
    kwargs: dict[str, Any] = {
        "connect_args": {"check_same_thread": False, "timeout": BUSY_TIMEOUT_S},
    }
    if parsed.database in (None, "", ":memory:"):
        kwargs["poolclass"] = StaticPool  # one shared connection: tests only
    else:
        _create_private(Path(parsed.database or ""))
        # Kept open: `POOL_KEPT` connections, the most recently returned first (LIFO), so a
        # quiet process touches few of them; up to `POOL_OVERFLOW` more while threads need
        # them, each closed again when returned (opening one costs a query's worth).
        kwargs.update(pool_size=POOL_KEPT, max_overflow=POOL_OVERFLOW, pool_use_lifo=True)
    engine = sa.create_engine(parsed, **kwargs)
    sa.event.listen(engine, "connect", _sqlite_connect)
    sa.event.listen(engine, "begin", _sqlite_begin)
    return engine


def _create_private(path: Path) -> None:
    """Create the database file readable by its owner only (-wal/-shm inherit the mode)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    sqlite_pragmas(dbapi_connection, cache_kib=POOL_CACHE_KIB)


#: Pooled SQLite connections kept open, and how many more may be open at once. Each one
#: kept holds its page cache, its copy of the schema and its prepared statements: about
#: 0.6 MiB once it has read through a store of 10,000 secrets (32 connections: 94 MiB
#: against 71 MiB for one). The operator had 37 open at 2,000 objects with 48 kept: one
#: per worker, API and Kopf thread that had ever used the store. Sixteen cover the
#: operator's workers; the API's GetSecretValue runs on the event loop's one.
POOL_KEPT = 16
POOL_OVERFLOW = 48
#: The page cache of each pooled connection, KiB (SQLite's default is 2,000). The pool holds
#: up to 64 connections, one per busy thread; with the default, each fills its own 2 MB copy
#: of the hottest pages, and at 10,000 secrets that was a good part of the operator's RSS.
#: A page that is not in it is read from the kernel's page cache, shared by all of them.
POOL_CACHE_KIB = 256


def sqlite_pragmas(dbapi_connection: Any, *, cache_kib: int | None = None) -> None:
    """What every SQLite connection of the store runs first (also the raw ones outside
    the engine): autocommit driver mode (BEGIN is explicit), busy timeout, foreign keys,
    WAL, ``synchronous=FULL``; a page cache of `cache_kib` KiB (None: SQLite's default)."""
    dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, see _sqlite_begin
    cursor = dbapi_connection.cursor()
    try:
        if cache_kib is not None:
            cursor.execute(f"PRAGMA cache_size = -{int(cache_kib)}")
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_S * 1000}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
    finally:
        cursor.close()


def _sqlite_begin(connection: Connection) -> None:
    write = connection.get_execution_options().get(WRITE, False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _config(connection: Connection | None = None) -> Any:
    """Alembic's configuration of the scripts under ``migrations/`` (imports Alembic)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


class MigrationError(Exception):
    """The schema cannot be brought to the head (e.g. a revision this code does not know)."""


def upgrade(engine: Engine) -> None:
    """Run every pending migration in one transaction (`upgrade head`). A store at the head
    already is left alone without taking the write lock: Alembic's upgrade loads every
    migration script inside the lock, so otherwise each start of an operator or API process
    would make every writer of a shared store (other replicas' API calls) wait for that
    (and a process starting while another one writes would wait for it in turn)."""
    if schema_version(engine) == HEAD_REVISION:
        return
    from alembic import command
    from alembic.util import CommandError

    with engine.execution_options(**{WRITE: True}).begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
        try:
            command.upgrade(_config(connection), "head")
        except CommandError as exc:
            raise MigrationError(str(exc)) from None


def schema_version(engine: Engine) -> str | None:
    """The revision the database is at, or None before the first migration (one SELECT of
    Alembic's version table, which holds one row on a linear history)."""
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table(VERSION_TABLE):
            return None
        rows = connection.execute(
            sa.text(f"SELECT version_num FROM {VERSION_TABLE}")  # noqa: S608 (a constant)
        ).all()
    return str(rows[0][0]) if len(rows) == 1 else None


def head_revision() -> str | None:
    """The newest revision of the scripts under ``migrations/`` (imports Alembic)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config()).get_current_head()
