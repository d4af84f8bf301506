"""One source of truth, ordered: spec-owned record fields are compare-and-set on the spec's
generation, other writers cannot undo them, and value changes land in the change feed in
the same transaction."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit.test_store import ARN, T0, add, record

from kustos.models.records import AWSCURRENT, AWSPREVIOUS
from kustos.services.core.spec_fields import record_fields
from kustos.store import SqlStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = SqlStore(f"sqlite:///{tmp_path / 'kustos.db'}")
    opened.create_secret(record())
    yield opened
    opened.close()


def stored(store: SqlStore) -> tuple[str, dict[str, str], int]:
    got = store.get_secret_by_arn(ARN)
    assert got is not None
    return got.description, got.tags, got.spec_generation


def test_an_older_generation_never_overwrites_a_newer(store: SqlStore) -> None:
    assert store.apply_spec(ARN, 5, {"description": "five", "tags": {"v": "5"}}, T0)
    assert not store.apply_spec(ARN, 4, {"description": "four", "tags": {}}, T0)
    assert stored(store) == ("five", {"v": "5"}, 5)
    assert store.apply_spec(ARN, 5, {"description": "five", "tags": {"v": "5"}}, T0)  # same
    assert store.apply_spec(ARN, 6, {"tags": {}}, T0)
    assert stored(store) == ("five", {}, 6)


def test_a_stale_full_record_write_leaves_spec_fields_alone(store: SqlStore) -> None:
    stale = store.get_secret_by_arn(ARN)
    assert stale is not None
    store.apply_spec(ARN, 2, {"tags": {"team": "pay"}}, T0)
    store.update_secret(stale.evolve(kms_key_id="k2", description="stale", tags={}))
    got = store.get_secret_by_arn(ARN)
    assert got is not None
    assert (got.kms_key_id, got.tags, got.description, got.spec_generation) == (
        "k2",
        {"team": "pay"},
        "",
        2,
    )


def test_apply_spec_refuses_fields_the_spec_does_not_own(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="kms_key_id"):
        store.apply_spec(ARN, 1, {"kms_key_id": "x"}, T0)


def test_concurrent_writers_end_at_the_newest_generation(store: SqlStore) -> None:
    def write(generation: int) -> None:
        store.apply_spec(ARN, generation, {"tags": {"g": str(generation)}}, T0)

    threads = [threading.Thread(target=write, args=(g,)) for g in range(1, 41)]
    for thread in reversed(threads):
        thread.start()
    for thread in threads:
        thread.join()
    assert stored(store)[1:] == ({"g": "40"}, 40)


def test_merge_extra_touches_only_its_keys(store: SqlStore) -> None:
    store.merge_extra(ARN, {"source": "f1", "other": "x"})
    stale = store.get_secret_by_arn(ARN)
    assert stale is not None
    store.merge_extra(ARN, {"other": None, "source_revision": "r2"})
    got = store.get_secret_by_arn(ARN)
    assert got is not None
    assert got.extra == {"source": "f1", "source_revision": "r2"}


def test_value_changes_are_in_the_feed_in_order(store: SqlStore) -> None:
    start = store.last_change()
    add(store, "v1", AWSCURRENT)
    add(store, "v2", AWSCURRENT)
    store.move_stage(ARN, AWSCURRENT, to_version="v1", from_version="v2")
    store.note_change("*", "keys")
    feed = store.changes_since(start)
    assert [(arn, kind) for _, arn, kind in feed] == [
        (ARN, "version"),
        (ARN, "version"),
        (ARN, "label"),
        ("*", "keys"),
    ]
    assert [seq for seq, _, _ in feed] == sorted(seq for seq, _, _ in feed)
    assert store.changes_since(feed[-1][0]) == []
    assert store.last_change() == feed[-1][0]
    assert {v.version_id: v.stages for v in store.list_versions(ARN)}["v2"] == (AWSPREVIOUS,)


def test_a_failed_write_notes_nothing(store: SqlStore) -> None:
    add(store, "v1", AWSCURRENT)
    before = store.last_change()
    with pytest.raises(Exception, match="exists already"):
        add(store, "v1", AWSCURRENT)
    assert store.last_change() == before


def test_the_feed_is_pruned_by_age(store: SqlStore) -> None:
    from datetime import UTC, datetime, timedelta

    add(store, "v1", AWSCURRENT)
    assert store.prune_changes(datetime.now(UTC) - timedelta(hours=1)) == 0
    assert store.prune_changes(datetime.now(UTC) + timedelta(seconds=1)) == 1
    assert store.changes_since(0) == []


def test_record_fields_come_from_the_spec_and_keep_a_valid_policy_in_force() -> None:
    doc = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Deny", "Principal": "*", "Action": "secretsmanager:*", "Resource": "*"}
        ],
    }
    fields = record_fields(
        {"description": "d", "tags": {"a": "b"}, "resourcePolicy": doc}, record()
    )
    assert (fields["description"], fields["tags"]) == ("d", {"a": "b"})
    assert json.loads(fields["resource_policy"]) == doc
    caller = json.dumps(doc, indent=2)  # the caller's own text is kept when it says the same
    assert (
        record_fields({"resourcePolicy": doc}, record().evolve(resource_policy=caller))[
            "resource_policy"
        ]
        == caller
    )
    invalid = {"Version": "2012-10-17", "Statement": "nope"}
    assert (
        record_fields({"resourcePolicy": invalid}, record().evolve(resource_policy=caller))[
            "resource_policy"
        ]
        == caller
    )
    assert record_fields({}, record()) == {"description": "", "tags": {}, "resource_policy": None}


def test_a_recreated_object_starts_its_generations_over(store: SqlStore) -> None:
    assert store.apply_spec(ARN, 7, {"tags": {"old": "7"}}, T0, uid="uid-1")
    assert not store.apply_spec(ARN, 3, {"tags": {"stale": "3"}}, T0, uid="uid-1")
    assert store.apply_spec(ARN, 1, {"tags": {"new": "1"}}, T0, uid="uid-2")  # restored
    assert not store.apply_spec(ARN, 0, {"tags": {}}, T0, uid="uid-2")
    assert stored(store) == ("", {"new": "1"}, 1)
