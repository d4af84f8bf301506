"""AWS's common error answers, operation by operation, against the live endpoint with boto3.

Each case asserts AWS's error code and message word for word: the not-found and
marked-for-deletion answers every secret operation shares, the service model's constraints
(botocore's `secretsmanager/service-2`: lengths, ranges, enums) worded as AWS words its
ValidationException, and the value and name rules of the API reference. docs/api.md lists
the messages checked here.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from tests.api_fixture import ApiWorld
from tests.integration.api.test_aws_conformance import error_of, loose
from tests.kube_helpers import new_namespace

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def shared(world: ApiWorld) -> Any:
    """One namespace and client for the cases that only read, or write names of their own
    (a namespace and access key per case would cost seconds each). Holds the secret `base`."""
    ns = new_namespace(world.cluster, "err")
    client = world.client(world.identity(ns))
    client.create_secret(Name="base", SecretString="v")
    return client


NOT_FOUND = ("ResourceNotFoundException", "Secrets Manager can't find the specified secret.")
MARKED = (
    "InvalidRequestException",
    "You can't perform this operation on the secret because it was marked for deletion.",
)
TOKEN = "a" * 32
INVALID_NAME = (
    "ValidationException",
    "Invalid name. Must be a valid name containing "
    "alphanumeric characters, or any of the following: -/_+=.@!",
)

#: Every operation on one secret, with the parameters it needs besides SecretId.
SECRET_OPERATIONS: list[tuple[str, dict[str, Any]]] = [
    ("describe_secret", {}),
    ("get_secret_value", {}),
    ("put_secret_value", {"SecretString": "v"}),
    ("update_secret", {"Description": "d"}),
    ("delete_secret", {}),
    ("restore_secret", {}),
    ("list_secret_version_ids", {}),
    ("update_secret_version_stage", {"VersionStage": "X", "MoveToVersionId": TOKEN}),
    ("tag_resource", {"Tags": [{"Key": "k", "Value": "v"}]}),
    ("untag_resource", {"TagKeys": ["k"]}),
    ("rotate_secret", {"RotationLambdaARN": "generated"}),
    ("cancel_rotate_secret", {}),
    ("get_resource_policy", {}),
    ("put_resource_policy", {"ResourcePolicy": '{"Version": "2012-10-17", "Statement": []}'}),
    ("delete_resource_policy", {}),
]


@pytest.mark.parametrize(
    ("operation", "params"), SECRET_OPERATIONS, ids=[op for op, _ in SECRET_OPERATIONS]
)
def test_a_secret_that_does_not_exist(shared: Any, operation: str, params: dict[str, Any]) -> None:
    assert error_of(getattr(shared, operation), SecretId="no/such/secret", **params) == NOT_FOUND


@pytest.mark.parametrize(
    "secret_id",
    [
        "arn:kustos:secretsmanager:test:{ns}:secret:nothing-AbCdEf",
        "arn:kustos:secretsmanager:test:{ns}:secret:nothing",
    ],
)
def test_an_arn_naming_no_secret(shared: Any, secret_id: str) -> None:
    ns = shared.describe_secret(SecretId="base")["ARN"].split(":")[4]
    assert error_of(shared.describe_secret, SecretId=secret_id.format(ns=ns)) == NOT_FOUND


def test_a_full_arn_with_another_suffix_names_no_secret(shared: Any) -> None:
    arn = shared.create_secret(Name="suffixed", SecretString="v")["ARN"]
    other = arn[:-6] + ("x" if arn[-6] != "x" else "y") + arn[-5:]
    assert error_of(shared.get_secret_value, SecretId=other) == NOT_FOUND
    assert shared.get_secret_value(SecretId=arn[:-7])["SecretString"] == "v"  # partial ARN


MARKED_OPERATIONS: list[tuple[str, dict[str, Any]]] = [
    ("get_secret_value", {}),
    ("put_secret_value", {"SecretString": "new"}),
    ("update_secret", {"SecretString": "new"}),
    ("update_secret", {"Description": "new"}),
    ("rotate_secret", {"RotationLambdaARN": "generated", "RotateImmediately": False}),
    ("update_secret_version_stage", {"VersionStage": "QA", "MoveToVersionId": "{version}"}),
]


@pytest.mark.parametrize(
    ("operation", "params"),
    MARKED_OPERATIONS,
    ids=[f"{op}-{'-'.join(p)}" for op, p in MARKED_OPERATIONS],
)
def test_a_secret_marked_for_deletion(shared: Any, operation: str, params: dict[str, Any]) -> None:
    name = f"going-{uuid.uuid4().hex[:8]}"
    version = shared.create_secret(Name=name, SecretString="kept")["VersionId"]
    shared.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    filled = {
        k: (v.format(version=version) if isinstance(v, str) else v) for k, v in params.items()
    }
    assert error_of(getattr(shared, operation), SecretId=name, **filled) == MARKED
    shared.restore_secret(SecretId=name)
    assert shared.get_secret_value(SecretId=name)["SecretString"] == "kept"


def test_restore_of_a_secret_not_deleted_succeeds(shared: Any) -> None:
    arn = shared.create_secret(Name="alive", SecretString="v")["ARN"]
    assert shared.restore_secret(SecretId="alive")["ARN"] == arn
    assert "DeletedDate" not in shared.describe_secret(SecretId="alive")


# -- Values and names -----------------------------------------------------------------------

BOTH = (
    "InvalidParameterException",
    "You can't specify both a binary secret value and a string secret value in the same secret.",
)


@pytest.mark.parametrize("operation", ["create_secret", "put_secret_value", "update_secret"])
def test_string_and_binary_together(shared: Any, operation: str) -> None:
    key = "Name" if operation == "create_secret" else "SecretId"
    name = "other" if operation == "create_secret" else "base"
    assert (
        error_of(getattr(shared, operation), **{key: name}, SecretString="s", SecretBinary=b"b")
        == BOTH
    )
    assert shared.get_secret_value(SecretId="base")["SecretString"] == "v"
    assert error_of(shared.describe_secret, SecretId="other") == NOT_FOUND


@pytest.mark.parametrize(
    "name", ["has space", "semi;colon", "quote'd", "tab\tname", "per%cent", "brace{}", "ünïcode"]
)
def test_invalid_secret_names(shared: Any, name: str) -> None:
    assert error_of(shared.create_secret, Name=name, SecretString="v") == INVALID_NAME


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        (op, params)
        for op, params in SECRET_OPERATIONS
        if op
        in (
            "describe_secret",
            "get_secret_value",
            "put_secret_value",
            "update_secret",
            "delete_secret",
            "list_secret_version_ids",
            "tag_resource",
            "untag_resource",
        )
    ]
    + [("delete_secret", {"ForceDeleteWithoutRecovery": True})],
)
def test_a_secret_id_with_invalid_characters(
    shared: Any, operation: str, params: dict[str, Any]
) -> None:
    """AWS answers a SecretId that is neither an ARN nor a valid name as it answers such a
    name, not as a secret that does not exist."""
    assert error_of(getattr(shared, operation), SecretId=" Inv*Name? ", **params) == (INVALID_NAME)


@pytest.mark.parametrize("name", ["a", "path/to/it", "x_y+z=w.v@u", "trailing-AbCdEf"])
def test_valid_secret_names(shared: Any, name: str) -> None:
    assert shared.create_secret(Name=name, SecretString="v")["Name"] == name
    assert shared.get_secret_value(SecretId=name)["SecretString"] == "v"


# -- The service model's constraints, as AWS words them -------------------------------------


def _bound(path: str, value: str | None, word: str, n: int) -> str:
    """AWS's ValidationException for a range (numbers, quoted) or a length (never quoted)."""
    shown = f"Value '{value}' at '{path}'" if value is not None else f"Value at '{path}'"
    what = "value" if value is not None else "length"
    return (
        f"1 validation error detected: {shown} failed to satisfy constraint: Member must "
        f"have {what} {word} than or equal to {n}"
    )


