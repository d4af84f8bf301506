"""awaitRollout, the step after finishSecret: a rotation whose projected Secret has consuming
workloads stays open until they rolled out the new version, then closes; if they do not
within rolloutTimeoutSeconds it holds (AWSCURRENT back, the workloads restarted for the old
version, an Event and a condition) and the schedule waits. In-memory fakes, a fake clock;
the workloads' status is written by the test as the Deployment controller would."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tests.unit.controller_fakes import KEYRING, FakeEvents, FakeObjects, FakeSecrets, managed

from kustos.models.reasons import Reason
from kustos.rotation.engine import AWAIT, RotationEngine
from kustos.services.consumers.health import RolloutState, rollout_state
from kustos.services.consumers.rollouts import MARKER, RolloutCoordinator, RolloutLimits
from kustos.services.controller import ManagedSecretController, Outcome, Trigger
from kustos.services.deletion import DeletionService
from kustos.services.managed import ManagedSecretService
from kustos.services.projection import Projection, ProjectionService
from kustos.services.rotation import ANNOTATION_ROTATE_NOW, RotationService
from kustos.services.rotation_support import RotationLimits
from kustos.services.secrets import SecretService
from kustos.services.sources import SourceService
from kustos.store import SqlStore
from kustos.store.rotations import HELD, IN_PROGRESS, SUCCEEDED, RotationStore

SPEC = {"name": "prod/db", "generate": {"passwordLength": 12, "excludePunctuation": True},
        "rotation": {"generated": {}, "rolloutTimeoutSeconds": 60}}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def deployment(name: str, uses: str = "db", replicas: int = 2) -> dict[str, Any]:
    return {"kind": "Deployment",
            "metadata": {"name": name, "namespace": "team-a", "generation": 1,
                         "annotations": {"kustos.io/restart-on-change": "true"}},
            "spec": {"replicas": replicas, "template": {"metadata": {}, "spec": {"containers": [
                {"name": "app", "envFrom": [{"secretRef": {"name": uses}}]}]}}},
            "status": {"observedGeneration": 1, "replicas": replicas,
                       "updatedReplicas": replicas, "availableReplicas": replicas}}


class FakeWorkloads:
    """Deployments; a pod-template patch bumps the generation and starts a rollout that the
    test finishes (`roll_out`) or leaves stuck, as the Deployment controller would."""

    def __init__(self, *items: dict[str, Any]) -> None:
        self.items = list(items)
        self.patches: list[tuple[str, dict[str, str]]] = []

    def list(self, namespace: str) -> list[dict[str, Any]]:
        return copy.deepcopy(self.items)

    def annotate_pod_template(self, namespace: str, kind: str, name: str,
                              annotations: dict[str, str]) -> None:
        self.patches.append((name, annotations))
        item = self.get(name)
        item["spec"]["template"]["metadata"].setdefault("annotations", {}).update(annotations)
        item["metadata"]["generation"] += 1
        item["status"].update(observedGeneration=item["metadata"]["generation"],
                              updatedReplicas=1, availableReplicas=item["spec"]["replicas"],
                              replicas=item["spec"]["replicas"] + 1)

    def get(self, name: str) -> dict[str, Any]:
        return next(i for i in self.items if i["metadata"]["name"] == name)

    def roll_out(self, name: str) -> None:
        item = self.get(name)
        n = item["spec"]["replicas"]
        item["status"].update(updatedReplicas=n, availableReplicas=n, replicas=n)


class World:
    def __init__(self, *workloads: dict[str, Any]) -> None:
        self.clock = Clock()
        self.mono = [0.0]
        self.store = SqlStore("sqlite://")
        self.secrets = SecretService(self.store, lambda: KEYRING, "test", clock=self.clock)
        self.kube, self.events = FakeSecrets(), FakeEvents()
        self.workloads = FakeWorkloads(*workloads)
        self.rollouts = RolloutCoordinator(self.workloads, RolloutLimits(debounce_seconds=10),
                                           clock=lambda: self.mono[0])

        def changed(p: Projection) -> None:
            self.rollouts.secret_changed(p.owner.namespace, p.target_name, p.version_id,
                                         p.restart_on_change, owner=p.owner)

        managed_service = ManagedSecretService(
            self.secrets, SourceService(self.kube),  # type: ignore[arg-type]
            ProjectionService(self.kube, on_change=changed), self.events)  # type: ignore[arg-type]
        self.rotations = RotationStore(self.store.engine)
        rotation = RotationService(
            self.secrets, self.rotations, self.kube, self.events,  # type: ignore[arg-type]
            RotationEngine(self.rotations, clock=self.clock), RotationLimits(4, 2),
            workloads=self.workloads, hold_seconds=3600)
        deletion = DeletionService(self.secrets, FakeObjects(), self.kube,  # type: ignore[arg-type]
                                   self.events)
        self.controller = ManagedSecretController(managed_service, lambda: rotation,
                                                  lambda: deletion)
        self.body = self.apply(managed("db", SPEC), frozenset({Trigger.CHANGED}))

    def apply(self, body: dict[str, Any], triggers: frozenset[Trigger]) -> dict[str, Any]:
        outcome: Outcome = self.controller.handle(body, triggers)
        self.last = outcome
        status = {**body["status"], **outcome.patch}
        return {**body, "status": {k: v for k, v in status.items() if v is not None}}

    def rotate(self, value: str) -> None:
        self.body["metadata"]["annotations"][ANNOTATION_ROTATE_NOW] = value
        self.body = self.apply(self.body, frozenset({Trigger.ROTATE_NOW}))

    def tick(self, seconds: float = 0) -> None:
        self.clock.now += timedelta(seconds=seconds)
        self.body = self.apply(self.body, frozenset({Trigger.ROTATION_DUE}))

    def flush_restarts(self) -> None:
        self.mono[0] += 11
        self.rollouts.flush()

    def arn(self) -> str:
        return str(self.store.get_secret("team-a", "prod/db").arn)

    def current(self) -> str:
        return str(self.secrets.current(self.store.get_secret("team-a", "prod/db")).version_id)

    def projected_version(self) -> str:
        return str(self.kube.objects[("team-a", "db")]["metadata"]["labels"]["kustos.io/version-id"])


@pytest.fixture
def world() -> Iterator[World]:
    built = World(deployment("web"), deployment("worker", replicas=1),
                  deployment("other", uses="unrelated"))
    yield built
    built.store.close()


def test_rotation_stays_open_until_every_consumer_rolled_out(world: World) -> None:
    first = world.current()
    world.rotate("r1")
    token = world.body["status"]["rotation"]["token"]
    assert world.current() == token != first  # finishSecret moved AWSCURRENT...
    assert world.projected_version() == token  # ...and the new value is projected
    row = world.rotations.get(world.arn(), token)
    assert (row.step, row.status) == (AWAIT, IN_PROGRESS)  # persisted, not in memory
    rotation = world.body["status"]["rotation"]
    assert (rotation["step"], rotation["state"]) == ("awaitRollout", "InProgress")
    assert {c["name"]: c["state"] for c in rotation["consumers"]} == {
        "web": "NotRestarted", "worker": "NotRestarted"}
    assert Reason.AWAITING_ROLLOUT in world.events.reasons()
    assert Reason.ROTATION_SUCCEEDED not in world.events.reasons()
    assert world.last.due is not None and world.last.due <= world.clock.now + timedelta(seconds=5)

    world.flush_restarts()  # the debounce window closes: one restart each
    assert sorted(name for name, _ in world.workloads.patches) == ["web", "worker"]
    world.tick(5)
    assert {c["state"] for c in world.body["status"]["rotation"]["consumers"]} == {"Rolling"}
    world.workloads.roll_out("web")
    world.tick(5)
    assert world.rotations.get(world.arn(), token).status == IN_PROGRESS  # worker still rolls
    world.workloads.roll_out("worker")
    world.tick(5)
    row = world.rotations.get(world.arn(), token)
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
    assert world.rotations.get(world.arn(), token).status == IN_PROGRESS
    world.tick(31)  # past rolloutTimeoutSeconds (60) after finishSecret
    row = world.rotations.get(world.arn(), token)
    assert row.status == HELD and world.rotations.active(world.arn()) is None
    assert world.current() == first  # AWSCURRENT is back on the version it came from
    versions = {v.version_id: v.stages for v in
                world.secrets.versions(world.store.get_secret("team-a", "prod/db"))}
    assert "AWSPREVIOUS" in versions[token]
    assert world.projected_version() == first  # re-projected...
    world.flush_restarts()  # ...and the workloads restarted for the old version
    assert json.loads(world.workloads.get("web")["spec"]["template"]["metadata"]
                      ["annotations"][MARKER]) == {"db": first}
    held = [m for _, r, m in world.events.emitted if r is Reason.ROTATION_HELD]
    assert len(held) == 1 and "Deployment/web (Rolling)" in held[0]
    condition = next(c for c in world.body["status"]["conditions"]
                     if c["type"] == "RotationFailed")
    assert (condition["status"], condition["reason"]) == ("True", "RotationHeld")
    assert world.body["status"]["rotation"]["state"] == "Held"

    # the next attempt waits: a rate schedule that is due does not start one
    world.body["spec"]["rotation"]["schedule"] = "rate(1 minute)"
    world.tick(120)
    assert world.rotations.active(world.arn()) is None and world.current() == first
    condition = next(c for c in world.body["status"]["conditions"]
                     if c["type"] == "RotationFailed")
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
    assert world.rotations.get(world.arn(), token).status == SUCCEEDED


def test_without_consumers_the_rotation_closes_at_finish_secret() -> None:
    world = World(deployment("other", uses="unrelated"))
    try:
        world.rotate("r1")
        row = world.rotations.get(world.arn(), world.current())
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
