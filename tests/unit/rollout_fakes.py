"""Fakes for the rotation-with-consumers tests: Deployments whose rollouts the test drives,
and a World of the real controller, rotation, rollback and restart services on in-memory
fakes with a fake clock (see tests/unit/test_rotation_await_rollout.py)."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.unit.controller_fakes import KEYRING
from tests.unit.fakes import FakeEvents, FakeObjects, FakeSecrets, managed, stand_in

from kustos.kube.managed_objects import ManagedObjectGateway
from kustos.kube.secrets import SecretGateway
from kustos.models.records import SecretRecord
from kustos.rotation.engine import RotationEngine
from kustos.services.consumers.rollouts import RolloutCoordinator, RolloutLimits
from kustos.services.controller.controller import ManagedSecretController, Outcome, Trigger
from kustos.services.controller.projection import Projection, ProjectionService
from kustos.services.controller.reconcile import ManagedSecretService
from kustos.services.controller.sources import SourceService
from kustos.services.core.deletion import DeletionService
from kustos.services.core.secrets import SecretService
from kustos.services.rotation.service import ANNOTATION_ROTATE_NOW, RotationService
from kustos.services.rotation.support import RotationLimits
from kustos.store import SqlStore
from kustos.store.rotations import RotationRecord, RotationStore

SPEC = {
    "name": "prod/db",
    "generate": {"passwordLength": 12, "excludePunctuation": True},
    "rotation": {"generated": {}, "rolloutTimeoutSeconds": 60},
}


#: `list` is a method's name in FakeWorkloads.
Objs = list[dict[str, Any]]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def deployment(name: str, uses: str = "db", replicas: int = 2) -> dict[str, Any]:
    return {
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "team-a",
            "generation": 1,
            "annotations": {"kustos.io/restart-on-change": "true"},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [{"name": "app", "envFrom": [{"secretRef": {"name": uses}}]}]
                },
            },
        },
        "status": {
            "observedGeneration": 1,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "availableReplicas": replicas,
        },
    }


class FakeWorkloads:
    """Deployments and their pods; a pod-template patch bumps the generation and starts a
    rollout (one new pod beside the old ones) that the test finishes (`roll_out`: the old
    pods go, or stay terminating) or leaves stuck, as the Deployment controller would."""

    def __init__(self, *items: dict[str, Any]) -> None:
        self.items = list(items)
        self.patches: list[tuple[str, dict[str, str]]] = []
        #: Every pod, of every Deployment (their labels say whose).
        self.pod_items: list[dict[str, Any]] = []
        #: The label selectors the pods were listed with.
        self.pod_lists: list[dict[str, Any]] = []
        for item in self.items:
            self.pod_items += [self._pod(item) for _ in range(item["spec"]["replicas"])]

    def list(self, namespace: str) -> list[dict[str, Any]]:
        return copy.deepcopy(self.items)

    def pods(self, namespace: str, selector: Mapping[str, Any]) -> Objs:
        self.pod_lists.append(dict(selector))
        labels = selector.get("matchLabels") or {}
        return copy.deepcopy(
            [
                p
                for p in self.pod_items
                if all(p["metadata"]["labels"].get(k) == v for k, v in labels.items())
            ]
        )

    def _pod(self, item: dict[str, Any]) -> dict[str, Any]:
        template = item["spec"]["template"]["metadata"]
        return {
            "metadata": {
                "name": f"{item['metadata']['name']}-{len(self.pod_items)}-{uuid.uuid4().hex[:5]}",
                "namespace": item["metadata"]["namespace"],
                "labels": dict(template.get("labels") or {}),
                "annotations": dict(template.get("annotations") or {}),
            },
            "status": {"phase": "Running"},
        }

    def pods_of(self, name: str) -> Objs:
        return [p for p in self.pod_items if p["metadata"]["labels"].get("app") == name]

    def annotate_pod_template(
        self, namespace: str, kind: str, name: str, annotations: dict[str, str]
    ) -> None:
        self.patches.append((name, annotations))
        item = self.get(name)
        item["spec"]["template"]["metadata"].setdefault("annotations", {}).update(annotations)
        item["metadata"]["generation"] += 1
        self.pod_items.append(self._pod(item))
        item["status"].update(
            observedGeneration=item["metadata"]["generation"],
            updatedReplicas=1,
            availableReplicas=item["spec"]["replicas"],
            replicas=item["spec"]["replicas"] + 1,
        )

    def get(self, name: str) -> dict[str, Any]:
        return next(i for i in self.items if i["metadata"]["name"] == name)

    def roll_out(self, name: str, *, old_pods_terminating: bool = False) -> None:
        """The Deployment's status says done and it runs `spec.replicas` pods of its current
        template; the older pods are gone, or (`old_pods_terminating`) still there with a
        deletionTimestamp, as pods that drain after SIGTERM are."""
        item = self.get(name)
        n = item["spec"]["replicas"]
        item["status"].update(updatedReplicas=n, availableReplicas=n, replicas=n)
        current = item["spec"]["template"]["metadata"].get("annotations") or {}
        old = [p for p in self.pods_of(name) if p["metadata"]["annotations"] != current]
        self.pod_items = [p for p in self.pod_items if p not in old]
        new = [p for p in self.pods_of(name) if "deletionTimestamp" not in p["metadata"]]
        self.pod_items += [self._pod(item) for _ in range(n - len(new))]
        if old_pods_terminating:
            for pod in old:
                pod["metadata"]["deletionTimestamp"] = "2026-12-01T12:00:00Z"
            self.pod_items += old

    def old_pods_gone(self, name: str) -> None:
        """The terminating pods of `name` ended."""
        self.pod_items = [
            p
            for p in self.pod_items
            if not (p in self.pods_of(name) and "deletionTimestamp" in p["metadata"])
        ]


class World:
    def __init__(
        self, *workloads: dict[str, Any], spec: dict[str, Any] | None = None, gateway: Any = None
    ) -> None:
        """`gateway`: the cluster's Secrets (default: a FakeSecrets)."""
        self.clock = Clock()
        self.mono = [0.0]
        self.store = SqlStore("sqlite://")
        self.secrets = SecretService(self.store, lambda: KEYRING, "test", clock=self.clock)
        self.kube, self.events = gateway or FakeSecrets(), FakeEvents()
        self.workloads = FakeWorkloads(*workloads)
        self.rollouts = self.new_rollouts()

        def changed(p: Projection) -> None:
            self.rollouts.secret_changed(
                p.owner.namespace, p.target_name, p.version_id, p.restart_on_change, owner=p.owner
            )

        kube = stand_in(SecretGateway, self.kube)
        managed_service = ManagedSecretService(
            self.secrets,
            SourceService(kube),
            ProjectionService(kube, on_change=changed),
            self.events,
        )
        self.rotations = RotationStore(self.store.engine)
        rotation = RotationService(
            self.secrets,
            self.rotations,
            kube,
            self.events,
            RotationEngine(self.rotations, clock=self.clock),
            RotationLimits(4, 2),
            workloads=self.workloads,
            hold_seconds=3600,
            # As the factory wires it; through `self` so a test can swap the coordinator.
            restart=lambda *args, **kw: self.rollouts.secret_changed(*args, **kw),
        )
        deletion = DeletionService(
            self.secrets,
            stand_in(ManagedObjectGateway, FakeObjects()),
            kube,
            self.events,
        )
        self.controller = ManagedSecretController(
            managed_service, lambda: rotation, lambda: deletion
        )
        self.body = self.apply(managed("db", spec or SPEC), frozenset({Trigger.CHANGED}))

    def new_rollouts(self) -> RolloutCoordinator:
        """A coordinator with nothing pending (a new replica's)."""
        return RolloutCoordinator(
            self.workloads, RolloutLimits(debounce_seconds=10), clock=lambda: self.mono[0]
        )

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

    def record(self) -> SecretRecord:
        found = self.store.get_secret("team-a", "prod/db")
        assert found is not None
        return found

    def arn(self) -> str:
        return str(self.record().arn)

    def current(self) -> str:
        current = self.secrets.current(self.record())
        assert current is not None
        return str(current.version_id)

    def row(self, token: str) -> RotationRecord:
        """The store's rotation row for `token` (there must be one)."""
        found = self.rotations.get(self.arn(), token)
        assert found is not None
        return found

    def projected_version(self) -> str:
        return str(
            self.kube.objects[("team-a", "db")]["metadata"]["labels"]["kustos.io/version-id"]
        )
