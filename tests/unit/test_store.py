"""The SQL store on a temporary SQLite file: records, versions, label moves, keys, schema.

The tests taking the `store` fixture only are backend-neutral; the PostgreSQL tier
(tests/integration/test_store_postgres.py) reruns them against a real server.
"""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import kustos.store
from kustos.crypto import Keyring, open_sealed, rewrap, seal
from kustos.errors import (
    InvalidParameterError,
    InvalidRequestError,
    ResourceExistsError,
    ResourceNotFoundError,
    StoreError,
)
from kustos.models.records import (
    AWSCURRENT,
    AWSPENDING,
    AWSPREVIOUS,
    SealedPayload,
    SecretRecord,
)
from kustos.store import SqlStore, open_store
from kustos.store import sql as sql_module
from kustos.store.migrate import HEAD_REVISION, VERSION_TABLE, head_revision
from kustos.store.schema import UTCDateTime, metadata

ARN = "arn:kustos:secretsmanager:c1:team-a:secret:prod/db-AbCdEf"
T0 = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
KEYRING = Keyring.generate()
CANARY = b"KUSTOS-CANARY-7c1f9e2b-do-not-store"


def record(arn: str = ARN, namespace: str = "team-a", name: str = "prod/db") -> SecretRecord:
    return SecretRecord(arn=arn, namespace=namespace, name=name, created_at=T0, updated_at=T0)


def sealed(version_id: str, value: bytes = b"value", arn: str = ARN) -> SealedPayload:
    return seal(value, arn=arn, version_id=version_id, keyring=KEYRING)


def add(store: SqlStore, vid: str, *stages: str, at: datetime = T0, arn: str = ARN) -> None:
    store.add_version(arn, vid, sealed(vid, arn=arn), stages, at)


def labels(store: SqlStore, arn: str = ARN) -> dict[str, tuple[str, ...]]:
    return {v.version_id: v.stages for v in store.list_versions(arn)}


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "kustos.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SqlStore]:
    opened = SqlStore(f"sqlite:///{db_path}")
    yield opened
    opened.close()


@pytest.fixture
def secret(store: SqlStore) -> SqlStore:
    store.create_secret(record())
    return store


def test_public_surface() -> None:
    for name in kustos.store.__all__:
        assert hasattr(kustos.store, name), name


# -- secrets ----------------------------------------------------------------------------
def test_secret_roundtrip_keeps_every_field(store: SqlStore) -> None:
    plus2 = timezone(timedelta(hours=2))
    full = record().evolve(
        description="the db",
        tags={"team": "a", "ünïcode": "✓"},
        kms_key_id="k1",
        object_name="db",
        resource_policy='{"Version":"2012-10-17"}',
        deletion_date=datetime(2030, 2, 1, 12, tzinfo=plus2),
        last_accessed_at=datetime(2030, 1, 3),  # naive: taken as UTC
        last_rotated_at=T0,
        next_rotation_at=T0 + timedelta(days=30),
        rotation_enabled=True,
        rotation_rules={"AutomaticallyAfterDays": 30, "Duration": "2h"},
        extra={"source_hash": "abc", "n": [1, 2]},
    )
    store.create_secret(full)
    got = store.get_secret("team-a", "prod/db")
    assert got == full.evolve(last_accessed_at=datetime(2030, 1, 3, tzinfo=UTC))
    assert got is not None
    assert got.deletion_date is not None
    assert got.deletion_date.tzinfo == UTC
    assert got.deletion_date.hour == 10
    assert store.get_secret_by_arn(ARN) == got


def test_missing_secret_is_none(store: SqlStore) -> None:
    assert store.get_secret("team-a", "nope") is None
    assert store.get_secret_by_arn("arn:nope") is None


def test_create_duplicate_name_or_arn_is_refused(secret: SqlStore) -> None:
    with pytest.raises(ResourceExistsError):
        secret.create_secret(record(arn=ARN + "x"))
    with pytest.raises(ResourceExistsError):
        secret.create_secret(record(name="other"))
    secret.create_secret(record(arn=ARN + "y", namespace="team-b"))  # same name elsewhere


