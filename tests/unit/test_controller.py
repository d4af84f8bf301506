"""The per-object controller's rules, on in-memory fakes (milliseconds per test): triggers,
ordering of generations, re-projection on value changes, rotation then re-projection,
abandoning a rotation, the deletion path, and the typed status it returns."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.unit.controller_fakes import World, build_world
from tests.unit.fakes import managed

from kustos.models.reasons import ConditionType, Reason
from kustos.models.sensitive import SecretValue
from kustos.models.status import ManagedSecretStatus, set_condition
from kustos.services.controller.controller import Outcome, Trigger
from kustos.services.rotation.service import ANNOTATION_ROTATE_NOW
from kustos.store.rotations import RotationStore

GENERATE = {"name": "prod/db", "generate": {"passwordLength": 12, "excludePunctuation": True}}
C, R, V = (
    frozenset({Trigger.CHANGED}),
    frozenset({Trigger.RESYNC}),
    frozenset({Trigger.VALUE_CHANGED}),
)


@pytest.fixture
def world() -> Iterator[World]:
    built = build_world()
    yield built
    built.store.close()


def applied(body: dict[str, Any], outcome: Outcome) -> dict[str, Any]:
    """`body` after the adapter patched the outcome's status (merge patch)."""
    status = {**body["status"], **outcome.patch}
    return {**body, "status": {k: v for k, v in status.items() if v is not None}}


def projected(world: World, name: str = "db") -> dict[str, Any]:
    secret = world.kube.objects[("team-a", name)]
    return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}


def ready(body: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in body["status"]["conditions"] if c["type"] == "Ready")


def test_changed_creates_record_version_and_projection_then_resync_is_quiet(
    world: World,
) -> None:
    body = managed("db", GENERATE)
    outcome = world.controller.handle(body, C)
    assert outcome.error is None and not outcome.rotated
    body = applied(body, outcome)
    assert ready(body)["status"] == "True" and ready(body)["reason"] == "Projected"
    assert body["status"]["observedGeneration"] == 1
    assert len(projected(world)["password"]) == 12
    # One Event tells the whole first story (one apiserver write, one audit record).
    assert world.events.reasons() == [Reason.CREATED]
    version = body["status"]["currentVersionId"]
    assert world.events.emitted[0][2] == (
        f"secret prod/db created as {body['status']['arn']}; version {version} added as "
        f"AWSCURRENT; version {version} projected into Secret db"
    )
    gets, writes = world.kube.gets, world.kube.writes
    again = world.controller.handle(body, R)
    assert again.patch == {}  # nothing changed: nothing to write
    assert (world.kube.gets, world.kube.writes) == (gets, writes)  # RESYNC reads no Secret


def test_an_older_generation_never_undoes_a_newer_spec(world: World) -> None:
    world.controller.handle(managed("db", {**GENERATE, "tags": {"v": "2"}}, generation=2), C)
    world.controller.handle(
        managed("db", {**GENERATE, "tags": {"v": "1"}, "description": "old"}, generation=1), C
    )
    record = world.record("prod/db")
    assert (record.tags, record.description, record.spec_generation) == ({"v": "2"}, "", 2)
    world.controller.handle(managed("db", {**GENERATE, "tags": {}}, generation=3), C)
    assert world.record("prod/db").tags == {}


def test_a_value_written_elsewhere_is_projected_on_the_value_changed_trigger(
    world: World,
) -> None:
    body = applied(b := managed("db", {"name": "api/key"}), world.controller.handle(b, C))
    assert ready(body)["reason"] == "NoValue"
    record = world.record("api/key")
    world.secrets.add_version(record, SecretValue("v1"))  # as PutSecretValue does
    body = applied(body, world.controller.handle(body, V))
    assert projected(world) == {"value": "v1"}
    version = world.secrets.add_version(record, SecretValue("v2"))
    # the safety net alone also catches it: the status shows an older version than the store
    body = applied(body, world.controller.handle(body, R))
    assert projected(world) == {"value": "v2"}
    assert body["status"]["currentVersionId"] == version.version_id
    gets = world.kube.gets
    world.controller.handle(body, R)
    assert world.kube.gets == gets  # and once the status shows it, no more reads


def test_drift_is_found_by_the_drift_check_not_by_resync(world: World) -> None:
    body = applied(b := managed("db", GENERATE), world.controller.handle(b, C))
    original = projected(world)
    world.kube.objects[("team-a", "db")]["data"] = {}  # someone edits the Secret
    world.controller.handle(body, R)
    assert world.kube.objects[("team-a", "db")]["data"] == {}
    world.controller.handle(body, frozenset({Trigger.DRIFT_CHECK}))
    assert projected(world) == original
    assert world.events.reasons()[-1] is Reason.DRIFT_CORRECTED


