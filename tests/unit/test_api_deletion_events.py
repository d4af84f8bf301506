"""DeleteSecret and RestoreSecret through the API post the same DeletionScheduled / Restored
Events as `kubectl delete ms` does: the API uses the one DeletionService it is given."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.unit.fakes import FakeEvents, FakeObjects, FakeSecrets

from kustos.crypto import Keyring
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


def test_delete_and_restore_through_the_api_post_lifecycle_events(store: SqlStore) -> None:
    secrets = SecretService(store, lambda: KEYRING, "c")
    objects, events = FakeObjects(), FakeEvents()
    deletion = DeletionService(secrets, objects, FakeSecrets(), events)  # type: ignore[arg-type]
    sm = SecretsApi(
        secrets,
        objects,
        FakeSecrets(),
        AllowAll(),
        Audit(),  # type: ignore[arg-type]
        deletion,
    )
    sm.call("CreateSecret", {"Name": "svc/key", "SecretString": "k1"}, CALLER, META)
    assert ("team", "svc-key") in objects.objects
    sm.call("DeleteSecret", {"SecretId": "svc/key", "RecoveryWindowInDays": 7}, CALLER, META)
    assert ("team", "svc-key") not in objects.objects
    assert [e[:2] for e in events.emitted] == [("svc-key", "DeletionScheduled")]
    sm.call("RestoreSecret", {"SecretId": "svc/key"}, CALLER, META)
    assert [e[:2] for e in events.emitted][-1] == ("svc-key", "Restored")
    assert ("team", "svc-key") in objects.objects
