"""In-memory fakes for the controller's unit tier: the cluster's Secrets, ManagedSecret
objects and Events as dicts, on an in-memory SQLite store. The services under test are the
real ones; only the Kubernetes API is faked (its rules that matter here: resourceVersion,
uid, 404 as None)."""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tests.unit.fakes import stand_in

from kustos.crypto import Keyring
from kustos.kube.events import ObjectRef
from kustos.kube.managed_objects import ManagedObjectGateway
from kustos.kube.secrets import SecretGateway
from kustos.models.reasons import EventType, Reason
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
_ids = itertools.count(1)


class FakeSecrets:
    """Native Secrets by (namespace, name), counting reads and writes."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.gets = 0
        self.writes = 0

    def get(self, ns: str, name: str) -> dict[str, Any] | None:
        self.gets += 1
        obj = self.objects.get((ns, name))
        return copy.deepcopy(obj) if obj else None

    def create(self, ns: str, body: dict[str, Any]) -> dict[str, Any]:
        self.writes += 1
        body = copy.deepcopy(body)
        body["metadata"].update(
            resourceVersion=str(next(_ids)), uid=body["metadata"].get("uid") or f"uid-{next(_ids)}"
        )
        self.objects[(ns, body["metadata"]["name"])] = body
        return copy.deepcopy(body)

    def replace(self, ns: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.create(ns, body)

    def delete(self, ns: str, name: str, uid: str | None = None) -> bool:
        self.writes += 1
        return self.objects.pop((ns, name), None) is not None


class FakeObjects:
    """ManagedSecret objects (the parts DeletionService uses)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}

    def get(self, ns: str, name: str) -> dict[str, Any] | None:
        obj = self.objects.get((ns, name))
        return copy.deepcopy(obj) if obj else None

    def delete(self, ns: str, name: str, uid: str | None = None) -> bool:
        return self.objects.pop((ns, name), None) is not None

    def create(
        self, ns: str, name: str, spec: dict[str, Any], annotations: dict[str, str]
    ) -> dict[str, Any]:
        body = managed(name, spec, namespace=ns)
        body["metadata"]["annotations"] = dict(annotations)
        self.objects[(ns, name)] = body
        return copy.deepcopy(body)


@dataclass
class FakeEvents:
    emitted: list[tuple[str, Reason, str]] = field(default_factory=list)

    def emit(
        self, ref: ObjectRef, reason: Reason, message: str, type: EventType = EventType.NORMAL
    ) -> None:
        self.emitted.append((ref.name, reason, message))

    def reasons(self) -> list[Reason]:
        return [reason for _, reason, _ in self.emitted]


def managed(
    name: str,
    spec: dict[str, Any],
    *,
    namespace: str = "team-a",
    generation: int = 1,
    uid: str | None = None,
    status: dict[str, Any] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A ManagedSecret body as the watch delivers it."""
    return {
        "apiVersion": "kustos.io/v1alpha1",
        "kind": "ManagedSecret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": uid or f"uid-{name}",
            "generation": generation,
            "annotations": dict(annotations or {}),
        },
        "spec": copy.deepcopy(spec),
        "status": copy.deepcopy(status or {}),
    }


@dataclass
class World:
    store: SqlStore
    secrets: SecretService
    kube: FakeSecrets
    objects: FakeObjects
    events: FakeEvents
    controller: ManagedSecretController

    def record(self, name: str, namespace: str = "team-a") -> Any:
        return self.store.get_secret(namespace, name)


def build_world() -> World:
    store = SqlStore("sqlite://")
    secrets = SecretService(store, lambda: KEYRING, "test", clock=lambda: datetime.now(UTC))
    kube, objects, events = FakeSecrets(), FakeObjects(), FakeEvents()
    gateway = stand_in(SecretGateway, kube)
    managed_service = ManagedSecretService(
        secrets, SourceService(gateway), ProjectionService(gateway), events
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
    return World(store, secrets, kube, objects, events, controller)
