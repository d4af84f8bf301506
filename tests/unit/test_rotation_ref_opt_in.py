"""A rotation uses a master Secret or a webhook signing key only with that Secret's consent:
the ManagedSecret's author must not make Kustos log in with credentials they cannot read."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from tests.unit.fakes import FakeSecrets

from kustos.errors import SourceNotAllowedError
from kustos.models.reasons import Reason
from kustos.services.core.objects import reason_for
from kustos.services.rotation.support import resolve_refs

NS = "team"


def _put(
    secrets: FakeSecrets,
    name: str,
    data: dict[str, str],
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
) -> None:
    meta: dict[str, Any] = {"name": name, "namespace": NS}
    if annotations:
        meta["annotations"] = annotations
    if labels:
        meta["labels"] = labels
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    secrets.create(NS, {"metadata": meta, "data": encoded})


MASTER = {"username": "admin", "password": "master-canary-7f3a"}
PG = {"strategy": "alternating-users", "masterSecretRef": {"name": "master"}}
HOOK = {"url": "https://hook.invalid/x", "signingKeySecretRef": {"name": "hook"}}


@pytest.mark.parametrize("allow", ["db", "other, db", "*"])
def test_a_master_secret_that_names_the_managed_secret_serves_it(allow: str) -> None:
    secrets = FakeSecrets()
    _put(secrets, "master", MASTER, {"kustos.io/allow-import-by": allow})
    _config, master = resolve_refs(secrets, PG, NS, "db")  # type: ignore[arg-type]
    assert master is not None
    assert (master.as_mapping() or {})["username"] == "admin"


@pytest.mark.parametrize("annotations", [None, {"kustos.io/allow-import-by": "other"}])
def test_a_master_secret_without_consent_is_refused_with_the_command_to_give_it(
    annotations: dict[str, str] | None,
) -> None:
    secrets = FakeSecrets()
    _put(secrets, "master", MASTER, annotations)
    with pytest.raises(SourceNotAllowedError) as raised:
        resolve_refs(secrets, PG, NS, "db")  # type: ignore[arg-type]
    message = raised.value.message
    assert "masterSecretRef" in message and "team/master" in message
    assert "kubectl annotate secret master kustos.io/allow-import-by=db" in message
    assert MASTER["password"] not in message
    assert reason_for(raised.value) is Reason.SOURCE_NOT_ALLOWED


def test_a_signing_key_needs_consent_or_registration_as_a_rotation_function() -> None:
    secrets = FakeSecrets()
    _put(secrets, "hook", {"signingKey": "k" * 20})
    with pytest.raises(SourceNotAllowedError):
        resolve_refs(secrets, HOOK, NS, "db")  # type: ignore[arg-type]

    registered = FakeSecrets()
    _put(
        registered,
        "hook",
        {"signingKey": "k" * 20},
        labels={"kustos.io/rotation-function": "webhook"},
    )
    config, _ = resolve_refs(registered, HOOK, NS, "db")  # type: ignore[arg-type]
    assert config["signingKey"].reveal() == "k" * 20

    named = FakeSecrets()
    _put(named, "hook", {"signingKey": "k" * 20}, {"kustos.io/allow-import-by": "db"})
    assert resolve_refs(named, HOOK, NS, "db")[0]["signingKey"].reveal() == "k" * 20  # type: ignore[arg-type]


def test_the_function_label_does_not_open_a_master_secret() -> None:
    secrets = FakeSecrets()
    _put(secrets, "master", MASTER, labels={"kustos.io/rotation-function": "webhook"})
    with pytest.raises(SourceNotAllowedError):
        resolve_refs(secrets, PG, NS, "db")  # type: ignore[arg-type]