def _min(path: str, value: str | None, n: int) -> str:
    return _bound(path, value, "greater", n)


def _max(path: str, value: str | None, n: int) -> str:
    return _bound(path, value, "less", n)


MODEL_CASES: list[tuple[str, str, dict[str, Any], str]] = [
    (
        "name-too-long",
        "create_secret",
        {"Name": "n" * 513, "SecretString": "v"},
        _max("name", None, 512),
    ),
    (
        "description-too-long",
        "create_secret",
        {"Name": "d", "SecretString": "v", "Description": "d" * 2049},
        _max("description", None, 2048),
    ),
    (
        "token-too-short",
        "create_secret",
        {"Name": "t", "SecretString": "v", "ClientRequestToken": "short"},
        _min("clientRequestToken", None, 32),
    ),
    (
        "token-too-long",
        "put_secret_value",
        {"SecretId": "base", "SecretString": "v", "ClientRequestToken": "t" * 65},
        _max("clientRequestToken", None, 64),
    ),
    (
        "binary-too-long",
        "put_secret_value",
        {"SecretId": "base", "SecretBinary": b"b" * 65537},
        _max("secretBinary", None, 65536),
    ),
    (
        "empty-string",
        "put_secret_value",
        {"SecretId": "base", "SecretString": ""},
        _min("secretString", None, 1),
    ),
    (
        "stages-too-many",
        "put_secret_value",
        {"SecretId": "base", "SecretString": "v", "VersionStages": [f"S{i}" for i in range(21)]},
        _max("versionStages", None, 20),
    ),
    (
        "version-id-too-short",
        "get_secret_value",
        {"SecretId": "base", "VersionId": "v1"},
        _min("versionId", None, 32),
    ),
    ("secret-id-empty", "describe_secret", {"SecretId": ""}, _min("secretId", None, 1)),
    ("list-max-results-high", "list_secrets", {"MaxResults": 101}, _max("maxResults", "101", 100)),
    (
        "versions-max-results-low",
        "list_secret_version_ids",
        {"SecretId": "base", "MaxResults": 0},
        _min("maxResults", "0", 1),
    ),
    (
        "versions-max-results-high",
        "list_secret_version_ids",
        {"SecretId": "base", "MaxResults": 101},
        _max("maxResults", "101", 100),
    ),
    (
        "batch-max-results-high",
        "batch_get_secret_value",
        {"Filters": [{"Key": "name", "Values": ["b"]}], "MaxResults": 21},
        _max("maxResults", "21", 20),
    ),
    (
        "batch-too-many-ids",
        "batch_get_secret_value",
        {"SecretIdList": [f"s{i}" for i in range(21)]},
        _max("secretIdList", None, 20),
    ),
    (
        "password-length-zero",
        "get_random_password",
        {"PasswordLength": 0},
        _min("passwordLength", "0", 1),
    ),
    (
        "tag-key-empty",
        "tag_resource",
        {"SecretId": "base", "Tags": [{"Key": "", "Value": "v"}]},
        _min("tags.1.member.key", None, 1),
    ),
    (
        "tag-key-too-long",
        "tag_resource",
        {"SecretId": "base", "Tags": [{"Key": "k" * 129, "Value": "v"}]},
        _max("tags.1.member.key", None, 128),
    ),
    (
        "tag-value-too-long",
        "tag_resource",
        {"SecretId": "base", "Tags": [{"Key": "k", "Value": "v" * 257}]},
        _max("tags.1.member.value", None, 256),
    ),
    (
        "filters-too-many-values",
        "list_secrets",
        {"Filters": [{"Key": "name", "Values": [f"v{i}" for i in range(11)]}]},
        _max("filters.1.member.values", None, 10),
    ),
    (
        "filters-too-many",
        "list_secrets",
        {"Filters": [{"Key": "name", "Values": [f"v{i}"]} for i in range(11)]},
        _max("filters", None, 10),
    ),
    (
        "rotation-days-high",
        "rotate_secret",
        {
            "SecretId": "base",
            "RotationLambdaARN": "generated",
            "RotationRules": {"AutomaticallyAfterDays": 1001},
        },
        _max("rotationRules.automaticallyAfterDays", "1001", 1000),
    ),
    (
        "schedule-expression-pattern",
        "rotate_secret",
        {
            "SecretId": "base",
            "RotationLambdaARN": "generated",
            "RotationRules": {"ScheduleExpression": "rate(1 day);"},
        },
        "1 validation error detected: Value at 'rotationRules.scheduleExpression' failed to "
        "satisfy constraint: Member must satisfy regular expression pattern: "
        "[0-9A-Za-z\\(\\)#\\?\\*\\-\\/, ]+",
    ),
    (
        "sort-order-enum",
        "list_secrets",
        {"SortOrder": "up"},
        "1 validation error detected: Value 'up' at 'sortOrder' failed to satisfy constraint: "
        "Member must satisfy enum value set: [asc, desc]",
    ),
    (
        "duration-pattern",
        "rotate_secret",
        {
            "SecretId": "base",
            "RotationLambdaARN": "generated",
            "RotationRules": {"ScheduleExpression": "rate(1 days)", "Duration": "2d"},
        },
        "1 validation error detected: Value at 'rotationRules.duration' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: [0-9]+h",
    ),
    (
        "missing-secret-id",
        "get_secret_value",
        {},
        "1 validation error detected: Value null at 'secretId' failed to satisfy constraint: "
        "Member must not be null",
    ),
    (
        "missing-version-stage",
        "update_secret_version_stage",
        {"SecretId": "base"},
        "1 validation error detected: Value null at 'versionStage' failed to satisfy "
        "constraint: Member must not be null",
    ),
    (
        "missing-resource-policy",
        "put_resource_policy",
        {"SecretId": "base"},
        "1 validation error detected: Value null at 'resourcePolicy' failed to satisfy "
        "constraint: Member must not be null",
    ),
]