def test_the_secrets_watch_news_restores_an_edit_or_a_deletion(world: World) -> None:
    body = applied(b := managed("db", GENERATE), world.controller.handle(b, C))
    original = projected(world)
    world.kube.objects[("team-a", "db")]["data"] = {}  # someone edits the Secret
    world.controller.handle(body, frozenset({Trigger.PROJECTED_CHANGED}))
    assert projected(world) == original
    del world.kube.objects[("team-a", "db")]  # someone deletes it
    world.controller.handle(body, frozenset({Trigger.PROJECTED_CHANGED}))
    assert projected(world) == original
    assert world.events.reasons()[-2:] == [Reason.DRIFT_CORRECTED, Reason.PROJECTED]


def test_a_namespace_refusing_the_watch_is_a_warning_condition_not_a_failure(
    world: World,
) -> None:
    world.refused.add("team-a")
    body = applied(b := managed("db", GENERATE), world.controller.handle(b, C))
    watched = next(c for c in body["status"]["conditions"] if c["type"] == "DriftWatched")
    assert (watched["status"], watched["reason"]) == ("False", "DriftNotWatched")
    assert ready(body)["status"] == "True"  # projected all the same, read by name
    body = applied(body, world.controller.handle(body, R))  # the resync keeps it
    assert any(c["type"] == "DriftWatched" for c in body["status"]["conditions"])
    assert world.events.reasons().count(Reason.DRIFT_NOT_WATCHED) == 1  # no repeat
    world.refused.clear()  # a RoleBinding was added: the watch runs
    body = applied(body, world.controller.handle(body, R))
    assert all(c["type"] != "DriftWatched" for c in body["status"]["conditions"])


def test_rotate_now_rotates_then_reprojects_in_the_same_step(world: World) -> None:
    spec = {**GENERATE, "rotation": {"generated": {}}}
    body = applied(b := managed("db", spec), world.controller.handle(b, C))
    before = projected(world)["password"]
    body["metadata"]["annotations"][ANNOTATION_ROTATE_NOW] = "now-1"
    outcome = world.controller.handle(body, frozenset({Trigger.ROTATE_NOW}))
    assert outcome.rotated and outcome.error is None
    body = applied(body, outcome)
    after = projected(world)["password"]
    assert after != before and len(after) == 12
    current = world.secrets.current(world.record("prod/db"))
    assert current is not None
    assert body["status"]["currentVersionId"] == current.version_id
    assert body["status"]["lastRotatedAt"]
    failed = [c for c in body["status"]["conditions"] if c["type"] == "RotationFailed"]
    assert [c["status"] for c in failed] == ["False"]
    reasons = world.events.reasons()
    assert reasons.index(Reason.ROTATION_SUCCEEDED) < len(reasons) - 1  # then Projected
    assert reasons[-1] is Reason.PROJECTED
    # the same annotation value does not rotate again
    again = world.controller.handle(body, frozenset({Trigger.ROTATE_NOW}))
    assert not again.rotated


def test_a_scheduled_rotation_reports_when_it_is_due(world: World) -> None:
    spec = {**GENERATE, "rotation": {"schedule": "rate(1 hour)", "generated": {}}}
    outcome = world.controller.handle(managed("db", spec), C)
    assert outcome.due is not None
    assert timedelta(minutes=59) < outcome.due - datetime.now(UTC) <= timedelta(hours=1)
    assert outcome.patch["nextRotationAt"]


def test_disabling_rotation_abandons_one_that_did_not_touch_the_target(world: World) -> None:
    spec = {**GENERATE, "rotation": {"generated": {}}}
    body = applied(b := managed("db", spec), world.controller.handle(b, C))
    record = world.record("prod/db")
    RotationStore(world.store.engine).begin(
        record.arn,
        "tok-1",
        rotator="generated",
        config={},
        trigger="schedule",
        now=datetime.now(UTC),
    )
    body["status"]["rotation"] = {"token": "tok-1"}
    body["spec"] = dict(GENERATE)
    body["metadata"]["generation"] = 2
    outcome = world.controller.handle(body, C)
    assert Reason.ROTATION_ABANDONED in world.events.reasons()
    assert outcome.patch.get("rotation", "absent") is None  # removed from the status
    assert RotationStore(world.store.engine).active(record.arn) is None


