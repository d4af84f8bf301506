"""The store's backend-neutral tests, rerun on a real PostgreSQL server.

The server comes from the `pg_server` fixture (tests/db_fixture.py) when the conftest
registers it, or from ``KUSTOS_TEST_PG_URL`` (an SQLAlchemy URL of a database this test may
fill and empty); otherwise these tests skip. Each test gets a fresh database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from tests.unit.test_store import (  # noqa: F401  (rerun here with the PostgreSQL `store`)
    _same_type,
    secret,
    test_add_version_needs_the_secret,
    test_add_version_returns_and_stores_the_record,
    test_awscurrent_chain,
    test_concurrent_writers_keep_one_current,
    test_create_duplicate_name_or_arn_is_refused,
    test_delete_versions_only_unlabelled,
    test_duplicate_version_id_changes_nothing,
    test_get_version_by_id_stage_or_both,
    test_iter_sealed_pages_through_everything,
    test_list_secrets_by_namespace_in_name_order,
    test_list_versions_newest_first_and_stable_on_ties,
    test_missing_secret_is_none,
    test_move_current_like_finish_secret,
    test_move_stage_attach_free_label_and_no_op,
    test_move_stage_errors_change_nothing,
    test_move_stage_on_missing_secret,
    test_pending_moves_off_the_old_holder,
    test_purge_removes_secret_versions_and_labels,
    test_replace_wrapped_key_is_compare_and_set,
    test_secret_roundtrip_keeps_every_field,
    test_update_secret,
)
from tests.unit.test_store_protocol import (  # noqa: F401  (the parts, on PostgreSQL)
    test_each_part_is_made_once,
    test_the_parts_work_on_the_stores_database,
)

from kustos.store import SqlStore
from kustos.store.migrate import VERSION_TABLE, head_revision, make_engine
from kustos.store.schema import metadata

pytestmark = pytest.mark.db


@pytest.fixture(scope="module")
def pg_admin_url(request: pytest.FixtureRequest) -> str:
    url = os.environ.get("KUSTOS_TEST_PG_URL")
    if url:
        return url
    try:
        server = request.getfixturevalue("pg_server")
    except pytest.FixtureLookupError:
        pytest.skip("no PostgreSQL: set KUSTOS_TEST_PG_URL or register the pg_server fixture")
    user, password = quote(server.admin_user, safe=""), quote(server.admin_password, safe="")
    return f"postgresql+psycopg://{user}:{password}@{server.host}:{server.port}/{server.database}"


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    admin = sa.create_engine(pg_admin_url, isolation_level="AUTOCOMMIT")
    name = f"kustos_store_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    yield sa.make_url(pg_admin_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def store(pg_url: str) -> Iterator[SqlStore]:
    opened = SqlStore(pg_url)
    yield opened
    opened.close()


def test_migrated_schema_matches_metadata_and_reopens(store: SqlStore, pg_url: str) -> None:
    assert store.schema_version() == head_revision()
    SqlStore(pg_url).close()  # a second open: migrations are idempotent
    engine = make_engine(pg_url)
    with engine.connect() as conn:
        opts = {"version_table": VERSION_TABLE, "compare_type": _same_type}
        diff = compare_metadata(MigrationContext.configure(conn, opts=opts), metadata)
        column = sa.inspect(conn).get_columns("versions")
    engine.dispose()
    assert diff == []
    created = next(c for c in column if c["name"] == "created_at")
    reflected: Any = created["type"]  # the dialect's DateTime
    assert reflected.timezone is True  # timestamptz


def test_audit_appends_chain_on_postgres(store: SqlStore) -> None:
    """The audit log's appends (the driver's executemany) on PostgreSQL: one unbroken chain."""
    from kustos.store.audit import GENESIS, AuditStore, PendingRow, chain_hash

    audit = AuditStore(store.engine)

    def row(i: int) -> PendingRow:
        return PendingRow(
            f"e{i}",
            "2030-01-01T00:00:00.000000Z",
            "GetSecretValue",
            "AwsApiCall",
            "team-a",
            None,
            None,
            "p",
            "u",
            True,
            i % 2 == 0,
            f'{{"n":{i}}}',
        )

    first = audit.append([row(1), row(2)])
    second = audit.append([row(3)])
    assert [seq for seq, _ in first + second] == [1, 2, 3]
    prev = GENESIS
    for got in audit.iter_chain():
        seq, columns, record, prev_hash, digest = got[0], got[1:12], got[12], got[13], got[14]
        assert prev_hash == prev
        assert digest == chain_hash(prev, seq, columns, record)
        prev = digest
    assert prev == second[-1][1]


def test_the_feed_cursor_sees_a_change_that_commits_after_a_later_one(store: SqlStore) -> None:
    """Two writers take seq n and n+1 and commit as n+1, n: the operator's cursor over the
    change feed handles both (it asks again for the gap it saw)."""
    from datetime import UTC, datetime

    from kustos.operator.feed import FeedCursor
    from kustos.store.schema import changes

    def note(conn: sa.Connection, arn: str) -> None:
        conn.execute(sa.insert(changes).values(arn=arn, kind="version", at=datetime.now(UTC)))

    cursor = FeedCursor(store.last_change(), lambda: 0.0)

    def read() -> list[str]:
        gap = cursor.gap_read()
        late = store.changes_since(*gap) if gap is not None else []
        return [arn for _, arn, _ in cursor.take([*late, *store.changes_since(cursor.seq)])]

    slow = store.engine.connect()
    slow_tx = slow.begin()
    note(slow, "arn-slow")  # takes its seq first, commits last
    with store.engine.begin() as fast:
        note(fast, "arn-fast")
    assert read() == ["arn-fast"]
    assert len(cursor.gaps) == 1
    slow_tx.commit()
    slow.close()
    assert read() == ["arn-slow"]
    assert not cursor.gaps
    assert read() == []
