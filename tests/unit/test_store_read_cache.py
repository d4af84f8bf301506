"""The store's read cache: repeated reads come from memory, and no write anywhere (another
`SqlStore` on the same file, i.e. another replica, or raw SQL) is ever hidden by it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from tests.kube_helpers import present

from kustos.crypto import Keyring, seal
from kustos.models.records import AWSCURRENT, AWSPREVIOUS, SecretRecord
from kustos.store import SqlStore
from kustos.store.migrate import POOL_CACHE_KIB
from kustos.store.read_cache import ADMIT_WINDOW_SECONDS, EPOCH_CACHE_KIB, ReadCache

ARN = "arn:kustos:secretsmanager:c1:team-a:secret:prod/db-AbCdEf"
T0 = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
KEYRING = Keyring.generate()


def _add(store: SqlStore, vid: str, *stages: str) -> None:
    store.add_version(
        ARN,
        vid,
        seal(vid.encode(), arn=ARN, version_id=vid, keyring=KEYRING),
        stages or (AWSCURRENT,),
        T0,
    )


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "kustos.db"


@pytest.fixture
def replicas(path: Path) -> Iterator[tuple[SqlStore, SqlStore]]:
    """Two stores on one file, as two API replicas (or processes) would have."""
    a, b = SqlStore(f"sqlite:///{path}"), SqlStore(f"sqlite:///{path}")
    a.create_secret(
        SecretRecord(
            arn=ARN,
            namespace="team-a",
            name="prod/db",
            created_at=T0,
            updated_at=T0,
            tags={"team": "a"},
        )
    )
    _add(a, "v1")
    yield a, b
    a.close()
    b.close()


def _cache(store: SqlStore) -> ReadCache:
    assert store.read_cache is not None
    return store.read_cache


def test_repeated_reads_are_hits(replicas: tuple[SqlStore, SqlStore]) -> None:
    """A key is kept from its second load at one epoch on; later reads are hits."""
    _, b = replicas
    cache = _cache(b)
    for _ in range(4):
        assert b.get_secret_by_arn(ARN) is not None
        version = b.get_version(ARN, stage=AWSCURRENT)
        assert version is not None and version.version_id == "v1"
    assert (cache.misses, cache.hits) == (4, 4)


def test_a_pass_that_reads_each_key_once_keeps_nothing(path: Path) -> None:
    """The operator's periodic pass reads every secret and its version once: none of that is
    kept (it used to fill the cache with two entries per object, in the API's process)."""
    store = SqlStore(f"sqlite:///{path}")
    try:
        arns = [f"{ARN}{i}" for i in range(50)]
        for i, arn in enumerate(arns):
            store.create_secret(
                SecretRecord(
                    arn=arn, namespace="team-a", name=f"s{i}", created_at=T0, updated_at=T0
                )
            )
            store.add_version(
                arn, "v1", seal(b"x", arn=arn, version_id="v1", keyring=KEYRING), [AWSCURRENT], T0
            )
        for i, arn in enumerate(arns):
            assert store.get_secret("team-a", f"s{i}") is not None
            assert store.get_version(arn, stage=AWSCURRENT) is not None
        cache = _cache(store)
        assert len(cache) == 0 and cache.misses == 100
        assert store.get_version(arns[0], stage=AWSCURRENT) is not None  # read again: kept
        assert len(cache) == 1
    finally:
        store.close()


def test_only_a_key_loaded_again_soon_is_kept_and_kept_again_after_a_write(path: Path) -> None:
    now = [0.0]
    cache = ReadCache(path, clock=lambda: now[0])
    cache.put("pass", 1, "read once a pass")
    now[0] += ADMIT_WINDOW_SECONDS + 1  # the next pass: too late to count as hot
    cache.put("pass", 1, "read once a pass")
    cache.put("hot", 1, "read by the API")
    now[0] += 0.5
    cache.put("hot", 1, "read by the API")
    assert len(cache) == 1 and cache._entries.keys() == {"hot"}
    now[0] += 60  # a write anywhere (epoch 2) empties the cache; a hot key comes back at once
    cache.put("hot", 2, "read by the API after the write")
    cache.put("pass", 2, "read once a pass")
    assert cache._entries.keys() == {"hot"}
    cache.close()


class _CountingEpoch:
    """Counts `ReadCache.epoch` calls (each one a SELECT on the store)."""

    def __init__(self, cache: ReadCache, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = cache.epoch

        def counted() -> int:
            self.calls += 1
            return real()

        monkeypatch.setattr(cache, "epoch", counted)


def test_pinned_reads_share_one_epoch_read_and_see_earlier_writes(
    replicas: tuple[SqlStore, SqlStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = replicas
    counter = _CountingEpoch(_cache(b), monkeypatch)
    for _ in range(2):  # admitted: the next reads are hits
        b.get_secret_by_arn(ARN), b.get_version(ARN, stage=AWSCURRENT)
    counter.calls = 0
    with b.pinned_reads():
        assert present(b.get_secret_by_arn(ARN)).arn == ARN
        assert present(b.get_version(ARN, stage=AWSCURRENT)).version_id == "v1"
    assert counter.calls == 1
    _add(a, "v2")  # another replica writes before the next block starts
    with b.pinned_reads():
        assert present(b.get_version(ARN, stage=AWSCURRENT)).version_id == "v2"
    assert counter.calls == 2


def test_a_write_inside_a_pinned_block_is_read_back(
    replicas: tuple[SqlStore, SqlStore],
) -> None:
    """A write through the store drops the context's pinned epoch: read your own writes."""
    _, b = replicas
    for _ in range(2):
        b.get_version(ARN, stage=AWSCURRENT)
    with b.pinned_reads():
        assert present(b.get_version(ARN, stage=AWSCURRENT)).version_id == "v1"
        _add(b, "v2")
        assert present(b.get_version(ARN, stage=AWSCURRENT)).version_id == "v2"


def test_a_pin_is_not_seen_by_another_thread(
    replicas: tuple[SqlStore, SqlStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pin is the context's: a thread running meanwhile reads the epoch itself, so it
    sees a write committed after the block began."""
    import threading

    a, b = replicas
    for _ in range(2):
        b.get_version(ARN, stage=AWSCURRENT)
    seen: list[str] = []
    with b.pinned_reads():
        assert present(b.get_version(ARN, stage=AWSCURRENT)).version_id == "v1"
        _add(a, "v2")
        reader = threading.Thread(
            target=lambda: seen.append(present(b.get_version(ARN, stage=AWSCURRENT)).version_id)
        )
        reader.start()
        reader.join()
    assert seen == ["v2"]


def test_a_new_version_written_by_another_replica_is_read_at_once(
    replicas: tuple[SqlStore, SqlStore],
) -> None:
    a, b = replicas
    assert present(b.get_version(ARN, stage=AWSCURRENT)).version_id == "v1"
    _add(a, "v2")
    current = b.get_version(ARN, stage=AWSCURRENT)
    assert current is not None and current.version_id == "v2"
    assert (
        current.sealed.ciphertext != present(b.get_version(ARN, version_id="v1")).sealed.ciphertext
    )
    assert present(b.get_version(ARN, version_id="v1")).stages == (AWSPREVIOUS,)


def test_label_moves_updates_and_deletes_by_another_replica_are_seen(
    replicas: tuple[SqlStore, SqlStore],
) -> None:
    a, b = replicas
    _add(a, "v2")
    assert present(b.get_version(ARN, stage=AWSCURRENT)).version_id == "v2"
    a.move_stage(ARN, AWSCURRENT, to_version="v1", from_version="v2")
    assert present(b.get_version(ARN, stage=AWSCURRENT)).version_id == "v1"

    record = b.get_secret_by_arn(ARN)
    assert record is not None and record.tags == {"team": "a"}
    a.update_secret(record.evolve(kms_key_id="k2", deletion_date=T0))
    again = b.get_secret_by_arn(ARN)
    assert again is not None and again.kms_key_id == "k2" and again.deletion_date == T0
    a.apply_spec(ARN, 1, {"tags": {"team": "b"}}, T0)  # spec-owned fields: compare-and-set
    again = b.get_secret_by_arn(ARN)
    assert again is not None and again.tags == {"team": "b"}
    assert present(b.get_secret("team-a", "prod/db")).deletion_date == T0

    a.purge_secret(ARN)
    assert b.get_secret_by_arn(ARN) is None
    assert b.get_secret("team-a", "prod/db") is None
    assert b.get_version(ARN, stage=AWSCURRENT) is None


def test_a_missing_secret_created_elsewhere_is_found(path: Path) -> None:
    a, b = SqlStore(f"sqlite:///{path}"), SqlStore(f"sqlite:///{path}")
    try:
        assert b.get_secret("team-a", "prod/db") is None
        a.create_secret(
            SecretRecord(arn=ARN, namespace="team-a", name="prod/db", created_at=T0, updated_at=T0)
        )
        assert b.get_secret("team-a", "prod/db") is not None
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE stages SET version_id = 'v2' WHERE stage = 'AWSCURRENT'",
        "UPDATE versions SET ciphertext = x'00' WHERE version_id = 'v1'",
        "DELETE FROM stages WHERE stage = 'AWSCURRENT'",
    ],
)
def test_raw_sql_writes_move_the_epoch_too(
    replicas: tuple[SqlStore, SqlStore],
    path: Path,
    sql: str,
) -> None:
    """The epoch is moved by triggers, not by Kustos's code: any writer invalidates."""
    a, b = replicas
    _add(a, "v2", AWSPREVIOUS)
    before = b.get_version(ARN, stage=AWSCURRENT)
    cache = _cache(b)
    epoch = cache.epoch()
    with sqlite3.connect(path) as conn:
        conn.execute(sql)
    assert cache.epoch() > epoch
    assert b.get_version(ARN, stage=AWSCURRENT) != before


def test_audit_appends_do_not_invalidate(replicas: tuple[SqlStore, SqlStore]) -> None:
    """Only the secret tables move the epoch: the audit log's appends (every read) do not."""
    from kustos.store.audit import AuditStore, PendingRow

    a, b = replicas
    epoch = _cache(b).epoch()
    AuditStore(a.engine).append(
        [
            PendingRow(
                "e1",
                "t",
                "GetSecretValue",
                "AwsApiCall",
                "team-a",
                ARN,
                "prod/db",
                "p",
                "u",
                True,
                False,
                "{}",
            )
        ]
    )
    assert _cache(b).epoch() == epoch


def test_no_cache_on_memory_stores() -> None:
    store = SqlStore("sqlite:///:memory:")
    try:
        assert store.read_cache is None
    finally:
        store.close()


def test_connections_keep_small_page_caches(replicas: tuple[SqlStore, SqlStore]) -> None:
    """One pooled connection per busy thread: each keeps a small page cache of its own
    (SQLite's default is 2,000 KiB each), the epoch connections a smaller one."""
    a, _ = replicas
    with a._engine.connect() as conn:  # a pooled connection, as every query gets
        assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -POOL_CACHE_KIB
    cache = _cache(a)
    cache.epoch()
    assert cache._conn().execute("PRAGMA cache_size").fetchone()[0] == -EPOCH_CACHE_KIB
    assert POOL_CACHE_KIB < 2000 and EPOCH_CACHE_KIB < POOL_CACHE_KIB


def test_entries_of_an_older_epoch_are_dropped_not_kept(
    replicas: tuple[SqlStore, SqlStore],
) -> None:
    """The epoch only grows: after a write anywhere, the first entry put with the new epoch
    drops every older one (none could hit again), and a load that started before the write
    is not kept. The cache holds what was read since the last write."""
    a, b = replicas
    cache = _cache(b)
    for _ in range(2):  # kept from the second load on
        assert b.get_secret_by_arn(ARN) is not None
        assert b.get_version(ARN, stage=AWSCURRENT) is not None
    assert len(cache) == 2
    before = cache.epoch()
    _add(a, "v2")  # another replica's write moves the epoch
    assert cache.epoch() > before
    for _ in range(2):
        version = b.get_version(ARN, stage=AWSCURRENT)
        assert version is not None and version.version_id == "v2"
    assert len(cache) == 1  # only what was read since the write
    cache.put("late", before, "loaded before the write")
    assert len(cache) == 1 and cache.get("late")[2] is False