def test_deleted_schedules_deletion_and_removes_the_projected_secret(world: World) -> None:
    body = applied(
        b := managed("db", {**GENERATE, "recoveryWindowInDays": 7}), world.controller.handle(b, C)
    )
    assert ("team-a", "db") in world.kube.objects
    outcome = world.controller.handle(body, frozenset({Trigger.DELETED, Trigger.RESYNC}))
    assert outcome.deleted and outcome.patch == {}
    record = world.record("prod/db")
    assert record.deletion_date is not None
    assert 6 <= (record.deletion_date - datetime.now(UTC)).days <= 7
    assert ("team-a", "db") not in world.kube.objects
    assert Reason.DELETION_SCHEDULED in world.events.reasons()


def test_an_object_being_deleted_is_left_to_its_deleted_event(world: World) -> None:
    body = managed("db", GENERATE)
    body["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:00Z"
    assert world.controller.handle(body, C) == Outcome()
    assert world.record("prod/db") is None


def test_a_bad_spec_is_a_condition_not_a_retry(world: World) -> None:
    outcome = world.controller.handle(managed("db", {"generate": {"passwordLength": 0}}), C)
    assert outcome.error is not None and not outcome.retry
    condition = next(c for c in outcome.patch["conditions"] if c["type"] == "Ready")
    assert (condition["status"], condition["reason"]) == ("False", "InvalidSpec")
    assert "passwordLength" in condition["message"]


def test_a_conflicting_target_is_reported_and_left_alone(world: World) -> None:
    world.kube.create("team-a", {"metadata": {"name": "db"}, "data": {"x": "eA=="}})
    outcome = world.controller.handle(managed("db", GENERATE), C)
    condition = next(c for c in outcome.patch["conditions"] if c["type"] == "Ready")
    assert condition["reason"] == "TargetConflict"
    assert world.kube.objects[("team-a", "db")]["data"] == {"x": "eA=="}


def test_later_changes_post_their_own_events(world: World) -> None:
    """Only a new object's first reconcile joins its Events: a value added later is
    projected in an Event of its own."""
    body = applied(b := managed("db", {"name": "api/key"}), world.controller.handle(b, C))
    assert world.events.reasons() == [Reason.CREATED]  # no value yet: the record alone
    assert world.events.emitted[0][2].startswith("secret api/key created as arn:")
    world.secrets.add_version(world.record("api/key"), SecretValue("v1"))
    applied(body, world.controller.handle(body, V))
    assert world.events.reasons() == [Reason.CREATED, Reason.PROJECTED]


def test_a_new_object_that_fails_still_says_what_was_created_first(world: World) -> None:
    world.kube.create("team-a", {"metadata": {"name": "db"}, "data": {"x": "eA=="}})
    world.controller.handle(managed("db", GENERATE), C)
    reasons = world.events.reasons()
    assert reasons == [Reason.CREATED, Reason.TARGET_CONFLICT], reasons
    assert "added as AWSCURRENT" in world.events.emitted[0][2]
    assert "projected" not in world.events.emitted[0][2]


def test_set_condition_keeps_the_transition_time_while_the_status_holds() -> None:
    status = ManagedSecretStatus()
    t0, t1 = datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 2, tzinfo=UTC)
    set_condition(status, ConditionType.READY, True, Reason.PROJECTED, "a", generation=1, now=t0)
    set_condition(
        status,
        ConditionType.ROTATION_FAILED,
        False,
        Reason.ROTATION_SUCCEEDED,
        "",
        generation=1,
        now=t0,
    )
    set_condition(status, ConditionType.READY, True, Reason.PROJECTED, "b", generation=2, now=t1)
    ready_ = status.condition(ConditionType.READY)
    assert ready_ is not None
    assert (ready_.last_transition_time, ready_.message) == ("2030-01-01T00:00:00Z", "b")
    set_condition(status, ConditionType.READY, False, Reason.STORE_ERROR, "x", generation=2, now=t1)
    assert [c.type for c in status.conditions] == ["Ready", "RotationFailed"]
    assert status.conditions[0].last_transition_time == "2030-01-02T00:00:00Z"


def test_status_patch_holds_only_what_changed() -> None:
    raw = {
        "arn": "a",
        "observedGeneration": 1,
        "kopf": {"x": 1},
        "rotation": {"token": "t"},
        "conditions": [{"type": "Ready", "status": "True", "reason": "Projected"}],
    }
    status = ManagedSecretStatus.from_raw(raw)
    assert status.patch(raw) == {}
    status.observed_generation = 2
    status.rotation = None
    assert status.patch(raw) == {"observedGeneration": 2, "rotation": None}
    assert json.dumps(status.to_raw())  # plain JSON for the merge patch
    assert ManagedSecretStatus.from_raw({"observedGeneration": "bad", "kopf": 1}).to_raw() == {
        "kopf": 1
    }
