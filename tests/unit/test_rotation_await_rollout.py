"""awaitRollout, the step after finishSecret: a rotation whose projected Secret has consuming
workloads stays open until they rolled out the new version, then closes; if they do not
within rolloutTimeoutSeconds it holds (AWSCURRENT back, the workloads restarted for the old
version, an Event and a condition) and the schedule waits. In-memory fakes, a fake clock;
the workloads' status is written by the test as the Deployment controller would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from tests.unit.fakes import stand_in
from tests.unit.rollout_fakes import World, deployment

from kustos.errors import ServerError
from kustos.kube.managed_objects import ManagedObjectGateway
from kustos.kube.secrets import SecretGateway
from kustos.kube.workloads import label_selector
from kustos.models.reasons import Reason
from kustos.rotation.engine import AWAIT
from kustos.services.consumers.health import RolloutState, rollout_state
from kustos.services.consumers.rollouts import MARKER
from kustos.services.controller.controller import Trigger
from kustos.services.core.deletion import DeletionService
from kustos.store.rotations import HELD, IN_PROGRESS, SUCCEEDED


@pytest.fixture
def world() -> Iterator[World]:
    built = World(
        deployment("web"), deployment("worker", replicas=1), deployment("other", uses="unrelated")
    )
    yield built
    built.store.close()


def test_rotation_stays_open_until_every_consumer_rolled_out(world: World) -> None:
    first = world.current()
    world.rotate("r1")
    token = world.body["status"]["rotation"]["token"]
    assert world.current() == token != first  # finishSecret moved AWSCURRENT...
    assert world.projected_version() == token  # ...and the new value is projected
    row = world.row(token)
    assert (row.step, row.status) == (AWAIT, IN_PROGRESS)  # persisted, not in memory
    rotation = world.body["status"]["rotation"]
    assert (rotation["step"], rotation["state"]) == ("awaitRollout", "InProgress")
    assert {c["name"]: c["state"] for c in rotation["consumers"]} == {
        "web": "NotRestarted",
        "worker": "NotRestarted",
    }
    assert Reason.AWAITING_ROLLOUT in world.events.reasons()
    assert Reason.ROTATION_SUCCEEDED not in world.events.reasons()
    assert world.last.due is not None and world.last.due <= world.clock.now + timedelta(seconds=5)

    world.flush_restarts()  # the debounce window closes: one restart each
    assert sorted(name for name, _ in world.workloads.patches) == ["web", "worker"]
    world.tick(5)
    assert {c["state"] for c in world.body["status"]["rotation"]["consumers"]} == {"Rolling"}
    world.workloads.roll_out("web")
    world.tick(5)
    assert world.row(token).status == IN_PROGRESS  # worker still rolls
    world.workloads.roll_out("worker")
    world.tick(5)
    row = world.row(token)
    assert row.status == SUCCEEDED and world.rotations.active(world.arn()) is None
    assert world.body["status"]["rotation"]["state"] == "Succeeded"
    reasons = world.events.reasons()
    assert reasons.index(Reason.CREDENTIALS_RETIRED) < reasons.index(Reason.ROTATION_SUCCEEDED)
    assert world.current() == token


def test_a_rollout_that_does_not_finish_in_time_holds_and_rolls_back(world: World) -> None:
    first = world.current()
    world.rotate("r1")
    token = world.current()
    world.flush_restarts()
    world.workloads.roll_out("worker")  # web's new pods never become available
    world.tick(30)
    assert world.row(token).status == IN_PROGRESS
    world.tick(31)  # past rolloutTimeoutSeconds (60) after finishSecret
    row = world.row(token)
    assert row.status == HELD and world.rotations.active(world.arn()) is None
    assert world.current() == first  # AWSCURRENT is back on the version it came from
    versions = {v.version_id: v.stages for v in world.secrets.versions(world.record())}
    assert "AWSPREVIOUS" in versions[token]
    assert world.projected_version() == first  # re-projected...
    world.flush_restarts()  # ...and the workloads restarted for the old version
    assert json.loads(
        world.workloads.get("web")["spec"]["template"]["metadata"]["annotations"][MARKER]
    ) == {"db": first}
    held = [m for _, r, m, _ in world.events.emitted if r is Reason.ROTATION_HELD]
    assert len(held) == 1 and "Deployment/web (Rolling)" in held[0]
    condition = next(c for c in world.body["status"]["conditions"] if c["type"] == "RotationFailed")
    assert (condition["status"], condition["reason"]) == ("True", "RotationHeld")
    assert world.body["status"]["rotation"]["state"] == "Held"

    # the next attempt waits: a rate schedule that is due does not start one
    world.body["spec"]["rotation"]["schedule"] = "rate(1 minute)"
    world.tick(120)
    assert world.rotations.active(world.arn()) is None and world.current() == first
    condition = next(c for c in world.body["status"]["conditions"] if c["type"] == "RotationFailed")
    assert condition["reason"] == "RotationHeld"  # still says why
    world.tick(3600)  # the hold is over: the schedule rotates again
    assert world.current() not in (first, token)


def test_an_operator_restart_resumes_the_wait_from_the_store(world: World) -> None:
    world.rotate("r1")
    token = world.current()
    world.body["status"].pop("rotation")  # nothing remembered but the store's row
    world.flush_restarts()
    world.workloads.roll_out("web")
    world.workloads.roll_out("worker")
    world.tick(1)
    assert world.row(token).status == SUCCEEDED


def test_a_successor_restarts_the_consumers_whose_restart_died_with_the_leader(
    world: World,
) -> None:
    world.rotate("r1")
    token = world.current()
    # The leader is killed inside the debounce window: the restarts it had pending lived in
    # its memory. The replica that takes over the Lease has its own coordinator.
    world.rollouts = world.new_rollouts()
    assert world.rollouts.pending() == {}
    world.tick(5)  # the successor's awaitRollout tick asks for them again
    world.flush_restarts()
    assert sorted(name for name, _ in world.workloads.patches) == ["web", "worker"]
    world.tick(5)  # Rolling: not asked again
    world.flush_restarts()
    assert len(world.workloads.patches) == 2
    world.workloads.roll_out("web")
    world.workloads.roll_out("worker")
    world.tick(5)
    done = world.rotations.get(world.arn(), token)
    assert done is not None
    assert done.status == SUCCEEDED
    assert world.current() == token


def test_without_consumers_the_rotation_closes_at_finish_secret() -> None:
    world = World(deployment("other", uses="unrelated"))
    try:
        world.rotate("r1")
        row = world.row(world.current())
        assert (row.step, row.status) == ("finishSecret", SUCCEEDED)
        assert Reason.AWAITING_ROLLOUT not in world.events.reasons()
    finally:
        world.store.close()


def test_rollout_state_reads_the_controllers_status() -> None:
    d = deployment("web")
    assert rollout_state(d, "db", "v2") is RolloutState.NOT_RESTARTED
    d["spec"]["template"]["metadata"]["annotations"] = {MARKER: json.dumps({"db": "v2"})}
    d["metadata"]["generation"] = 2
    assert rollout_state(d, "db", "v2") is RolloutState.ROLLING  # not observed yet
    d["status"]["observedGeneration"] = 2
    assert rollout_state(d, "db", "v2") is RolloutState.DONE
    d["status"]["replicas"] = 3  # an old pod is still there
    assert rollout_state(d, "db", "v2") is RolloutState.ROLLING
    s = deployment("db-0")
    s.update(kind="StatefulSet")
    s["spec"]["template"]["metadata"]["annotations"] = {MARKER: json.dumps({"db": "v2"})}
    s["status"].update(readyReplicas=2, currentRevision="a", updateRevision="b")
    assert rollout_state(s, "db", "v2") is RolloutState.ROLLING
    s["status"]["currentRevision"] = "b"
    assert rollout_state(s, "db", "v2") is RolloutState.DONE


def test_rollout_state_waits_for_every_pod_of_an_older_template() -> None:
    d = deployment("web")
    new = {MARKER: json.dumps({"db": "v2", "cache": "c1"})}
    d["spec"]["template"]["metadata"]["annotations"] = new
    running = {"metadata": {"annotations": new}, "status": {"phase": "Running"}}
    terminating = {
        "metadata": {
            "annotations": {MARKER: json.dumps({"db": "v1", "cache": "c1"})},
            "deletionTimestamp": "2026-12-01T12:00:00Z",
        },
        "status": {"phase": "Running"},
    }
    never_restarted = {"metadata": {"annotations": {}}, "status": {"phase": "Running"}}
    evicted = {**never_restarted, "status": {"phase": "Failed"}}
    assert rollout_state(d, "db", "v2", [running, running]) is RolloutState.DONE
    assert rollout_state(d, "db", "v2", [running, evicted]) is RolloutState.DONE
    # the status says done, but a pod of the previous template still terminates
    assert rollout_state(d, "db", "v2", [running, terminating]) is RolloutState.ROLLING
    assert rollout_state(d, "db", "v2", [running, never_restarted]) is RolloutState.ROLLING
    # the terminating pod's template named the same version of the Secret asked about
    assert rollout_state(d, "cache", "c1", [running, terminating]) is RolloutState.DONE
    d["status"]["replicas"] = 3  # the status first: no pod makes it done
    assert rollout_state(d, "db", "v2", [running]) is RolloutState.ROLLING


def test_a_workloads_selector_becomes_the_label_selector_of_its_pods() -> None:
    assert label_selector({"matchLabels": {"app": "web", "tier": "db"}}) == "app=web,tier=db"
    expressions = [
        {"key": "env", "operator": "In", "values": ["prod", "stage"]},
        {"key": "canary", "operator": "NotIn", "values": ["yes"]},
        {"key": "team", "operator": "Exists"},
        {"key": "legacy", "operator": "DoesNotExist"},
    ]
    assert label_selector({"matchLabels": {"app": "web"}, "matchExpressions": expressions}) == (
        "app=web,env in (prod,stage),canary notin (yes),team,!legacy"
    )


def test_the_previous_login_is_kept_while_an_old_pod_still_terminates(world: World) -> None:
    world.rotate("r1")
    token = world.body["status"]["rotation"]["token"]
    world.flush_restarts()
    world.tick(1)
    assert world.workloads.pod_lists == []  # no pods listed while the status says rolling
    # the Deployments report the rollout finished, but web's old pods drain after SIGTERM
    world.workloads.roll_out("web", old_pods_terminating=True)
    world.workloads.roll_out("worker")
    world.tick(3)
    assert world.workloads.pod_lists == [
        {"matchLabels": {"app": "web"}},
        {"matchLabels": {"app": "worker"}},
    ]
    assert world.row(token).status == IN_PROGRESS
    assert Reason.CREDENTIALS_RETIRED not in world.events.reasons()
    states = {c["name"]: c["state"] for c in world.body["status"]["rotation"]["consumers"]}
    assert states == {"web": "Rolling", "worker": "Done"}
    world.workloads.old_pods_gone("web")
    world.tick(3)
    assert world.row(token).status == SUCCEEDED
    assert Reason.CREDENTIALS_RETIRED in world.events.reasons()


def test_pods_that_cannot_be_listed_keep_the_rotation_waiting(world: World) -> None:
    def refused(namespace: str, selector: Any) -> list[dict[str, Any]]:
        raise ServerError("cannot list pods in team-a: HTTP 403", retry_delay=5.0)

    world.rotate("r1")
    token = world.body["status"]["rotation"]["token"]
    world.flush_restarts()
    for name in ("web", "worker"):
        world.workloads.roll_out(name)
    world.workloads.pods = refused  # type: ignore[method-assign]
    world.tick(3)
    assert world.row(token).status == IN_PROGRESS
    assert Reason.CREDENTIALS_RETIRED not in world.events.reasons()
    del world.workloads.pods  # the listing works again
    world.tick(3)
    assert world.row(token).status == SUCCEEDED


# -- rollback (kustos.io/rollback, `kustos rollback`) ------------------------------------


def _finish_rotation(world: World) -> tuple[str, str]:
    first = world.current()
    world.rotate("r1")
    world.flush_restarts()
    for name in ("web", "worker"):
        world.workloads.roll_out(name)
    world.tick(1)
    assert world.rotations.active(world.arn()) is None
    return first, world.current()


def _request_rollback(world: World, value: str) -> None:
    world.body["metadata"]["annotations"]["kustos.io/rollback"] = value
    world.body = world.apply(world.body, frozenset({Trigger.CHANGED}))


def test_rollback_moves_awscurrent_back_reprojects_and_restarts(world: World) -> None:
    first, second = _finish_rotation(world)
    _request_rollback(world, "previous#1")
    assert world.current() == first and world.projected_version() == first
    answer = world.body["status"]["rollback"]
    assert answer == {
        **answer,
        "request": "previous#1",
        "state": "Succeeded",
        "fromVersion": second,
        "toVersion": first,
    }
    assert Reason.ROLLED_BACK in world.events.reasons()
    world.flush_restarts()
    assert json.loads(
        world.workloads.get("web")["spec"]["template"]["metadata"]["annotations"][MARKER]
    ) == {"db": first}
    # the same request is answered once; a named version is a new request
    world.body = world.apply(world.body, frozenset({Trigger.CHANGED}))
    assert world.current() == first
    _request_rollback(world, f"{second}#2")
    assert world.current() == second


def test_rollback_refuses_while_a_rotation_is_in_progress_and_unknown_versions(
    world: World,
) -> None:
    world.rotate("r1")  # awaiting its consumers
    token = world.current()
    _request_rollback(world, "previous#1")
    assert world.current() == token
    assert world.body["status"]["rollback"]["state"] == "Failed"
    assert "in progress" in world.body["status"]["rollback"]["message"]
    assert Reason.ROLLBACK_FAILED in world.events.reasons()
    world.flush_restarts()
    for name in ("web", "worker"):
        world.workloads.roll_out(name)
    world.tick(1)  # the rotation ends
    _request_rollback(world, "no-such-version#2")
    assert "no version 'no-such-version'" in world.body["status"]["rollback"]["message"]
    assert world.current() == token


def test_describe_secret_shows_await_rollout_and_a_hold(world: World) -> None:
    from kustos.services.api.call import Deps
    from kustos.services.api.read import _describe

    def described() -> dict[str, Any]:
        deps = Deps(
            world.secrets,
            stand_in(ManagedObjectGateway, None),
            stand_in(SecretGateway, None),
            "test",
            stand_in(DeletionService, None),
            rotations=world.rotations,
        )
        return _describe(deps, world.record(), versions_key="VersionIdsToStages")

    assert "KustosRotation" not in described()
    world.rotate("r1")
    token = world.current()
    state = described()["KustosRotation"]
    assert state == {**state, "Token": token, "Step": "awaitRollout", "State": "InProgress"}
    assert described()["VersionIdsToStages"][token] == ["AWSCURRENT"]
    world.tick(61)  # nobody rolled out: held
    state = described()["KustosRotation"]
    assert state["State"] == "Held" and "did not roll out" in state["Reason"]
    assert "AWSPREVIOUS" in described()["VersionIdsToStages"][token]


def test_fifty_secrets_of_one_deployment_rotated_at_once_restart_it_once() -> None:
    from tests.unit.fakes import managed

    names = [f"s{i}" for i in range(50)]
    web = deployment("web")
    web["spec"]["template"]["spec"]["containers"][0]["envFrom"] = [
        {"secretRef": {"name": n}} for n in names
    ]
    world = World(web)
    try:
        bodies = {}
        for n in names:
            spec = {
                "name": f"prod/{n}",
                "generate": {"passwordLength": 12},
                "rotation": {"generated": {}, "rolloutTimeoutSeconds": 60},
            }
            bodies[n] = world.apply(managed(n, spec), frozenset({Trigger.CHANGED}))
        for n in names:  # all rotated within one debounce window
            bodies[n]["metadata"]["annotations"]["kustos.io/rotate-now"] = "go"
            bodies[n] = world.apply(bodies[n], frozenset({Trigger.ROTATE_NOW}))
        assert len(world.rotations.list_active()) == 50  # all awaiting the one rollout
        world.flush_restarts()
        assert len(world.workloads.patches) == 1  # exactly one restart
        marker = json.loads(world.workloads.patches[0][1][MARKER])
        assert sorted(marker) == sorted(names)
        world.workloads.roll_out("web")
        world.clock.now += timedelta(seconds=3)
        for n in names:
            bodies[n] = world.apply(bodies[n], frozenset({Trigger.ROTATION_DUE}))
        assert world.rotations.list_active() == []
        assert all(b["status"]["rotation"]["state"] == "Succeeded" for b in bodies.values())
        assert len(world.workloads.patches) == 1
    finally:
        world.store.close()