def test_list_secrets_by_namespace_in_name_order(store: SqlStore) -> None:
    for ns, name in [("b", "z"), ("a", "y"), ("a", "x/1")]:
        store.create_secret(record(arn=f"arn:{ns}:{name}", namespace=ns, name=name))
    assert [(s.namespace, s.name) for s in store.list_secrets()] == [
        ("a", "x/1"),
        ("a", "y"),
        ("b", "z"),
    ]
    assert [s.name for s in store.list_secrets("a")] == ["x/1", "y"]
    assert store.list_secrets("c") == []


def test_secret_by_object_name(store: SqlStore) -> None:
    """The secret a ManagedSecret declares, whether or not it is named as its object; a
    secret whose name equals another object's name but is declared by a third is not it."""
    store.create_secret(record(arn="arn:1", name="prod/db").evolve(object_name="prod-db"))
    store.create_secret(record(arn="arn:2", name="plain").evolve(object_name="plain"))
    store.create_secret(record(arn="arn:3", name="other").evolve(object_name="x"))
    store.create_secret(record(arn="arn:4", name="x", namespace="team-b"))  # undeclared
    store.create_secret(record(arn="arn:5", name="x").evolve(object_name="y"))

    def arn_of(namespace: str, object_name: str) -> str | None:
        found = store.get_secret_by_object(namespace, object_name)
        return found.arn if found is not None else None

    assert arn_of("team-a", "prod-db") == "arn:1"
    assert arn_of("team-a", "plain") == "arn:2"
    assert arn_of("team-a", "x") == "arn:3"  # not arn:5, named x but declared by y
    assert arn_of("team-a", "y") == "arn:5"
    assert arn_of("team-b", "x") is None  # named x, declared by nobody
    assert arn_of("team-a", "prod/db") is None  # a secret name is not an object name


def test_update_secret(secret: SqlStore) -> None:
    changed = record().evolve(kms_key_id="k2", rotation_enabled=True, updated_at=T0 + timedelta(1))
    secret.update_secret(changed)
    assert secret.get_secret_by_arn(ARN) == changed
    # spec-owned fields change only through apply_spec (see test_spec_ordering)
    secret.update_secret(changed.evolve(description="new", tags={"a": "b"}))
    assert secret.get_secret_by_arn(ARN) == changed
    with pytest.raises(ResourceNotFoundError):
        secret.update_secret(record(arn="arn:other"))
    secret.create_secret(record(arn="arn:2", name="two"))
    with pytest.raises(ResourceExistsError):
        secret.update_secret(record(arn="arn:2", name="prod/db"))


def test_purge_removes_secret_versions_and_labels(secret: SqlStore) -> None:
    add(secret, "v1", AWSCURRENT)
    add(secret, "v2", AWSCURRENT)
    secret.purge_secret(ARN)
    assert secret.get_secret_by_arn(ARN) is None
    assert secret.list_versions(ARN) == []
    assert list(secret.iter_sealed()) == []
    secret.purge_secret(ARN)  # absent: no error
    secret.create_secret(record())  # the name is free again
    assert secret.get_version(ARN) is None


def test_secrets_deleted_by_a_moment(store: SqlStore) -> None:
    plus2 = timezone(timedelta(hours=2))
    noon = datetime(2030, 1, 2, 12, tzinfo=UTC)
    due = {
        "live": None,
        "due": T0,
        # 13:00+02:00 is 11:00 UTC: due by noon UTC, although its local hour is later.
        "tz": datetime(2030, 1, 2, 13, tzinfo=plus2),
        "later": T0 + timedelta(days=1),
    }
    for name, when in due.items():
        store.create_secret(record(arn=f"arn:{name}", name=name).evolve(deletion_date=when))
    assert sorted(r.arn for r in store.secrets_deleted_by(noon)) == ["arn:due", "arn:tz"]
    assert [r.arn for r in store.secrets_deleted_by(T0)] == ["arn:due"]  # at the moment: due
    assert store.secrets_deleted_by(T0 - timedelta(seconds=1)) == []


