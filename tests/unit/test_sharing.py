"""Sharing a projected Secret into other namespaces: a copy only where the owner lists (or
selects) the namespace AND the namespace consents by label; withdrawing either consent, or
deleting the ManagedSecret, removes the copy; a foreign Secret is never touched. The real
controller and services on in-memory fakes."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.unit.controller_fakes import KEYRING
from tests.unit.fakes import FakeEvents, FakeObjects, FakeSecrets, managed, stand_in

from kustos.kube.managed_objects import ManagedObjectGateway
from kustos.kube.secrets import SecretGateway
from kustos.models.reasons import Reason
from kustos.models.sensitive import SecretValue
from kustos.rotation.engine import RotationEngine
from kustos.services.consumers.sharing import ANNOTATION_SHARED_FROM, SharingService
from kustos.services.controller.controller import ManagedSecretController, Trigger
from kustos.services.controller.projection import ProjectionService
from kustos.services.controller.reconcile import ManagedSecretService
from kustos.services.controller.sources import SourceService
from kustos.services.core.deletion import DeletionService
from kustos.services.core.secrets import SecretService
from kustos.services.rotation.service import RotationService
from kustos.services.rotation.support import RotationLimits
from kustos.store import SqlStore
from kustos.store.rotations import RotationStore

CONSENT = "shares.kustos.io/team-a"
C, R = frozenset({Trigger.CHANGED}), frozenset({Trigger.RESYNC})


class FakeNamespaces:
    def __init__(self) -> None:
        self.labels: dict[str, dict[str, str]] = {}

    def get(self, name: str) -> dict[str, Any] | None:
        if name not in self.labels:
            return None
        return self._body(name)

    def list(self, selector: str) -> list[dict[str, Any]]:
        want = dict(part.split("=", 1) for part in selector.split(","))
        return [
            self._body(n)
            for n, labels in sorted(self.labels.items())
            if all(labels.get(k) == v for k, v in want.items())
        ]

    def _body(self, name: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "labels": dict(self.labels[name])}}


class World:
    def __init__(self) -> None:
        self.store = SqlStore("sqlite://")
        self.secrets = SecretService(
            self.store, lambda: KEYRING, "test", clock=lambda: datetime.now(UTC)
        )
        self.kube, self.events, self.ns = FakeSecrets(), FakeEvents(), FakeNamespaces()
        kube = stand_in(SecretGateway, self.kube)
        managed_service = ManagedSecretService(
            self.secrets,
            SourceService(kube),
            ProjectionService(kube),
            self.events,
            sharing=SharingService(self.kube, self.ns),
        )
        rotations = RotationStore(self.store.engine)
        rotation = RotationService(
            self.secrets,
            rotations,
            kube,
            self.events,
            RotationEngine(rotations),
            RotationLimits(4, 2),
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
        for name in ("team-a", "team-b", "team-c", "team-d"):
            self.ns.labels[name] = {}
        self.body: dict[str, Any] = {}

    def apply(self, spec: dict[str, Any] | None = None, triggers: frozenset[Trigger] = C) -> None:
        body = self.body or managed("db", spec or {})
        if spec is not None:
            body = {**body, "spec": copy.deepcopy(spec)}
        outcome = self.controller.handle(body, triggers)
        assert outcome.error is None, outcome.error
        status = {**body["status"], **outcome.patch}
        self.body = {**body, "status": {k: v for k, v in status.items() if v is not None}}

    def copy_in(self, namespace: str) -> dict[str, Any] | None:
        return self.kube.objects.get((namespace, "db"))


SPEC = {
    "name": "prod/db",
    "generate": {"passwordLength": 16},
    "target": {"shareWith": {"namespaces": ["team-b", "team-c"]}},
}


@pytest.fixture
def world() -> Iterator[World]:
    built = World()
    yield built
    built.store.close()


def test_a_copy_only_where_both_sides_consent_and_it_goes_when_either_withdraws(
    world: World,
) -> None:
    world.ns.labels["team-b"] = {CONSENT: "accept"}
    world.ns.labels["team-d"] = {CONSENT: "accept"}  # consents, but not listed by the owner
    world.apply(SPEC)
    own = world.kube.objects[("team-a", "db")]
    shared = world.copy_in("team-b")
    assert shared is not None and shared["data"] == own["data"]
    assert "ownerReferences" not in shared["metadata"]
    assert shared["metadata"]["annotations"][ANNOTATION_SHARED_FROM] == "team-a/db/uid-db"
    assert world.copy_in("team-c") is None and world.copy_in("team-d") is None
    assert world.body["status"]["sharing"] == {
        "namespaces": ["team-b"],
        "awaitingConsent": ["team-c"],
        "conflicts": [],
    }
    assert Reason.SHARED in world.events.reasons()

    world.ns.labels["team-c"] = {CONSENT: "accept"}  # the target side consents later
    world.apply(triggers=R)
    assert world.copy_in("team-c") is not None

    world.ns.labels["team-b"] = {}  # the target withdraws its consent
    world.apply(triggers=R)
    assert world.copy_in("team-b") is None and world.copy_in("team-c") is not None
    assert world.body["status"]["sharing"]["awaitingConsent"] == ["team-b"]
    assert Reason.SHARE_REMOVED in world.events.reasons()

    no_share = {k: v for k, v in SPEC.items() if k != "target"}  # the owner withdraws
    world.apply(no_share)
    assert world.copy_in("team-c") is None
    assert "sharing" not in world.body["status"]


def test_copies_follow_new_versions_and_go_with_the_managed_secret(world: World) -> None:
    spec = {
        "name": "prod/db",
        "generate": {"passwordLength": 16},
        "target": {"shareWith": {"namespaceSelector": {"matchLabels": {"tier": "app"}}}},
    }
    world.ns.labels["team-b"] = {CONSENT: "true", "tier": "app"}
    world.ns.labels["team-c"] = {"tier": "app"}
    world.apply(spec)
    assert world.copy_in("team-b") is not None and world.copy_in("team-c") is None
    record = world.store.get_secret("team-a", "prod/db")
    assert record is not None
    world.secrets.add_version(record, SecretValue.from_mapping({"password": "next"}))
    world.apply(triggers=frozenset({Trigger.VALUE_CHANGED}))
    copied = world.copy_in("team-b")
    assert copied is not None
    assert copied["data"] == world.kube.objects[("team-a", "db")]["data"]
    world.controller.handle(world.body, frozenset({Trigger.DELETED}))
    assert world.copy_in("team-b") is None


def test_a_foreign_secret_in_the_target_namespace_is_left_alone(world: World) -> None:
    world.ns.labels["team-b"] = {CONSENT: "accept"}
    world.kube.create("team-b", {"metadata": {"name": "db"}, "data": {"mine": "eA=="}})
    world.apply(SPEC)
    foreign = world.copy_in("team-b")
    assert foreign is not None
    assert foreign["data"] == {"mine": "eA=="}
    assert world.body["status"]["sharing"]["conflicts"] == ["team-b"]
    assert Reason.TARGET_CONFLICT in world.events.reasons()
    world.apply({k: v for k, v in SPEC.items() if k != "target"})
    foreign = world.copy_in("team-b")
    assert foreign is not None
    assert foreign["data"] == {"mine": "eA=="}  # never deleted either
