"""valueFrom.secretRef is not a confused deputy: a source Secret is imported only when its
annotation kustos.io/allow-import-by names the ManagedSecret (or is `*`); an import made
before that rule keeps working, with a Warning Event and SourceOptedIn=False."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.kube_helpers import present
from tests.unit.fakes import FakeEvents, FakeSecrets, stand_in

from kustos.crypto import Keyring
from kustos.kube.secrets import SecretGateway
from kustos.models.sensitive import SecretValue
from kustos.models.spec import ManagedSecretSpec
from kustos.models.status import ManagedSecretStatus
from kustos.services.controller.projection import ProjectionService
from kustos.services.controller.reconcile import ManagedSecretService, Reconciled
from kustos.services.controller.sources import ANNOTATION_ALLOW_IMPORT, SourceService
from kustos.services.core.objects import ManagedObject
from kustos.services.core.secrets import SecretService
from kustos.store import SqlStore

KEYRING = Keyring.generate()
CANARY = "KUSTOS-CANARY-optin-7c1e"
SPEC = {"name": "prod/api-key", "valueFrom": {"secretRef": {"name": "legacy"}}}


class Harness:
    def __init__(self, store: SqlStore) -> None:
        self.events = FakeEvents()
        self.kube = FakeSecrets()
        self.secrets = SecretService(store, lambda: KEYRING, "test")
        self.managed = ManagedSecretService(
            self.secrets,
            SourceService(stand_in(SecretGateway, self.kube)),
            ProjectionService(stand_in(SecretGateway, self.kube)),
            self.events,
        )
        self.status: dict[str, Any] = {}

    def source(self, value: str = CANARY, allow: str | None = None) -> None:
        meta: dict[str, Any] = {"name": "legacy"}
        if allow is not None:
            meta["annotations"] = {ANNOTATION_ALLOW_IMPORT: allow}
        self.kube.create(
            "shop",
            {"metadata": meta, "data": {"apiKey": base64.b64encode(value.encode()).decode()}},
        )

    def reconcile(self, name: str = "api-key") -> Reconciled:
        obj = ManagedObject("shop", name, f"uid-{name}", 1, SPEC, self.status)
        result = self.managed.reconcile(obj)
        self.status = result.status.to_raw()  # as the adapter patches it
        return result

    def projected(self, name: str = "api-key") -> str | None:
        obj = self.kube.get("shop", name)
        return None if obj is None else base64.b64decode(obj["data"]["apiKey"]).decode()


def cond(status: ManagedSecretStatus, ctype: str) -> dict[str, Any] | None:
    raw = status.to_raw()
    return next((c for c in raw.get("conditions", []) if c["type"] == ctype), None)


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    store = SqlStore(f"sqlite:///{tmp_path / 'kustos.db'}")
    yield Harness(store)
    store.close()


def test_a_source_without_the_opt_in_is_not_imported(h: Harness) -> None:
    h.source()
    result = h.reconcile()
    assert result.error is not None and result.error.retryable  # retried: the opt-in may come
    ready = cond(result.status, "Ready")
    assert ready is not None and (ready["status"], ready["reason"]) == ("False", "SourceNotAllowed")
    assert "kubectl annotate secret legacy kustos.io/allow-import-by=api-key" in ready["message"]
    record = h.secrets.find("shop", "prod/api-key")
    assert record is not None and h.secrets.current(record) is None  # nothing copied
    assert h.projected() is None
    assert CANARY not in repr(result.status) + repr(h.events.emitted)


@pytest.mark.parametrize("allow", ["api-key", "other, api-key", "*"])
def test_a_source_that_names_the_importer_is_imported(h: Harness, allow: str) -> None:
    h.source(allow=allow)
    result = h.reconcile()
    assert result.error is None
    assert h.projected() == CANARY
    assert present(cond(result.status, "Ready"))["status"] == "True"
    assert cond(result.status, "SourceOptedIn") is None


def test_naming_another_managed_secret_is_no_opt_in(h: Harness) -> None:
    h.source(allow="api-key-2,api")
    assert h.reconcile().error is not None
    assert h.projected() is None


def test_an_import_made_before_the_rule_keeps_working_with_a_warning(h: Harness) -> None:
    h.source()
    # what an older Kustos left: the record holding version 1 from this very source
    spec = ManagedSecretSpec.model_validate(SPEC)
    record = h.secrets.create("shop", "prod/api-key", object_name="api-key")
    h.secrets.add_version(
        record, SecretValue.from_mapping({"apiKey": CANARY}), fingerprint=spec.source_fingerprint()
    )
    result = h.reconcile()
    assert result.error is None and h.projected() == CANARY
    assert present(cond(result.status, "Ready"))["status"] == "True"
    warned = cond(result.status, "SourceOptedIn")
    assert warned is not None and (warned["status"], warned["reason"]) == (
        "False",
        "SourceNotAllowed",
    )
    warnings = [e for e in h.events.emitted if e[1] == "SourceNotAllowed"]
    assert len(warnings) == 1 and warnings[0][3] == "Warning"
    # it still follows the source's changes ...
    h.source(value=CANARY + "-2")
    h.reconcile()
    assert h.projected() == CANARY + "-2"
    assert len([e for e in h.events.emitted if e[1] == "SourceNotAllowed"]) == 1  # no repeat
    # ... and the warning goes once the source opts in
    h.source(value=CANARY + "-2", allow="api-key")
    result = h.reconcile()
    assert cond(result.status, "SourceOptedIn") is None
    assert CANARY not in repr(result.status) + repr(h.events.emitted)


def test_another_managed_secret_cannot_ride_on_an_old_import(h: Harness) -> None:
    h.source()
    spec = ManagedSecretSpec.model_validate(SPEC)
    record = h.secrets.create("shop", "prod/api-key", object_name="api-key")
    h.secrets.add_version(
        record, SecretValue.from_mapping({"apiKey": CANARY}), fingerprint=spec.source_fingerprint()
    )
    obj = ManagedObject(
        "shop",
        "copycat",
        "uid-c",
        1,
        {"name": "copycat", "valueFrom": {"secretRef": {"name": "legacy"}}},
    )
    result = h.managed.reconcile(obj)
    assert result.error is not None
    assert present(cond(result.status, "Ready"))["reason"] == "SourceNotAllowed"
    assert h.projected("copycat") is None
