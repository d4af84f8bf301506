"""The controller's world for the unit tier: the real services on an in-memory SQLite store,
with the Kubernetes API faked by `tests.unit.fakes` (the one set of fakes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tests.unit.fakes import FakeEvents, FakeObjects, FakeSecrets, stand_in

from kustos.crypto import Keyring
from kustos.kube.managed_objects import ManagedObjectGateway
from kustos.kube.secrets import SecretGateway
from kustos.rotation.engine import RotationEngine
from kustos.services.controller.controller import ManagedSecretController
from kustos.services.controller.projection import ProjectionService
from kustos.services.controller.reconcile import ManagedSecretService
from kustos.services.controller.sources import SourceService
from kustos.services.core.deletion import DeletionService
from kustos.services.core.secrets import SecretService
from kustos.services.rotation.service import RotationService
from kustos.services.rotation.support import RotationLimits
from kustos.store import SqlStore
from kustos.store.rotations import RotationStore

KEYRING = Keyring.generate()


@dataclass
class World:
    store: SqlStore
    secrets: SecretService
    kube: FakeSecrets
    objects: FakeObjects
    events: FakeEvents
    controller: ManagedSecretController
    #: Namespaces where the watch of projected Secrets is refused (add one to test it).
    refused: set[str]

    def record(self, name: str, namespace: str = "team-a") -> Any:
        return self.store.get_secret(namespace, name)


def build_world() -> World:
    store = SqlStore("sqlite://")
    secrets = SecretService(store, lambda: KEYRING, "test", clock=lambda: datetime.now(UTC))
    kube, objects, events = FakeSecrets(), FakeObjects(), FakeEvents()
    gateway = stand_in(SecretGateway, kube)
    refused: set[str] = set()  # namespaces where the watch of projected Secrets is refused
    managed_service = ManagedSecretService(
        secrets,
        SourceService(gateway),
        ProjectionService(gateway),
        events,
        unwatched=refused.__contains__,
    )
    rotations = RotationStore(store.engine)
    rotation = RotationService(
        secrets,
        rotations,
        gateway,
        events,
        RotationEngine(rotations, clock=secrets.clock),
        RotationLimits(4, 2),
    )
    deletion = DeletionService(secrets, stand_in(ManagedObjectGateway, objects), gateway, events)
    controller = ManagedSecretController(managed_service, lambda: rotation, lambda: deletion)
    return World(store, secrets, kube, objects, events, controller, refused)
