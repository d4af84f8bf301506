"""Bad input gets the right AWS error code, no stack trace, and changes nothing; a fuzz test
over random bodies and targets finds no 5xx."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.cluster
TARGET = "secretsmanager.CreateSecret"


def state(sm: Any) -> list[tuple[str, int]]:
    out = []
    for s in sm.list_secrets(IncludePlannedDeletion=True)["SecretList"]:
        versions = sm.list_secret_version_ids(SecretId=s["ARN"], IncludeDeprecated=True)
        out.append((s["Name"], len(versions["Versions"])))
    return sorted(out)


def assert_clean(status: int, body: dict[str, Any], want_code: str, want_status: int = 400) -> None:
    assert (status, body.get("__type")) == (want_status, want_code), body
    text = json.dumps(body)
    assert "Traceback" not in text and 'File "' not in text


@pytest.mark.parametrize(
    ("target", "body", "content_type", "want", "status"),
    [
        (TARGET, b"{not json", "application/x-amz-json-1.1", "SerializationException", 400),
        (TARGET, b"[1, 2]", "application/x-amz-json-1.1", "SerializationException", 400),
        (
            TARGET,
            b'{"Name": "x", "SecretString": "y"}',
            "text/plain",
            "UnsupportedMediaTypeException",
            415,
        ),
        (
            "secretsmanager.DropAllTables",
            b"{}",
            "application/x-amz-json-1.1",
            "UnknownOperationException",
            400,
        ),
        (None, b"{}", "application/x-amz-json-1.1", "UnknownOperationException", 400),
        (
            TARGET,
            b'{"SecretString": "y"}',
            "application/x-amz-json-1.1",
            "ValidationException",
            400,
        ),
        (TARGET, b'{"Name": 5}', "application/x-amz-json-1.1", "ValidationException", 400),
        (
            TARGET,
            json.dumps({"Name": "big", "SecretString": "x" * 65537}).encode(),
            "application/x-amz-json-1.1",
            "ValidationException",
            400,
        ),
        (
            TARGET,
            json.dumps({"Name": "n" * 513, "SecretString": "x"}).encode(),
            "application/x-amz-json-1.1",
            "ValidationException",
            400,
        ),
        (
            TARGET,
            b'{"Name": "bad name!", "SecretString": "x"}',
            "application/x-amz-json-1.1",
            "ValidationException",
            400,
        ),
        (
            TARGET,
            b'{"Name": "b", "SecretBinary": "%%%"}',
            "application/x-amz-json-1.1",
            "SerializationException",
            400,
        ),
        (
            TARGET,
            b'{"Name": "b", "SecretString": "x", "SecretBinary": "eA=="}',
            "application/x-amz-json-1.1",
            "InvalidParameterException",
            400,
        ),
        (
            "secretsmanager.GetSecretValue",
            b'{"SecretId": "s", "VersionId": "short"}',
            "application/x-amz-json-1.1",
            "ValidationException",
            400,
        ),
        (
            "secretsmanager.DeleteSecret",
            b'{"SecretId": "s", "RecoveryWindowInDays": true}',
            "application/x-amz-json-1.1",
            "ValidationException",
            400,
        ),
    ],
)
def test_bad_requests(
    world: Any,
    ident: Any,
    sm: Any,
    target: str | None,
    body: bytes,
    content_type: str,
    want: str,
    status: int,
) -> None:
    before = state(sm)
    got_status, answer, headers = world.raw(ident, target, body, content_type)
    assert_clean(got_status, answer, want, status)
    assert headers.get("x-amzn-RequestId")
    if want == "ValidationException":  # never echo the value given
        assert "xxxxxxxx" not in answer["message"]
    assert state(sm) == before


def test_oversize_body_and_values_change_nothing(world: Any, ident: Any, sm: Any) -> None:
    before = state(sm)
    huge = json.dumps({"Name": "huge", "SecretString": "x" * (400 * 1024)}).encode()
    status, answer, _ = world.raw(ident, TARGET, huge)
    assert_clean(status, answer, "RequestEntityTooLargeException", 413)
    # through boto3 with its own client-side validation off: the server's answer
    loose = world.client(ident, parameter_validation=False)
    with pytest.raises(ClientError) as exc:
        loose.create_secret(Name="big", SecretString="x" * 65537)
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    with pytest.raises(ClientError) as exc:
        loose.create_secret(Name="", SecretString="x")
    assert exc.value.response["Error"]["Code"] == "ValidationException"
    assert state(sm) == before


def test_bad_credentials_are_refused(world: Any, ident: Any, sm: Any) -> None:
    from tests.api_fixture import Identity

    forged = Identity(ident.namespace, ident.service_account, ident.access_key_id, "wrong" * 8)
    with pytest.raises(ClientError) as exc:
        world.client(forged).create_secret(Name="forged", SecretString="x")
    assert exc.value.response["Error"]["Code"] in (
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
    )
    assert "forged" not in [s["Name"] for s in sm.list_secrets()["SecretList"]]


_OPS = [
    "CreateSecret",
    "GetSecretValue",
    "PutSecretValue",
    "UpdateSecret",
    "DescribeSecret",
    "ListSecrets",
    "BatchGetSecretValue",
    "DeleteSecret",
    "RestoreSecret",
    "TagResource",
    "UntagResource",
    "UpdateSecretVersionStage",
    "ListSecretVersionIds",
    "RotateSecret",
    "CancelRotateSecret",
    "GetRandomPassword",
    "PutResourcePolicy",
    "GetResourcePolicy",
    "DeleteResourcePolicy",
    "ValidateResourcePolicy",
    "Nope",
    "",
]
_KEYS = [
    "Name",
    "SecretId",
    "SecretString",
    "SecretBinary",
    "VersionId",
    "VersionStage",
    "ClientRequestToken",
    "Filters",
    "MaxResults",
    "NextToken",
    "Tags",
    "TagKeys",
    "RecoveryWindowInDays",
    "ForceDeleteWithoutRecovery",
    "PasswordLength",
    "ResourcePolicy",
    "SecretIdList",
    "MoveToVersionId",
    "RemoveFromVersionId",
    "RotationRules",
    "VersionStages",
    "IncludeDeprecated",
    "SortBy",
]
_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    op=st.sampled_from(_OPS),
    body=st.one_of(
        st.dictionaries(st.sampled_from(_KEYS), _JSON, max_size=5).map(
            lambda d: json.dumps(d).encode()
        ),
        st.binary(max_size=200),
    ),
)
def test_fuzz_no_server_errors(world: Any, ident: Any, op: str, body: bytes) -> None:
    status, answer, headers = world.raw(ident, f"secretsmanager.{op}", body)
    assert status < 500, answer
    assert headers.get("x-amzn-RequestId")
    if status >= 400:
        assert answer.get("__type") and "Traceback" not in json.dumps(answer)


def test_no_internal_errors_logged(world: Any) -> None:
    """Runs after the fuzz test: nothing reached the generic internal-error path."""
    log = world.runner.log()
    assert "internal error in" not in log
    assert "unexpected " not in log
