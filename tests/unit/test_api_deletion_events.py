"""DeleteSecret and RestoreSecret through the API post the same DeletionScheduled / Restored
Events as `kubectl delete ms` does: the API uses the one DeletionService it is given."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.unit.fakes import FakeEvents, FakeObjects, FakeSecrets, stand_in

from kustos.crypto import Keyring
from kustos.kube.managed_objects import ManagedObjectGateway
from kustos.kube.secrets import SecretGateway
from kustos.models.audit import AuditEvent
from kustos.models.identity import Principal
from kustos.services.api.call import CallMeta
from kustos.services.api.service import SecretsApi
from kustos.services.core.deletion import DeletionService
from kustos.services.core.secrets import SecretService
from kustos.store import SqlStore

KEYRING = Keyring.generate()
CALLER = Principal.service_account("team", "app")
META = CallMeta(request_id="r1", source_ip="10.0.0.1")


class AllowAll:
    def authorize(self, principal: Principal, action: str, record: Any, context: Any) -> None:
        return None


class Audit:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        self.events.append(event)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = SqlStore(f"sqlite:///{tmp_path / 'k.db'}")
    yield opened
    opened.close()


def _api(store: SqlStore) -> tuple[SecretsApi, FakeObjects, FakeEvents, DeletionService]:
    """The API over `store` with in-memory gateways, sharing one DeletionService."""
    secrets = SecretService(store, lambda: KEYRING, "c")
    objects, events = FakeObjects(), FakeEvents()
    gateway = stand_in(ManagedObjectGateway, objects)
    deletion = DeletionService(secrets, gateway, stand_in(SecretGateway, FakeSecrets()), events)
    sm = SecretsApi(
        secrets,
        gateway,
        stand_in(SecretGateway, FakeSecrets()),
        AllowAll(),
        Audit(),
        deletion,
    )
    return sm, objects, events, deletion


def test_delete_and_restore_through_the_api_post_lifecycle_events(store: SqlStore) -> None:
    sm, objects, events, _ = _api(store)
    sm.call("CreateSecret", {"Name": "svc/key", "SecretString": "k1"}, CALLER, META)
    assert ("team", "svc-key") in objects.objects
    sm.call("DeleteSecret", {"SecretId": "svc/key", "RecoveryWindowInDays": 7}, CALLER, META)
    assert ("team", "svc-key") not in objects.objects
    assert [e[:2] for e in events.emitted] == [("svc-key", "DeletionScheduled")]
    sm.call("RestoreSecret", {"SecretId": "svc/key"}, CALLER, META)
    assert [e[:2] for e in events.emitted][-1] == ("svc-key", "Restored")
    assert ("team", "svc-key") in objects.objects


def test_a_late_deleted_event_for_the_removed_object_does_not_undo_a_restore(
    store: SqlStore,
) -> None:
    """The operator's watch may deliver DELETED for the object DeleteSecret removed only
    after RestoreSecret recreated it (same name, new uid): that event changes nothing, while
    a later `kubectl delete` of the new object still schedules deletion."""
    sm, objects, _, deletion = _api(store)
    sm.call("CreateSecret", {"Name": "svc/key", "SecretString": "k1"}, CALLER, META)
    removed = objects.get("team", "svc-key")
    assert removed is not None
    sm.call("DeleteSecret", {"SecretId": "svc/key", "RecoveryWindowInDays": 7}, CALLER, META)
    sm.call("RestoreSecret", {"SecretId": "svc/key"}, CALLER, META)
    recreated = objects.get("team", "svc-key")
    assert recreated is not None
    assert recreated["metadata"]["uid"] != removed["metadata"]["uid"]

    assert deletion.object_deleted(removed) is None  # the late event
    got = sm.call("GetSecretValue", {"SecretId": "svc/key"}, CALLER, META)
    assert got["SecretString"] == "k1"
    assert ("team", "svc-key") in objects.objects

    scheduled = deletion.object_deleted(recreated)  # kubectl delete of the new incarnation
    assert scheduled is not None and scheduled.deletion_date is not None


def test_purge_due_removes_only_secrets_whose_window_ended(store: SqlStore) -> None:
    sm, _, _, deletion = _api(store)
    for name in ("a", "b", "c"):
        sm.call("CreateSecret", {"Name": name, "SecretString": "v"}, CALLER, META)
    sm.call("DeleteSecret", {"SecretId": "a", "RecoveryWindowInDays": 7}, CALLER, META)
    sm.call("DeleteSecret", {"SecretId": "b", "RecoveryWindowInDays": 30}, CALLER, META)
    now = datetime.now(UTC)
    assert deletion.purge_due(now) == 0  # both windows are open
    assert deletion.purge_due(now + timedelta(days=8)) == 1
    assert store.get_secret("team", "a") is None
    assert store.get_secret("team", "b") is not None  # 30 days
    assert store.get_secret("team", "c") is not None  # never deleted
    assert deletion.purge_due(now + timedelta(days=31)) == 1
    assert [r.name for r in store.list_secrets()] == ["c"]