# -- versions and labels ------------------------------------------------------------------
def test_add_version_needs_the_secret(store: SqlStore) -> None:
    with pytest.raises(ResourceNotFoundError):
        add(store, "v1", AWSCURRENT)


def test_add_version_returns_and_stores_the_record(secret: SqlStore) -> None:
    payload = sealed("v1", CANARY)
    made = secret.add_version(ARN, "v1", payload, [AWSCURRENT], T0, fingerprint="fp")
    assert secret.get_version(ARN, version_id="v1") == made
    assert made.sealed == payload
    assert made.fingerprint == "fp"
    assert made.stages == (AWSCURRENT,)
    got = secret.get_version(ARN)
    assert got is not None
    assert open_sealed(got.sealed, arn=ARN, version_id="v1", keyring=KEYRING) == CANARY


def test_awscurrent_chain(secret: SqlStore) -> None:
    add(secret, "v1", AWSCURRENT)
    assert labels(secret) == {"v1": (AWSCURRENT,)}
    add(secret, "v2", AWSCURRENT, at=T0 + timedelta(seconds=1))
    assert labels(secret) == {"v2": (AWSCURRENT,), "v1": (AWSPREVIOUS,)}
    add(secret, "v3", AWSCURRENT, at=T0 + timedelta(seconds=2))
    assert labels(secret) == {"v3": (AWSCURRENT,), "v2": (AWSPREVIOUS,), "v1": ()}


def test_pending_moves_off_the_old_holder(secret: SqlStore) -> None:
    add(secret, "v1", AWSCURRENT)
    add(secret, "v2", AWSPENDING, "custom")
    add(secret, "v3", AWSPENDING)
    assert labels(secret) == {"v1": (AWSCURRENT,), "v2": ("custom",), "v3": (AWSPENDING,)}


def test_duplicate_version_id_changes_nothing(secret: SqlStore) -> None:
    add(secret, "v1", AWSCURRENT)
    add(secret, "v2", AWSPENDING)
    before = secret.list_versions(ARN)
    with pytest.raises(ResourceExistsError, match="'v2'"):
        add(secret, "v2", AWSCURRENT)
    assert secret.list_versions(ARN) == before


def test_list_versions_newest_first_and_stable_on_ties(secret: SqlStore) -> None:
    add(secret, "b", at=T0)
    add(secret, "a", at=T0)
    add(secret, "old", at=T0 - timedelta(days=1))
    add(secret, "new", AWSCURRENT, at=T0 + timedelta(days=1))
    assert [v.version_id for v in secret.list_versions(ARN)] == ["new", "a", "b", "old"]
    assert secret.list_versions("arn:none") == []


def test_get_version_by_id_stage_or_both(secret: SqlStore) -> None:
    add(secret, "v1", AWSCURRENT)
    add(secret, "v2", AWSPENDING)
    by_default = secret.get_version(ARN)
    assert by_default is not None
    assert by_default.version_id == "v1"
    pending = secret.get_version(ARN, stage=AWSPENDING)
    assert pending is not None
    assert pending.version_id == "v2"
    both = secret.get_version(ARN, version_id="v2", stage=AWSPENDING)
    assert both == pending
    assert secret.get_version(ARN, version_id="v1", stage=AWSPENDING) is None
    assert secret.get_version(ARN, stage=AWSPREVIOUS) is None
    assert secret.get_version(ARN, version_id="v9") is None
    assert secret.get_version("arn:none") is None


