"""TLS to databases in the rotation use case: verify-full unless a spec opts out, and the
opt-outs (an explicit `require`, or a secret that rotated before verification became the
default) are reported with TLSVerified=False and one Warning Event."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.kube_helpers import present
from tests.unit.fakes import FakeEvents, FakeSecrets, stand_in

from kustos.crypto import Keyring
from kustos.kube.secrets import SecretGateway
from kustos.models.reasons import Reason
from kustos.models.sensitive import SecretValue
from kustos.models.status import ManagedSecretStatus
from kustos.rotation.engine import RotationEngine
from kustos.services.core.objects import ManagedObject
from kustos.services.core.secrets import SecretService
from kustos.services.rotation.service import LEGACY_TLS, RotationService
from kustos.services.rotation.support import RotationLimits
from kustos.store import SqlStore
from kustos.store.rotations import RotationStore

KEYRING = Keyring.generate()
VALUE = {"username": "app", "password": "KUSTOS-CANARY-tls-55", "host": "db.local", "port": 5432}


class Harness:
    def __init__(self, store: SqlStore) -> None:
        self.secrets = SecretService(store, lambda: KEYRING, "test")
        self.rotations = RotationStore(store.engine)
        self.events = FakeEvents()
        self.service = RotationService(
            self.secrets,
            self.rotations,
            stand_in(SecretGateway, FakeSecrets()),
            self.events,
            RotationEngine(self.rotations),
            RotationLimits(4, 2),
        )
        record = self.secrets.create("shop", "db", object_name="db")
        self.secrets.add_version(record, SecretValue.from_mapping(VALUE))
        self.arn = record.arn
        self.status: dict[str, Any] = {}

    def tick(self, tls: Any = None) -> dict[str, Any]:
        config: dict[str, Any] = {}
        if tls is not None:
            config["tls"] = {"mode": tls}
        spec = {"name": "db", "rotation": {"postgresql": config}}  # no schedule: nothing runs
        status = ManagedSecretStatus.from_raw(self.status)
        result = self.service.tick(ManagedObject("shop", "db", "uid", 1, spec, self.status), status)
        assert result.error is None, result.error
        self.status = status.to_raw()  # as the adapter patches it
        return self.status

    def past_rotation(self, config: dict[str, Any]) -> None:
        now, token = datetime.now(UTC), str(uuid.uuid4())
        self.rotations.begin(
            self.arn, token, rotator="postgresql", config=config, trigger="schedule", now=now
        )
        self.rotations.abandon(self.arn, token, now)


def tls_condition(status: dict[str, Any]) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions", []) if c["type"] == "TLSVerified"), None)


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    store = SqlStore(f"sqlite:///{tmp_path / 'k.db'}")
    yield Harness(store)
    store.close()


def test_a_new_spec_without_tls_verifies_and_warns_of_nothing(h: Harness) -> None:
    assert tls_condition(h.tick()) is None
    record = present(h.secrets.store.get_secret_by_arn(h.arn))
    assert h.service._default_tls(record) == "verify-full"
    assert tls_condition(h.tick("verify-full")) is None


@pytest.mark.parametrize("mode", ["require", "disable"])
def test_an_explicit_opt_out_warns_once(h: Harness, mode: str) -> None:
    cond = tls_condition(h.tick(mode))
    assert cond is not None and (cond["status"], cond["reason"]) == ("False", "TLSNotVerified")
    assert f"tls.mode {mode}" in cond["message"]
    h.tick(mode)
    assert h.events.reasons().count(Reason.TLS_NOT_VERIFIED) == 1
    assert tls_condition(h.tick("verify-full")) is None  # fixed: the condition goes


def test_a_secret_that_rotated_before_keeps_require_with_a_warning(h: Harness) -> None:
    h.past_rotation({"strategy": "single-user"})  # written before configs carried tls
    record = h.secrets.store.get_secret_by_arn(h.arn)
    assert record is not None and h.service._default_tls(record) == LEGACY_TLS
    cond = tls_condition(h.tick())
    assert cond is not None and "rotated before verify-full became the default" in (cond["message"])
    # the next rotation's config carries the legacy mark, so it stays legacy ...
    h.past_rotation({"strategy": "single-user", "tls": dict(LEGACY_TLS)})
    assert h.service._default_tls(record) == LEGACY_TLS
    # ... while one that ran with verify-full (or an explicit mode) is not legacy
    h.past_rotation({"strategy": "single-user", "tls": "require"})
    assert h.service._default_tls(record) == "verify-full"
    assert "KUSTOS-CANARY" not in repr(h.status) + repr(h.events.emitted)