@pytest.mark.parametrize(
    ("operation", "params", "message"),
    [case[1:] for case in MODEL_CASES],
    ids=[c[0] for c in MODEL_CASES],
)
def test_model_constraints_worded_as_aws(
    shared: Any, operation: str, params: dict[str, Any], message: str
) -> None:
    assert error_of(getattr(loose(shared), operation), **params) == ("ValidationException", message)
    assert shared.get_secret_value(SecretId="base")["SecretString"] == "v"


def test_several_violations_are_counted(shared: Any) -> None:
    code, message = error_of(loose(shared).list_secrets, MaxResults=0, SortOrder="up")
    assert code == "ValidationException"
    assert message.startswith("2 validation errors detected: ")
    assert "Value '0' at 'maxResults'" in message and "Value 'up' at 'sortOrder'" in message


# -- Labels ----------------------------------------------------------------------------------


def test_awscurrent_cannot_be_removed_without_a_move(shared: Any) -> None:
    version = shared.create_secret(Name="cur", SecretString="v")["VersionId"]
    code, _ = error_of(
        shared.update_secret_version_stage,
        SecretId="cur",
        VersionStage="AWSCURRENT",
        RemoveFromVersionId=version,
    )
    assert code == "InvalidParameterException"
    assert shared.get_secret_value(SecretId="cur")["VersionId"] == version