def test_move_current_like_finish_secret(secret: SqlStore) -> None:
    add(secret, "v1", AWSCURRENT)
    add(secret, "v2", AWSCURRENT)
    add(secret, "v3", AWSPENDING)
    secret.move_stage(ARN, AWSCURRENT, to_version="v3", from_version="v2")
    assert labels(secret) == {"v1": (), "v2": (AWSPREVIOUS,), "v3": (AWSCURRENT, AWSPENDING)}
    secret.move_stage(ARN, AWSPENDING, to_version=None, from_version="v3")
    assert labels(secret) == {"v1": (), "v2": (AWSPREVIOUS,), "v3": (AWSCURRENT,)}
    # Roll back onto the previous version: the labels swap.
    secret.move_stage(ARN, AWSCURRENT, to_version="v2", from_version="v3")
    assert labels(secret) == {"v1": (), "v2": (AWSCURRENT,), "v3": (AWSPREVIOUS,)}


def test_move_stage_attach_free_label_and_no_op(secret: SqlStore) -> None:
    add(secret, "v1", AWSCURRENT)
    add(secret, "v2")
    secret.move_stage(ARN, "blue", to_version="v2", from_version=None)
    secret.move_stage(ARN, AWSCURRENT, to_version="v1", from_version=None)  # already there
    secret.move_stage(ARN, "blue", to_version="v1", from_version="v2")
    assert labels(secret) == {"v1": (AWSCURRENT, "blue"), "v2": ()}


@pytest.mark.parametrize(
    ("stage", "to_version", "from_version", "error"),
    [
        (AWSCURRENT, "v2", "v2", InvalidParameterError),  # from_version does not hold it
        (AWSCURRENT, "v2", None, InvalidParameterError),  # held elsewhere, from not named
        (AWSCURRENT, None, "v1", InvalidParameterError),  # AWSCURRENT cannot be removed
        (AWSPENDING, None, None, InvalidParameterError),  # removal needs from_version
        (AWSPENDING, None, "v1", InvalidParameterError),  # v1 does not hold it
        ("free", "v1", "v2", InvalidParameterError),  # nobody holds it
        (AWSCURRENT, "v9", "v1", ResourceNotFoundError),  # no such version
    ],
)
def test_move_stage_errors_change_nothing(
    secret: SqlStore, stage: str, to_version: str | None, from_version: str | None, error: type
) -> None:
    add(secret, "v1", AWSCURRENT)
    add(secret, "v2", AWSPENDING)
    before = labels(secret)
    with pytest.raises(error):
        secret.move_stage(ARN, stage, to_version=to_version, from_version=from_version)
    assert labels(secret) == before


def test_move_stage_on_missing_secret(store: SqlStore) -> None:
    with pytest.raises(ResourceNotFoundError):
        store.move_stage(ARN, AWSCURRENT, to_version="v1", from_version=None)


def test_delete_versions_only_unlabelled(secret: SqlStore) -> None:
    for n in range(1, 5):
        add(secret, f"v{n}", AWSCURRENT)
    with pytest.raises(InvalidRequestError, match="'v3'"):
        secret.delete_versions(ARN, ["v1", "v3"])
    assert set(labels(secret)) == {"v1", "v2", "v3", "v4"}
    secret.delete_versions(ARN, ["v1", "v2", "nope"])
    assert labels(secret) == {"v4": (AWSCURRENT,), "v3": (AWSPREVIOUS,)}
    secret.delete_versions(ARN, [])


def test_concurrent_writers_keep_one_current(secret: SqlStore) -> None:
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(10):
                add(secret, f"t{n}-{i}", AWSCURRENT, at=T0 + timedelta(seconds=i))
                secret.get_version(ARN)
                secret.list_secrets()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    found = labels(secret)
    assert len(found) == 60
    assert sum(AWSCURRENT in s for s in found.values()) == 1
    assert sum(AWSPREVIOUS in s for s in found.values()) == 1


