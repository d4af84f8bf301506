"""The API's pure parts: validation against botocore's model, names, tokens, and the audit
rules of a call (fail closed), with a real SQLite store and in-memory gateways for speed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tests.unit.fakes import stand_in

from kustos.api.errors_map import error_of
from kustos.api.protocol import (
    SerializationError,
    UnknownOperationError,
    UnsupportedMediaTypeError,
    check_content_type,
    operation_for,
    parse_params,
    to_wire,
)
from kustos.crypto import Keyring
from kustos.errors import (
    AccessDeniedError,
    AuditUnavailableError,
    KustosError,
    ValidationError,
)
from kustos.kube.managed_objects import ManagedObjectGateway
from kustos.kube.secrets import SecretGateway
from kustos.models.audit import AuditEvent
from kustos.models.identity import Principal
from kustos.services.api.call import CallMeta
from kustos.services.api.ids import (
    InvalidNextTokenError,
    decode_token,
    encode_token,
    object_name_for,
)
from kustos.services.api.service import OPERATIONS, SecretsApi
from kustos.services.core.deletion import DeletionService
from kustos.services.core.secrets import SecretService
from kustos.store import SqlStore

ALL = frozenset(OPERATIONS)


def test_every_operation_is_in_botocores_model() -> None:
    for name in OPERATIONS:
        assert operation_for(f"secretsmanager.{name}", ALL).name == name
    for target in (
        None,
        "",
        "secretsmanager.",
        "kms.Decrypt",
        "secretsmanager.ReplicateSecretToRegions",
    ):
        with pytest.raises(UnknownOperationError):
            operation_for(target, ALL)


def test_content_type() -> None:
    check_content_type("application/x-amz-json-1.1; charset=utf-8")
    with pytest.raises(UnsupportedMediaTypeError):
        check_content_type("text/plain")
    with pytest.raises(UnsupportedMediaTypeError):
        check_content_type(None)


def test_parse_valid_and_blob() -> None:
    model = operation_for("secretsmanager.PutSecretValue", ALL)
    params = parse_params(model, b'{"SecretId": "a", "SecretBinary": "AAH/", "Unknown": 1}')
    assert params == {"SecretId": "a", "SecretBinary": b"\x00\x01\xff"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{", SerializationError),
        (b"[]", SerializationError),
        (b"\xff\xfe", SerializationError),
        (b"[" * 100000 + b"]" * 100000, SerializationError),
        (b'{"SecretId": "a", "SecretBinary": "not base64!"}', SerializationError),
        (b'{"SecretString": "x"}', ValidationError),  # SecretId missing
        (b'{"SecretId": 3}', ValidationError),
        (b'{"SecretId": ""}', ValidationError),  # min 1 (botocore)
        (b'{"SecretId": "' + b"a" * 2049 + b'"}', ValidationError),  # max 2048 (model)
        (b'{"SecretId": "a", "VersionStages": ["' + b"s" * 300 + b'"]}', ValidationError),
        (b'{"SecretId": "a", "ClientRequestToken": "short"}', ValidationError),
    ],
)
def test_parse_invalid(body: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_params(operation_for("secretsmanager.PutSecretValue", ALL), body)


def test_validation_messages_never_echo_values() -> None:
    model = operation_for("secretsmanager.CreateSecret", ALL)
    secret = "S3CR3T-" + "q" * 65536
    with pytest.raises(ValidationError) as exc:
        parse_params(model, json.dumps({"Name": "n", "SecretString": secret}).encode())
    assert "S3CR3T" not in exc.value.message and "'secretString'" in exc.value.message
    with pytest.raises(ValidationError) as exc:
        parse_params(model, json.dumps({"Name": "n", "SecretString": 12345678}).encode())
    assert "12345678" not in exc.value.message
    model = operation_for("secretsmanager.ListSecrets", ALL)
    with pytest.raises(ValidationError) as exc:  # enum and bool-as-integer, from the model
        parse_params(model, b'{"SortOrder": "sideways", "MaxResults": true}')
    assert "enum" in exc.value.message and "'maxResults'" in exc.value.message


def test_validation_messages_are_aws_s() -> None:
    model = operation_for("secretsmanager.ListSecrets", ALL)
    with pytest.raises(ValidationError) as exc:
        parse_params(
            model,
            b'{"Filters": [{"Key": "name", "Values": ["a"]}, {"Key": "colour", "Values": ["a"]}]}',
        )
    assert exc.value.message == (
        "1 validation error detected: Value 'colour' at 'filters.2.member.key' failed to "
        "satisfy constraint: Member must satisfy enum value set: [description, name, "
        "tag-key, tag-value, primary-region, owning-service, all]"
    )
    model = operation_for("secretsmanager.GetRandomPassword", ALL)
    with pytest.raises(ValidationError) as exc:
        parse_params(model, b'{"PasswordLength": 4097}')
    assert exc.value.message == (
        "1 validation error detected: Value '4097' at 'passwordLength' failed to satisfy "
        "constraint: Member must have value less than or equal to 4096"
    )
    model = operation_for("secretsmanager.CreateSecret", ALL)
    with pytest.raises(ValidationError) as exc:
        parse_params(model, b"{}")
    assert exc.value.message == (
        "1 validation error detected: Value null at 'name' failed to satisfy constraint: "
        "Member must not be null"
    )


def test_errors_and_wire_form() -> None:
    assert error_of(RuntimeError("secret detail")) == (
        500,
        "InternalServiceError",
        "An internal error occurred; the request can be retried.",
    )
    assert error_of(AccessDeniedError("no"))[:2] == (400, "AccessDeniedException")
    assert error_of(KustosError("disk on fire"))[2] != "disk on fire"
    assert to_wire({"a": b"\x00", "b": None, "c": [1]}) == {"a": "AA==", "c": [1]}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("prod/payments/db", "prod-payments-db"),
        ("orders", "orders"),
    ],
)
def test_object_names_plain(name: str, expected: str) -> None:
    assert object_name_for(name) == expected


@pytest.mark.parametrize("name", ["Prod/DB", "a//b", "a_b", "-x", "a.b", "@", "x" * 300])
def test_object_names_hashed(name: str) -> None:
    derived = object_name_for(name)
    assert len(derived) <= 253 and derived == derived.lower()
    assert derived.strip("-") == derived and derived[-9] == "-"
    assert object_name_for(name) == derived  # stable
    assert object_name_for("prod/db", hashed=True) != "prod-db"


def test_next_tokens() -> None:
    query = {"f": [["name", ["a"]]]}
    assert decode_token(encode_token(20, query), query) == 20
    assert decode_token(None, query) == 0
    for bad in ("garbage", encode_token(20, {"f": []}), "e30="):
        with pytest.raises(InvalidNextTokenError):
            decode_token(bad, query)


# -- the audit rules of a call ----------------------------------------------------------------


class Objects:
    def __init__(self) -> None:
        self.created: list[str] = []

    def get(self, namespace: str, name: str) -> None:
        return None

    def create(self, namespace: str, name: str, spec: Any, annotations: Any) -> dict[str, Any]:
        self.created.append(name)
        return {"metadata": {"name": name, "namespace": namespace}}

    def merge_patch(self, *args: Any) -> None:
        return None


class Audit:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.events: list[AuditEvent] = []

    def record(self, event: AuditEvent) -> None:
        if self.fail:
            raise AuditUnavailableError("audit down")
        self.events.append(event)


class Authorizer:
    def __init__(self, deny: set[str] | None = None) -> None:
        self.deny = deny or set()

    def authorize(self, principal: Principal, action: str, record: Any, context: Any) -> None:
        if action in self.deny:
            raise AccessDeniedError(f"{principal.arn} may not {action}")


@pytest.fixture
def store(tmp_path: Path) -> Any:
    opened = SqlStore(f"sqlite:///{tmp_path / 'k.db'}")
    yield opened
    opened.close()


def api(
    store: Any, audit: Audit, authorizer: Authorizer | None = None
) -> tuple[SecretsApi, Objects]:
    keyring = Keyring.generate()
    objects = Objects()
    secrets = SecretService(store, lambda: keyring, "c")
    gateway = stand_in(ManagedObjectGateway, objects)
    deletion = DeletionService(secrets, gateway, stand_in(SecretGateway, None))
    return SecretsApi(
        secrets,
        gateway,
        stand_in(SecretGateway, None),
        authorizer or Authorizer(),
        audit,
        deletion,
    ), objects


CALLER = Principal.service_account("team", "app")
META = CallMeta(request_id="r1", source_ip="10.0.0.1")


def test_each_call_is_audited_once_without_values(store: Any) -> None:
    audit = Audit()
    sm, objects = api(store, audit)
    sm.call("CreateSecret", {"Name": "a/b", "SecretString": "CANARY-1"}, CALLER, META)
    got = sm.call("GetSecretValue", {"SecretId": "a/b"}, CALLER, META)
    assert got["SecretString"] == "CANARY-1" and objects.created == ["a-b"]
    with pytest.raises(KustosError):
        sm.call("GetSecretValue", {"SecretId": "missing"}, CALLER, META)
    assert [(e.event_name, e.error_code) for e in audit.events] == [
        ("CreateSecret", None),
        ("GetSecretValue", None),
        ("GetSecretValue", "ResourceNotFoundException"),
    ]
    assert "CANARY" not in repr(audit.events)


def test_denied_calls_are_audited(store: Any) -> None:
    audit = Audit()
    sm, _ = api(store, audit, Authorizer({"secretsmanager:CreateSecret"}))
    with pytest.raises(AccessDeniedError):
        sm.call("CreateSecret", {"Name": "x", "SecretString": "v"}, CALLER, META)
    assert [(e.event_name, e.error_code) for e in audit.events] == [
        ("CreateSecret", "AccessDeniedException")
    ]
    assert store.list_secrets() == []


def test_audit_failure_fails_closed(store: Any) -> None:
    audit = Audit()
    sm, objects = api(store, audit)
    sm.call("CreateSecret", {"Name": "kept", "SecretString": "v1"}, CALLER, META)
    audit.fail = True
    with pytest.raises(AuditUnavailableError):  # no value handed out
        sm.call("GetSecretValue", {"SecretId": "kept"}, CALLER, META)
    with pytest.raises(AuditUnavailableError):  # nothing written
        sm.call("CreateSecret", {"Name": "new", "SecretString": "v"}, CALLER, META)
    with pytest.raises(AuditUnavailableError):
        sm.call("PutSecretValue", {"SecretId": "kept", "SecretString": "v2"}, CALLER, META)
    assert [r.name for r in store.list_secrets()] == ["kept"]
    assert len(store.list_versions(store.list_secrets()[0].arn)) == 1
    assert objects.created == ["kept"]


def test_every_violation_is_reported_and_patterns_match_whole_values() -> None:
    model = operation_for("secretsmanager.ListSecrets", ALL)
    with pytest.raises(ValidationError) as exc:  # a minimum (botocore) and an enum (model)
        parse_params(model, b'{"MaxResults": 0, "SortOrder": "up"}')
    assert exc.value.message.startswith(
        "2 validation errors detected: Value '0' at 'maxResults' failed"
    )
    assert "; Value 'up' at 'sortOrder' failed" in exc.value.message
    model = operation_for("secretsmanager.RotateSecret", ALL)
    with pytest.raises(ValidationError) as exc:  # "1h" inside "x1hx" is no match of [0-9]+h
        parse_params(model, b'{"SecretId": "s", "RotationRules": {"Duration": "x1h"}}')
    assert "'rotationRules.duration'" in exc.value.message