def test_a_version_id_of_another_secret(shared: Any) -> None:
    other = shared.create_secret(Name="first", SecretString="1")["VersionId"]
    shared.create_secret(Name="second", SecretString="2")
    assert error_of(shared.get_secret_value, SecretId="second", VersionId=other) == (
        "ResourceNotFoundException",
        f"Secrets Manager can't find the specified secret value for VersionId: {other}",
    )


def test_the_same_token_on_another_secret_is_its_own_version(shared: Any) -> None:
    token = str(uuid.uuid4())
    one = shared.create_secret(Name="tok-a", SecretString="a", ClientRequestToken=token)
    two = shared.create_secret(Name="tok-b", SecretString="b", ClientRequestToken=token)
    assert one["VersionId"] == two["VersionId"] == token
    assert shared.get_secret_value(SecretId="tok-b")["SecretString"] == "b"


# -- Operations Kustos does not serve -------------------------------------------------------


@pytest.mark.parametrize(
    ("operation", "params"),
    [
        (
            "replicate_secret_to_regions",
            {"SecretId": "base", "AddReplicaRegions": [{"Region": "eu-west-1"}]},
        ),
        ("remove_regions_from_replication", {"SecretId": "base", "RemoveReplicaRegions": ["x-1"]}),
        ("stop_replication_to_replica", {"SecretId": "base"}),
    ],
)
def test_replication_is_not_served(shared: Any, operation: str, params: dict[str, Any]) -> None:
    code, _ = error_of(getattr(shared, operation), **params)
    assert code == "UnknownOperationException"