# -- keys ---------------------------------------------------------------------------------
def test_iter_sealed_pages_through_everything(
    secret: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_module, "_BATCH", 2)
    secret.create_secret(record(arn="arn:2", name="two"))
    expected = set()
    for n in range(5):
        add(secret, f"v{n}", AWSCURRENT)
        add(secret, f"w{n}", AWSCURRENT, arn="arn:2")
        expected |= {(ARN, f"v{n}"), ("arn:2", f"w{n}")}
    seen = [(arn, vid) for arn, vid, _ in secret.iter_sealed()]
    assert sorted(seen) == sorted(expected)
    assert len(seen) == len(expected)


def test_replace_wrapped_key_is_compare_and_set(secret: SqlStore) -> None:
    secret.add_version(ARN, "v1", sealed("v1", CANARY), [AWSCURRENT], T0)
    newer = KEYRING.with_new_key()
    [(arn, vid, old)] = list(secret.iter_sealed())
    moved = rewrap(old, newer)
    assert secret.replace_wrapped_key(arn, vid, "k1", "k2", moved.wrapped_key)
    assert not secret.replace_wrapped_key(arn, vid, "k1", "k2", b"stale")
    assert not secret.replace_wrapped_key(arn, "v9", "k2", "k3", b"none")
    got = secret.get_version(ARN)
    assert got is not None
    assert got.sealed == moved
    assert got.sealed.ciphertext == old.ciphertext
    assert got.sealed.nonce == old.nonce
    assert open_sealed(got.sealed, arn=ARN, version_id="v1", keyring=newer) == CANARY


# -- schema -------------------------------------------------------------------------------
def test_migrations_reach_head_and_reopen_idempotently(db_path: Path) -> None:
    first = SqlStore(f"sqlite:///{db_path}")
    first.create_secret(record())
    add(first, "v1", AWSCURRENT)
    head = head_revision()
    assert head is not None
    assert first.schema_version() == head
    first.close()
    again = open_store(f"sqlite:///{db_path}")
    assert isinstance(again, SqlStore)
    assert again.schema_version() == head
    assert again.get_secret_by_arn(ARN) == record()
    assert labels(again) == {"v1": (AWSCURRENT,)}
    again.close()


def test_the_head_constant_is_the_scripts_head() -> None:
    assert head_revision() == HEAD_REVISION  # a new migration moves both


