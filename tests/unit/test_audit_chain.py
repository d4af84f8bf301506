"""The audit chain on a real SQLite file: append, verify, digests, pruning, and tampering
done directly in the database (edit, delete, insert, reorder) named by verify."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kustos.crypto import Keyring
from kustos.models.audit import AuditEvent
from kustos.models.identity import Principal
from kustos.services.audit.service import AuditService
from kustos.services.audit.verify import VerifyReport
from kustos.store import SqlStore
from kustos.store.audit import INSERT_ROWS, AuditStore, _chunks, chain_hash

KEYRING = Keyring.generate()
T0 = datetime(2026, 1, 1, tzinfo=UTC)
WHO = Principal.service_account("team-a", "app")


def event(i: int, **kw: Any) -> AuditEvent:
    fields: dict[str, Any] = dict(
        event_name="GetSecretValue",
        principal=WHO,
        read_only=True,
        namespace="team-a",
        secret_arn=f"arn:kustos:secretsmanager:test:team-a:secret:db{i % 3}-AbCdEf",
        secret_name=f"db{i % 3}",
        event_id=f"e{i:04d}",
        event_time=T0 + timedelta(minutes=i),
        request_parameters={"SecretId": f"db{i % 3}"},
    )
    fields.update(kw)
    return AuditEvent(**fields)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "audit.db"


@pytest.fixture
def audit(db: Path) -> Iterator[AuditService]:
    store = SqlStore(f"sqlite:///{db}")
    service = AuditService(AuditStore(store.engine), "test", lambda: KEYRING)
    yield service
    service.close()
    store.close()


def fill(audit: AuditService, n: int = 10) -> None:
    audit.record_many([event(i) for i in range(1, n + 1)])


def raw(db: Path, *statements: str) -> None:
    with sqlite3.connect(db) as conn:
        for sql in statements:
            conn.execute(sql)
    conn.close()


def kinds(report: VerifyReport) -> list[tuple[str, int | None, str | None]]:
    return [(f.kind, f.seq, f.event_id) for f in report.findings]


def test_chain_links_and_verifies(audit: AuditService, db: Path) -> None:
    fill(audit)
    rows = list(audit.store.iter_chain())
    assert [r[0] for r in rows] == list(range(1, 11))
    assert rows[0][-2] == "0" * 64
    for before, after in itertools.pairwise(rows):
        assert after[-2] == before[-1]
    for r in rows:
        assert chain_hash(r[-2], r[0], r[1:-3], r[-3]) == r[-1]
    report = audit.verify()
    assert report.ok and report.records == 10 and report.signatures_checked


def test_a_batch_larger_than_one_insert_is_whole_and_in_order(
    audit: AuditService, db: Path
) -> None:
    n = 2 * INSERT_ROWS + 7  # three statements: two full chunks and a short one
    fill(audit, n)
    audit.record_many([event(n + 1)])  # the next batch links to the last row of that one
    rows = list(audit.store.iter_chain())
    assert [r[0] for r in rows] == list(range(1, n + 2))
    assert [r[1] for r in rows] == [f"e{i:04d}" for i in range(1, n + 2)]
    for before, after in itertools.pairwise(rows):
        assert after[-2] == before[-1]
    report = audit.verify()
    assert report.ok and report.records == n + 1


@pytest.mark.parametrize("n", [0, 1, 23, 63, 64, 65, 2 * INSERT_ROWS + 7])
def test_insert_chunks_cover_the_batch_in_few_shapes(n: int) -> None:
    sizes = _chunks(n)
    assert sum(sizes) == n
    assert all(s == INSERT_ROWS or (s & (s - 1) == 0 and s < INSERT_ROWS) for s in sizes)
    assert len(sizes) == n // INSERT_ROWS + bin(n % INSERT_ROWS).count("1")


def test_digest_signed_and_checked(audit: AuditService, db: Path) -> None:
    fill(audit)
    digest = audit.sign_digest()
    assert digest is not None and (digest.first_seq, digest.last_seq) == (1, 10)
    assert audit.sign_digest() is None  # nothing new
    assert audit.verify().signed_through == 10
    raw(db, "UPDATE audit_digests SET chain_hash = 'ff' || substr(chain_hash, 3)")
    report = audit.verify()
    assert [f.kind for f in report.findings] == ["digest", "digest"]  # signature + chain
    assert "signature" in report.findings[0].message


def test_digest_with_another_keyring_fails(audit: AuditService) -> None:
    fill(audit)
    audit.sign_digest()
    other = audit.verify(Keyring.generate())
    assert not other.ok and "signature does not match" in other.findings[0].message
    missing = audit.verify(Keyring.generate("k9"))
    assert "lacks" in missing.findings[0].message


def test_edit_is_named(audit: AuditService, db: Path) -> None:
    fill(audit)
    raw(db, "UPDATE audit_log SET record = replace(record, 'team-a', 'team-b') WHERE seq = 4")
    assert kinds(audit.verify()) == [("modified", 4, "e0004")]


def test_edit_of_an_indexed_column_is_named(audit: AuditService, db: Path) -> None:
    fill(audit)
    raw(db, "UPDATE audit_log SET denied = 1 WHERE seq = 7")
    assert kinds(audit.verify()) == [("modified", 7, "e0007")]


def test_edit_with_rehash_breaks_the_next_link(audit: AuditService, db: Path) -> None:
    fill(audit)
    row = next(r for r in audit.store.iter_chain() if r[0] == 5)
    forged = row[-3].replace("GetSecretValue", "DescribeSecret")
    new_hash = chain_hash(row[-2], 5, row[1:-3], forged)
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit_log SET record = ?, hash = ? WHERE seq = 5", (forged, new_hash))
    conn.close()
    report = audit.verify()
    assert kinds(report) == [("broken-link", 6, "e0006")]
    assert "seq 5 (eventID e0005)" in report.findings[0].message


def test_rewritten_chain_is_caught_by_the_digest(audit: AuditService, db: Path) -> None:
    fill(audit)
    audit.sign_digest()
    rows = list(audit.store.iter_chain())
    prev = "0" * 64
    with sqlite3.connect(db) as conn:
        for r in rows:  # an attacker recomputes every hash after editing seq 3
            record = r[-3].replace("db0", "dbX") if r[0] == 3 else r[-3]
            digest = chain_hash(prev, r[0], r[1:-3], record)
            conn.execute(
                "UPDATE audit_log SET record = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                (record, prev, digest, r[0]),
            )
            prev = digest
    conn.close()
    assert kinds(audit.verify()) == [("digest", 10, "e0010")]


def test_delete_is_named(audit: AuditService, db: Path) -> None:
    fill(audit)
    raw(db, "DELETE FROM audit_log WHERE seq = 6")
    report = audit.verify()
    assert kinds(report) == [("deleted", 6, None)]
    assert "seq 6" in str(report.findings[0])


def test_delete_with_renumbering_is_named(audit: AuditService, db: Path) -> None:
    fill(audit)
    raw(
        db,
        "DELETE FROM audit_log WHERE seq = 6",
        "UPDATE audit_log SET seq = seq - 1 WHERE seq > 6",
    )
    assert kinds(audit.verify()) == [("deleted", 6, None)]


def test_truncation_after_a_digest_is_named(audit: AuditService, db: Path) -> None:
    fill(audit)
    audit.sign_digest()
    raw(db, "DELETE FROM audit_log WHERE seq >= 9")
    assert kinds(audit.verify()) == [("deleted", 9, None), ("deleted", 10, None)]


def test_insert_in_the_middle_is_named(audit: AuditService, db: Path) -> None:
    fill(audit)
    rows = {r[0]: r for r in audit.store.iter_chain()}
    r5 = rows[5]
    forged_cols = ("forged-1", *r5[2:-3])
    forged_record = r5[-3].replace("e0005", "forged-1")
    digest = chain_hash(r5[-1], 6, forged_cols, forged_record)
    cols = (
        "event_id, event_time, event_name, event_type, namespace, secret_arn, secret_name, "
        "principal_arn, user_name, read_only, denied"
    )
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE audit_log SET seq = -seq WHERE seq > 5")
        conn.execute("UPDATE audit_log SET seq = 1 - seq WHERE seq < 0")
        conn.execute(
            f"INSERT INTO audit_log (seq, {cols}, record, prev_hash, hash) "  # noqa: S608
            f"VALUES (6, {', '.join('?' * 11)}, ?, ?, ?)",
            (*forged_cols, forged_record, r5[-1], digest),
        )
    conn.close()
    assert kinds(audit.verify()) == [("inserted", 6, "forged-1")]


def test_insert_with_a_bad_hash_at_the_end_is_named(audit: AuditService, db: Path) -> None:
    fill(audit)
    raw(
        db,
        "INSERT INTO audit_log SELECT 11, 'forged-2', event_time, event_name, event_type, "
        "namespace, secret_arn, secret_name, principal_arn, user_name, read_only, denied, "
        "record, hash, 'deadbeef' FROM audit_log WHERE seq = 10",
    )
    assert kinds(audit.verify()) == [("modified", 11, "forged-2")]


def swap(db: Path, a: int, b: int) -> None:
    with sqlite3.connect(db) as conn:
        for to, frm in ((-1, a), (a, b), (b, -1)):
            conn.execute("UPDATE audit_log SET seq = ? WHERE seq = ?", (to, frm))
    conn.close()


def test_swapped_neighbours_are_both_named(audit: AuditService, db: Path) -> None:
    fill(audit)
    swap(db, 5, 6)
    report = audit.verify()
    assert kinds(report) == [("reordered", 5, "e0006"), ("reordered", 6, "e0005")]
    assert "written as seq 6" in report.findings[0].message


@pytest.mark.parametrize(("a", "b"), [(3, 7), (1, 2), (9, 10), (1, 10), (2, 9)])
def test_swap_names_exactly_the_moved_records(
    audit: AuditService, db: Path, a: int, b: int
) -> None:
    fill(audit)
    swap(db, a, b)
    assert kinds(audit.verify()) == [("reordered", a, f"e{b:04d}"), ("reordered", b, f"e{a:04d}")]


def test_a_record_moved_far_is_the_only_one_named(audit: AuditService, db: Path) -> None:
    fill(audit)
    raw(
        db,
        "UPDATE audit_log SET seq = -3 WHERE seq = 3",
        "UPDATE audit_log SET seq = seq - 1 WHERE seq BETWEEN 4 AND 8",
        "UPDATE audit_log SET seq = 8 WHERE seq = -3",
    )
    assert kinds(audit.verify()) == [("reordered", 8, "e0003")]


def test_a_move_next_to_a_deletion_names_the_move_and_the_deletion(
    audit: AuditService, db: Path
) -> None:
    fill(audit)
    raw(db, "DELETE FROM audit_log WHERE seq = 2")
    swap(db, 6, 8)
    assert kinds(audit.verify()) == [
        ("reordered", 6, "e0008"),
        ("reordered", 8, "e0006"),
        ("deleted", 2, None),
    ]


def test_deleted_digest_is_named(audit: AuditService, db: Path) -> None:
    for i in range(3):
        audit.record(event(100 + i))
        audit.sign_digest()
    raw(db, "DELETE FROM audit_digests WHERE id = 2")
    report = audit.verify()
    assert [f.kind for f in report.findings] == ["digest"]
    assert "does not follow the previous digest" in report.findings[0].message


def test_prune_keeps_the_rest_verifiable(audit: AuditService, db: Path) -> None:
    fill(audit, 20)
    audit.sign_digest()
    deleted = audit.prune(T0 + timedelta(minutes=8, seconds=30))  # records 1..8 are older
    assert deleted == 8
    report = audit.verify()
    assert report.ok, report.findings
    assert (report.first_seq, report.last_seq, report.checkpoint_seq) == (9, 20, 8)
    audit.record(event(21))  # appending continues the chain after pruning
    assert audit.verify().ok
    assert audit.prune(T0 + timedelta(days=1)) == 13  # everything
    audit.record(event(22))  # chains onto the checkpoint
    report = audit.verify()
    assert report.ok and (report.first_seq, report.records) == (22, 1)
    raw(db, "UPDATE audit_digests SET chain_hash = 'ab' WHERE kind = 'checkpoint'")
    assert not audit.verify().ok


def test_deleting_after_a_checkpoint_is_still_named(audit: AuditService, db: Path) -> None:
    fill(audit, 20)
    audit.prune(T0 + timedelta(minutes=8, seconds=30))
    raw(db, "DELETE FROM audit_log WHERE seq = 9")
    assert kinds(audit.verify()) == [("deleted", 9, None)]


def test_derived_digest_keys() -> None:
    from kustos.crypto import derive_key
    from kustos.errors import KeyringError

    ring = KEYRING.with_new_key()
    kid, key = derive_key(ring, "kustos-audit-digest-v1")
    assert kid == ring.newest_id and len(key) == 32
    assert derive_key(ring, "kustos-audit-digest-v1", kid) == (kid, key)  # deterministic
    assert derive_key(ring, "another-purpose")[1] != key
    assert derive_key(ring, "kustos-audit-digest-v1", KEYRING.newest_id)[1] != key
    assert key not in (ring.get(kid), ring.get(KEYRING.newest_id))  # never the KEK itself
    with pytest.raises(KeyringError):
        derive_key(ring, "kustos-audit-digest-v1", "k99")


def test_digests_survive_a_key_rotation(audit: AuditService, db: Path) -> None:
    fill(audit)
    audit.sign_digest()
    rotated = KEYRING.with_new_key()
    assert audit.verify(rotated).ok  # the old key is still in the keyring
    assert not audit.verify(rotated.without_key(KEYRING.newest_id)).ok