def test_a_store_at_the_head_opens_without_alembic(db_path: Path) -> None:
    SqlStore(f"sqlite:///{db_path}").close()  # migrated here
    probe = (
        "import sys\n"
        "from kustos.store import SqlStore\n"
        f"store = SqlStore({f'sqlite:///{db_path}'!r})\n"
        "print(store.schema_version(), sorted({m.split('.')[0] for m in sys.modules}"
        " & {'alembic', 'mako', 'pygments'}))\n"
        "store.close()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert out == [HEAD_REVISION, "[]"]


def test_an_empty_store_reports_no_revision_then_migrates(db_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{db_path}")
    assert kustos.store.migrate.schema_version(engine) is None
    engine.dispose()
    store = SqlStore(f"sqlite:///{db_path}")
    assert store.schema_version() == HEAD_REVISION
    store.close()


def _same_type(
    _ctx: object, _i: object, _m: object, inspected: object, declared: object
) -> bool | None:
    """UTCDateTime is DATETIME in the DDL; every other type uses Alembic's comparison."""
    if isinstance(declared, UTCDateTime):
        return not isinstance(inspected, sa.DateTime)
    return None


def test_schema_matches_the_metadata(store: SqlStore, db_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{db_path}")
    with engine.connect() as conn:
        opts = {"version_table": VERSION_TABLE, "compare_type": _same_type}
        context = MigrationContext.configure(conn, opts=opts)
        diff = compare_metadata(context, metadata)
        tables = set(sa.inspect(conn).get_table_names())
    engine.dispose()
    assert diff == []
    assert {"secrets", "versions", "stages"} <= tables
    assert tables == set(metadata.tables) | {VERSION_TABLE}


def test_pragmas(store: SqlStore, db_path: Path) -> None:
    with store._engine.connect() as conn:  # white-box: the pragmas each connection gets
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    assert db_path.stat().st_mode & 0o077 == 0


def test_opening_a_store_at_head_takes_no_write_lock(db_path: Path) -> None:
    """Another process holds the write lock (a long write): opening the store, already at
    the head revision, does not wait for it (it used to: Alembic's upgrade took the write
    lock even with nothing to migrate)."""
    SqlStore(f"sqlite:///{db_path}").close()
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        store = SqlStore(f"sqlite:///{db_path}")
        assert time.monotonic() - started < 10  # the busy timeout is 30 s
        assert store.schema_version() == head_revision()
        store.close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_newer_schema_is_refused(db_path: Path) -> None:
    SqlStore(f"sqlite:///{db_path}").close()
    with sqlite3.connect(db_path) as raw:
        raw.execute(f"UPDATE {VERSION_TABLE} SET version_num = '9999'")  # noqa: S608
    raw.close()
    with pytest.raises(StoreError, match="9999"):
        SqlStore(f"sqlite:///{db_path}")


# -- corruption and the disk ------------------------------------------------------------------
def _raw(db_path: Path, sql: str, *args: object) -> None:
    raw = sqlite3.connect(db_path)  # foreign keys off: raw corruption is possible
    raw.execute(sql, args)
    raw.commit()
    raw.close()


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("tags", "{not json"),
        ("tags", '["a"]'),
        ("tags", '{"a": 1}'),
        ("extra", "null"),
        ("rotation_rules", ""),
        ("created_at", "yesterday"),
        ("next_rotation_at", "soon"),
    ],
)
def test_corrupted_secret_row(
    store: SqlStore, db_path: Path, caplog: pytest.LogCaptureFixture, column: str, value: str
) -> None:
    store.create_secret(record())
    store.create_secret(record(arn="arn:healthy", name="healthy"))
    _raw(db_path, f"UPDATE secrets SET {column} = ? WHERE arn = ?", value, ARN)  # noqa: S608
    with pytest.raises(StoreError, match=f"{ARN}.*{column}") as info:
        store.get_secret_by_arn(ARN)
    assert value not in str(info.value) or value in ("", "null")
    with pytest.raises(StoreError):
        store.get_secret("team-a", "prod/db")
    with caplog.at_level(logging.ERROR, logger="kustos.store.sql"):
        assert [s.arn for s in store.list_secrets()] == ["arn:healthy"]
    assert ARN in caplog.text


def test_label_on_missing_version(secret: SqlStore, db_path: Path) -> None:
    add(secret, "v1", AWSCURRENT)
    _raw(db_path, "INSERT INTO stages (arn, stage, version_id) VALUES (?, ?, ?)", ARN, "X", "v9")
    with pytest.raises(StoreError, match=ARN):
        secret.get_version(ARN, stage="X")
    with pytest.raises(StoreError, match=ARN):
        secret.list_versions(ARN)
    assert secret.get_version(ARN) is not None  # the healthy label still reads


def test_canary_never_reaches_the_disk(secret: SqlStore, db_path: Path) -> None:
    secret.add_version(ARN, "v1", sealed("v1", CANARY), [AWSCURRENT], T0)
    secret.add_version(
        ARN,
        "v2",
        seal(CANARY, arn=ARN, version_id="v2", keyring=KEYRING, binary=True),
        [AWSCURRENT],
        T0,
    )
    files = [p for p in db_path.parent.iterdir() if p.name.startswith(db_path.name)]
    assert db_path.with_name(db_path.name + "-wal") in files  # the WAL is checked too
    marker = ARN.encode()
    on_disk = b"".join(p.read_bytes() for p in files)
    assert marker in on_disk  # the check can see what is written
    assert CANARY not in on_disk
    assert CANARY[:16] not in on_disk
    secret.close()
    assert CANARY not in b"".join(p.read_bytes() for p in db_path.parent.iterdir())
