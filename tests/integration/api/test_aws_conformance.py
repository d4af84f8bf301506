"""AWS Secrets Manager's behaviour, case by case, against the live endpoint with boto3.

Each test states one AWS rule (from botocore's service model, the API reference and user
guide, or AWS's observed answers) and asserts AWS's error code and message word for word.
The table in docs/api.md lists them (operation x behaviour x status).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from tests.kube_helpers import get, wait_for

pytestmark = pytest.mark.cluster


def error_of(call: Any, *args: Any, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(ClientError) as exc:
        call(*args, **kwargs)
    err = exc.value.response["Error"]
    return err["Code"], err["Message"]


def loose(sm: Any) -> Any:
    """The same client without boto3's own parameter validation (the server's answers)."""
    import boto3

    meta = sm.meta
    return boto3.client(
        "secretsmanager",
        region_name=meta.region_name,
        endpoint_url=meta.endpoint_url,
        verify=getattr(sm._endpoint.http_session, "_verify", None),
        aws_access_key_id=sm._request_signer._credentials.access_key,
        aws_secret_access_key=sm._request_signer._credentials.secret_key,
        config=Config(parameter_validation=False, retries={"max_attempts": 1}),
    )


def names(sm: Any, **kwargs: Any) -> list[str]:
    return [s["Name"] for s in sm.list_secrets(**kwargs)["SecretList"]]


# -- ListSecrets -----------------------------------------------------------------------------


def test_list_secrets_sorts_by_created_date_by_default_and_as_asked(sm: Any) -> None:
    for name in ("b-second", "c-first", "a-third"):
        sm.create_secret(Name=name, SecretString="v")
    assert names(sm) == ["b-second", "c-first", "a-third"]
    assert names(sm, SortOrder="desc") == ["a-third", "c-first", "b-second"]
    assert names(sm, SortBy="name") == ["a-third", "b-second", "c-first"]
    assert names(sm, SortBy="name", SortOrder="desc") == ["c-first", "b-second", "a-third"]
    sm.update_secret(SecretId="b-second", Description="changed last")
    assert names(sm, SortBy="last-changed-date")[-1] == "b-second"
    sm.get_secret_value(SecretId="c-first")
    assert names(sm, SortBy="last-accessed-date", SortOrder="desc")[0] == "c-first"


@pytest.fixture
def catalogue(sm: Any) -> Any:
    secrets = [
        ("prod/payments/db", "Primary Database of payments", {"team": "Payments"}),
        ("prod/orders/db", "orders store", {"team": "orders", "tier": "gold"}),
        ("dev/AppBeta/api-key", "", {"Env": "dev"}),
        ("database-admin", "one two", {}),
    ]
    for name, description, tags in secrets:
        sm.create_secret(
            Name=name,
            SecretString="v",
            Description=description,
            Tags=[{"Key": k, "Value": v} for k, v in tags.items()],
        )
    return sm


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        # name: prefix of the name or of one of its words, case-sensitive
        ([{"Key": "name", "Values": ["prod"]}], ["prod/payments/db", "prod/orders/db"]),
        ([{"Key": "name", "Values": ["payments"]}], ["prod/payments/db"]),
        ([{"Key": "name", "Values": ["prod/pay"]}], ["prod/payments/db"]),
        ([{"Key": "name", "Values": ["db"]}], ["prod/payments/db", "prod/orders/db"]),
        ([{"Key": "name", "Values": ["Prod"]}], []),
        ([{"Key": "name", "Values": ["ments"]}], []),
        ([{"Key": "name", "Values": ["admin"]}], ["database-admin"]),
        # several values: any of them
        (
            [{"Key": "name", "Values": ["dev", "database"]}],
            ["dev/AppBeta/api-key", "database-admin"],
        ),
        # negation
        ([{"Key": "name", "Values": ["!prod"]}], ["dev/AppBeta/api-key", "database-admin"]),
        # description: prefix of a word, not case-sensitive
        ([{"Key": "description", "Values": ["database"]}], ["prod/payments/db"]),
        ([{"Key": "description", "Values": ["ORDERS"]}], ["prod/orders/db"]),
        ([{"Key": "description", "Values": ["t"]}], ["database-admin"]),
        # tag-key / tag-value: case-sensitive prefix
        ([{"Key": "tag-key", "Values": ["te"]}], ["prod/payments/db", "prod/orders/db"]),
        ([{"Key": "tag-key", "Values": ["env"]}], []),
        ([{"Key": "tag-value", "Values": ["Pay"]}], ["prod/payments/db"]),
        ([{"Key": "tag-value", "Values": ["pay"]}], []),
        # several keys: all must match
        (
            [{"Key": "tag-key", "Values": ["team"]}, {"Key": "tag-value", "Values": ["gold"]}],
            ["prod/orders/db"],
        ),
        # the same key twice: both must match (AWS answers so)
        (
            [{"Key": "name", "Values": ["prod"]}, {"Key": "name", "Values": ["orders"]}],
            ["prod/orders/db"],
        ),
        # all: every word of the value begins a word of some field, not case-sensitive
        ([{"Key": "all", "Values": ["payments"]}], ["prod/payments/db"]),
        ([{"Key": "all", "Values": ["beta"]}], ["dev/AppBeta/api-key"]),
        ([{"Key": "all", "Values": ["GOLD"]}], ["prod/orders/db"]),
        ([{"Key": "all", "Values": ["prod db"]}], ["prod/payments/db", "prod/orders/db"]),
        ([{"Key": "all", "Values": ["ments"]}], []),
        ([{"Key": "all", "Values": ["!prod"]}], ["dev/AppBeta/api-key", "database-admin"]),
        # no replication, no owning service
        ([{"Key": "primary-region", "Values": ["local"]}], []),
        (
            [{"Key": "owning-service", "Values": ["!x"]}],
            ["prod/payments/db", "prod/orders/db", "dev/AppBeta/api-key", "database-admin"],
        ),
    ],
)
def test_list_secrets_filters(catalogue: Any, filters: list[Any], expected: list[str]) -> None:
    assert names(catalogue, Filters=filters) == expected


def test_batch_get_secret_value_uses_the_same_filters(catalogue: Any) -> None:
    got = catalogue.batch_get_secret_value(Filters=[{"Key": "name", "Values": ["prod"]}])
    assert sorted(v["Name"] for v in got["SecretValues"]) == ["prod/orders/db", "prod/payments/db"]


@pytest.mark.parametrize(
    ("filters", "code", "message"),
    [
        ([{"Values": ["x"]}], "InvalidParameterException", "Invalid filter key"),
        ([{"Key": "name"}], "InvalidParameterException", "Invalid filter values for key: name"),
        (
            [{"Key": "colour", "Values": ["x"]}],
            "ValidationException",
            "1 validation error detected: Value 'colour' at 'filters.1.member.key' failed to satisfy "
            "constraint: Member must satisfy enum value set: [description, name, tag-key, "
            "tag-value, primary-region, owning-service, all]",
        ),
        (
            [{"Key": "name", "Values": []}],
            "ValidationException",
            "1 validation error detected: Value at 'filters.1.member.values' failed to satisfy "
            "constraint: Member must have length greater than or equal to 1",
        ),
    ],
)
def test_list_secrets_bad_filters(sm: Any, filters: Any, code: str, message: str) -> None:
    assert error_of(loose(sm).list_secrets, Filters=filters) == (code, message)


def test_list_secrets_bad_sort(sm: Any) -> None:
    code, message = error_of(loose(sm).list_secrets, SortBy="size")
    assert code == "ValidationException"
    assert message.startswith(
        "1 validation error detected: Value 'size' at 'sortBy' failed "
        "to satisfy constraint: Member must satisfy enum value set: ["
    )


# -- A secret without a value ----------------------------------------------------------------


def test_secret_without_a_value(sm: Any) -> None:
    created = sm.create_secret(Name="later", Description="filled in later")
    assert "VersionId" not in created
    described = sm.describe_secret(SecretId="later")
    assert described["Description"] == "filled in later"
    assert "VersionIdsToStages" not in described
    assert error_of(sm.get_secret_value, SecretId="later") == (
        "ResourceNotFoundException",
        "Secrets Manager can't find the specified secret value for staging label: AWSCURRENT",
    )
    batch = sm.batch_get_secret_value(SecretIdList=["later"])
    assert batch["SecretValues"] == []
    assert [(e["SecretId"], e["ErrorCode"]) for e in batch["Errors"]] == [
        ("later", "ResourceNotFoundException")
    ]
    assert sm.list_secret_version_ids(SecretId="later")["Versions"] == []
    sm.update_secret(SecretId="later", Description="still none")
    assert sm.describe_secret(SecretId="later")["Description"] == "still none"
    put = sm.put_secret_value(SecretId="later", SecretString="first")
    assert put["VersionStages"] == ["AWSCURRENT"]
    got = sm.get_secret_value(SecretId="later")
    assert (got["SecretString"], got["VersionId"]) == ("first", put["VersionId"])


# -- Versions and labels ---------------------------------------------------------------------


def test_get_secret_value_version_messages(sm: Any) -> None:
    first = sm.create_secret(Name="v", SecretString="one")["VersionId"]
    second = sm.put_secret_value(SecretId="v", SecretString="two")["VersionId"]
    missing = str(uuid.uuid4())
    assert error_of(sm.get_secret_value, SecretId="v", VersionId=missing) == (
        "ResourceNotFoundException",
        f"Secrets Manager can't find the specified secret value for VersionId: {missing}",
    )
    assert error_of(sm.get_secret_value, SecretId="v", VersionStage="NOPE") == (
        "ResourceNotFoundException",
        "Secrets Manager can't find the specified secret value for staging label: NOPE",
    )
    assert error_of(
        sm.get_secret_value, SecretId="v", VersionId=first, VersionStage="AWSCURRENT"
    ) == (
        "InvalidRequestException",
        "You provided a VersionStage that is not associated to the provided VersionId.",
    )
    got = sm.get_secret_value(SecretId="v", VersionId=second, VersionStage="AWSCURRENT")
    assert got["SecretString"] == "two"
    assert (
        sm.get_secret_value(SecretId="v", VersionId=first, VersionStage="AWSPREVIOUS")[
            "SecretString"
        ]
        == "one"
    )
    assert error_of(sm.get_secret_value, SecretId="nothing-here") == (
        "ResourceNotFoundException",
        "Secrets Manager can't find the specified secret.",
    )


def test_update_secret_version_stage_rules(sm: Any) -> None:
    first = sm.create_secret(Name="labels", SecretString="one")["VersionId"]
    second = sm.put_secret_value(SecretId="labels", SecretString="two", VersionStages=["STAGING"])[
        "VersionId"
    ]
    assert error_of(
        sm.update_secret_version_stage,
        SecretId="labels",
        VersionStage="AWSCURRENT",
        MoveToVersionId=second,
    ) == (
        "InvalidParameterException",
        "The parameter RemoveFromVersionId can't be empty. Staging label AWSCURRENT is "
        f"currently attached to version {first}, so you must explicitly reference that "
        "version in RemoveFromVersionId.",
    )
    assert error_of(
        sm.update_secret_version_stage,
        SecretId="labels",
        VersionStage="AWSCURRENT",
        MoveToVersionId=second,
        RemoveFromVersionId=second,
    ) == (
        "InvalidParameterException",
        f"The staging label AWSCURRENT is not attached to version {second}, so you can't "
        "remove it.",
    )
    unknown = str(uuid.uuid4())
    assert error_of(
        sm.update_secret_version_stage, SecretId="labels", VersionStage="X", MoveToVersionId=unknown
    ) == ("InvalidParameterException", f"Not a valid version: {unknown}")
    sm.update_secret_version_stage(
        SecretId="labels",
        VersionStage="AWSCURRENT",
        MoveToVersionId=second,
        RemoveFromVersionId=first,
    )
    stages = sm.describe_secret(SecretId="labels")["VersionIdsToStages"]
    assert sorted(stages[second]) == ["AWSCURRENT", "STAGING"]
    assert stages[first] == ["AWSPREVIOUS"]
    # a label on no version is attached without RemoveFromVersionId
    sm.update_secret_version_stage(SecretId="labels", VersionStage="QA", MoveToVersionId=first)
    sm.update_secret_version_stage(SecretId="labels", VersionStage="QA", RemoveFromVersionId=first)
    assert sm.describe_secret(SecretId="labels")["VersionIdsToStages"][first] == ["AWSPREVIOUS"]


def test_put_secret_value_returns_version_stages(sm: Any) -> None:
    sm.create_secret(Name="stages", SecretString="one")
    put = sm.put_secret_value(
        SecretId="stages", SecretString="two", VersionStages=["BLUE", "GREEN"]
    )
    assert sorted(put["VersionStages"]) == ["BLUE", "GREEN"]
    assert sm.get_secret_value(SecretId="stages")["SecretString"] == "one"
    assert sm.put_secret_value(SecretId="stages", SecretString="three")["VersionStages"] == [
        "AWSCURRENT"
    ]


@pytest.mark.parametrize("operation", ["CreateSecret", "PutSecretValue", "UpdateSecret"])
def test_client_request_token_reuse(sm: Any, operation: str) -> None:
    token = str(uuid.uuid4())
    name = f"tok-{operation.lower()}"

    def call(value: str) -> Any:
        if operation == "CreateSecret":
            return sm.create_secret(Name=name, SecretString=value, ClientRequestToken=token)
        if operation == "PutSecretValue":
            return sm.put_secret_value(SecretId=name, SecretString=value, ClientRequestToken=token)
        return sm.update_secret(SecretId=name, SecretString=value, ClientRequestToken=token)

    if operation != "CreateSecret":
        sm.create_secret(Name=name, SecretString="base")
    first = call("same")
    again = call("same")
    assert first["VersionId"] == again["VersionId"] == token
    assert len(sm.list_secret_version_ids(SecretId=name)["Versions"]) == (
        1 if operation == "CreateSecret" else 2
    )
    arn = sm.describe_secret(SecretId=name)["ARN"]
    assert error_of(call, "different") == (
        "ResourceExistsException",
        f"You can't use ClientRequestToken {token} because that value is already in use for "
        f"a version of secret {arn}.",
    )
    assert sm.get_secret_value(SecretId=name)["SecretString"] == "same"


def test_create_secret_that_exists(sm: Any) -> None:
    sm.create_secret(Name="twice", SecretString="one")
    assert error_of(sm.create_secret, Name="twice", SecretString="two") == (
        "ResourceExistsException",
        "The operation failed because the secret twice already exists.",
    )


# -- Deletion --------------------------------------------------------------------------------


def test_force_delete_of_a_missing_secret_succeeds(sm: Any) -> None:
    answer = sm.delete_secret(SecretId="never-was", ForceDeleteWithoutRecovery=True)
    assert answer["Name"] == "never-was" and answer["DeletionDate"]
    assert error_of(sm.delete_secret, SecretId="never-was") == (
        "ResourceNotFoundException",
        "Secrets Manager can't find the specified secret.",
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"RecoveryWindowInDays": 6},
            "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).",
        ),
        (
            {"RecoveryWindowInDays": 31},
            "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive).",
        ),
        (
            {"RecoveryWindowInDays": 7, "ForceDeleteWithoutRecovery": True},
            "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.",
        ),
    ],
)
def test_delete_secret_validation(sm: Any, params: dict[str, Any], message: str) -> None:
    sm.create_secret(Name="keep", SecretString="v")
    assert error_of(sm.delete_secret, SecretId="keep", **params) == (
        "InvalidParameterException",
        message,
    )
    assert sm.get_secret_value(SecretId="keep")["SecretString"] == "v"


def test_deleted_secret_cannot_be_read(sm: Any) -> None:
    sm.create_secret(Name="bye", SecretString="v")
    sm.delete_secret(SecretId="bye", RecoveryWindowInDays=7)
    assert error_of(sm.get_secret_value, SecretId="bye") == (
        "InvalidRequestException",
        "You can't perform this operation on the secret because it was marked for deletion.",
    )


# -- Response shapes -------------------------------------------------------------------------


def test_members_aws_omits_when_empty(sm: Any) -> None:
    sm.create_secret(Name="plain", SecretString="v")
    described = sm.describe_secret(SecretId="plain")
    for member in (
        "Tags",
        "RotationEnabled",
        "RotationRules",
        "RotationLambdaARN",
        "LastRotatedDate",
        "NextRotationDate",
        "Description",
        "DeletedDate",
    ):
        assert member not in described, member
    listed = sm.list_secrets(Filters=[{"Key": "name", "Values": ["plain"]}])["SecretList"][0]
    assert "Tags" not in listed and "RotationEnabled" not in listed
    sm.tag_resource(SecretId="plain", Tags=[{"Key": "k", "Value": "v"}])
    assert sm.describe_secret(SecretId="plain")["Tags"] == [{"Key": "k", "Value": "v"}]


# -- Rotation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "code", "message"),
    [
        (
            {"AutomaticallyAfterDays": 0},
            "ValidationException",
            "1 validation error detected: Value '0' at 'rotationRules.automaticallyAfterDays' failed "
            "to satisfy constraint: Member must have value greater than or equal to 1",
        ),
        (
            {"AutomaticallyAfterDays": 1001},
            "ValidationException",
            "1 validation error detected: Value '1001' at 'rotationRules.automaticallyAfterDays' "
            "failed to satisfy constraint: Member must have value less than or equal to 1000",
        ),
        (
            {"AutomaticallyAfterDays": 7, "ScheduleExpression": "rate(7 days)"},
            "InvalidParameterException",
            "You cannot specify both rotation frequency and schedule expression together.",
        ),
        (
            {"ScheduleExpression": "rate(2 hours)"},
            "InvalidParameterException",
            "The schedule expression rate must be between 4 hours and 1000 days.",
        ),
        (
            {"ScheduleExpression": "rate(1001 days)"},
            "InvalidParameterException",
            "The schedule expression rate must be between 4 hours and 1000 days.",
        ),
        (
            {"ScheduleExpression": "rate(10 minutes)"},
            "InvalidParameterException",
            "Invalid schedule expression: rate(10 minutes). Use rate(N hours), rate(N days) or "
            "cron(6 fields).",
        ),
        (
            {"ScheduleExpression": "rate(1 days)", "Duration": "25h"},
            "InvalidParameterException",
            "The rotation window Duration must be between 1h and 24h.",
        ),
        (
            {"ScheduleExpression": "cron(0/30 * * * ? *)"},
            "InvalidParameterException",
            "The schedule expression must not rotate more often than every 4 hours.",
        ),
    ],
)
def test_rotation_rules_validated_as_aws(
    sm: Any, rules: dict[str, Any], code: str, message: str
) -> None:
    sm.create_secret(Name="rot-rules", SecretString="v")
    assert error_of(
        loose(sm).rotate_secret,
        SecretId="rot-rules",
        RotationLambdaARN="generated",
        RotationRules=rules,
    ) == (code, message)
    assert "RotationEnabled" not in sm.describe_secret(SecretId="rot-rules")


def test_rotate_without_a_rotation_function(sm: Any) -> None:
    sm.create_secret(Name="no-fn", SecretString="v")
    code, message = error_of(
        sm.rotate_secret,
        SecretId="no-fn",
        RotationRules={"AutomaticallyAfterDays": 30},
        RotateImmediately=False,
    )
    assert code == "InvalidRequestException"
    assert message.startswith(
        "You tried to enable rotation on a secret that doesn't already have a Lambda "
        "function ARN configured and you didn't include such an ARN as a parameter in this "
        "call."
    )


CANNOT_INVOKE = (
    "AccessDeniedException",
    "Secrets Manager cannot invoke the specified Lambda "
    "function. Ensure that the function policy grants access to the principal "
    "secretsmanager.amazonaws.com.",
)


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:lambda:us-east-1:123456789012:function:generated",  # another partition
        "arn:kustos:lambda:elsewhere:{ns}:function:generated",  # another cluster
        "arn:kustos:lambda:test:other-namespace:function:generated",  # another namespace
        "arn:kustos:lambda:test:{ns}:function:no-such-function",  # neither rotator nor webhook
        "arn:kustos:lambda:test:{ns}:function:unlabelled",  # a Secret not registered
        "arn:kustos:s3:test:{ns}:function:generated",  # not a function
        "arn:kustos:lambda:test:{ns}:layer:generated",
        "no-such-function",
        "not a name",
    ],
)
def test_rotation_lambda_arn_that_names_no_function(world: Any, sm: Any, ns: str, arn: str) -> None:
    world.cluster.kubectl(
        "create",
        "secret",
        "generic",
        "unlabelled",
        "-n",
        ns,
        "--from-literal=url=https://example.invalid/rotate",
        "--from-literal=signingKey=0123456789abcdef0123",
    )
    sm.create_secret(Name="fn", SecretString="v")
    assert (
        error_of(
            sm.rotate_secret,
            SecretId="fn",
            RotationLambdaARN=arn.format(ns=ns),
            RotateImmediately=False,
        )
        == CANNOT_INVOKE
    )
    assert "RotationEnabled" not in sm.describe_secret(SecretId="fn")


def test_rotation_lambda_arn_names_a_kustos_rotator(world: Any, sm: Any, ns: str) -> None:
    sm.create_secret(Name="api-rot", SecretString="v")
    arn = f"arn:kustos:lambda:test:{ns}:function:generated"
    answer = sm.rotate_secret(
        SecretId="api-rot",
        RotationLambdaARN=arn,
        RotationRules={"AutomaticallyAfterDays": 30},
        RotateImmediately=False,
    )
    assert "VersionId" not in answer
    described = sm.describe_secret(SecretId="api-rot")
    assert described["RotationEnabled"] is True
    assert described["RotationLambdaARN"] == arn
    assert described["RotationRules"]["AutomaticallyAfterDays"] == 30
    assert sm.cancel_rotate_secret(SecretId="api-rot")["Name"] == "api-rot"
    wait_for(
        lambda: (
            (d := sm.describe_secret(SecretId="api-rot"))["RotationEnabled"] is False
            and "NextRotationDate" not in d
        ),
        timeout=60,
        what="rotation off after cancel",
    )
    # RotateSecret without an ARN turns it back on with the rotator it had
    sm.rotate_secret(SecretId="api-rot", RotateImmediately=False)
    described = sm.describe_secret(SecretId="api-rot")
    assert described["RotationEnabled"] is True and described["RotationLambdaARN"] == arn
    # a qualifier (version or alias) is accepted and names the same function
    sm.rotate_secret(
        SecretId="api-rot", RotationLambdaARN=f"{arn}:$LATEST", RotateImmediately=False
    )
    # a rotator that needs settings is not configured from the ARN alone
    code, message = error_of(
        sm.rotate_secret,
        SecretId="api-rot",
        RotationLambdaARN=(f"arn:kustos:lambda:test:{ns}:function:postgresql"),
        RotateImmediately=False,
    )
    assert code == "InvalidParameterException" and "rotates with generated" in message


def test_rotation_lambda_arn_names_a_registered_webhook(world: Any, sm: Any, ns: str) -> None:
    world.cluster.kubectl(
        "create",
        "secret",
        "generic",
        "my-rotation-fn",
        "-n",
        ns,
        "--from-literal=url=https://rotator.example.invalid/steps",
        "--from-literal=signingKey=0123456789abcdef0123",
        "--from-literal=timeoutSeconds=7",
    )
    world.cluster.kubectl(
        "label", "secret", "my-rotation-fn", "-n", ns, "kustos.io/rotation-function=webhook"
    )
    sm.create_secret(Name="hooked", SecretString="v")
    arn = f"arn:kustos:lambda:test:{ns}:function:my-rotation-fn"
    sm.rotate_secret(
        SecretId="hooked",
        RotationLambdaARN=arn,
        RotationRules={"ScheduleExpression": "rate(12 hours)"},
        RotateImmediately=False,
    )
    described = sm.describe_secret(SecretId="hooked")
    assert described["RotationEnabled"] is True and described["RotationLambdaARN"] == arn
    assert described["RotationRules"]["ScheduleExpression"] == "rate(12 hours)"
    obj = get(world.cluster, "ms", "hooked", ns)  # the ManagedSecret CreateSecret made
    assert obj is not None
    assert obj["spec"]["rotation"]["webhook"] == {
        "url": "https://rotator.example.invalid/steps",
        "timeoutSeconds": 7,
        "signingKeySecretRef": {"name": "my-rotation-fn", "key": "signingKey"},
    }
    assert obj["spec"]["rotation"]["schedule"] == "rate(12 hours)"
    # the bare function name names the same webhook: only the schedule changes
    sm.rotate_secret(
        SecretId="hooked",
        RotationLambdaARN="my-rotation-fn",
        RotationRules={"ScheduleExpression": "rate(1 days)"},
        RotateImmediately=False,
    )
    assert sm.describe_secret(SecretId="hooked")["RotationRules"]["ScheduleExpression"] == (
        "rate(1 days)"
    )
    # a registered webhook without an https url is refused, and nothing changes
    world.cluster.kubectl(
        "create",
        "secret",
        "generic",
        "plain-http",
        "-n",
        ns,
        "--from-literal=url=http://rotator.example.invalid/steps",
        "--from-literal=signingKey=0123456789abcdef0123",
    )
    world.cluster.kubectl(
        "label", "secret", "plain-http", "-n", ns, "kustos.io/rotation-function=webhook"
    )
    sm.create_secret(Name="hooked2", SecretString="v")
    code, message = error_of(
        sm.rotate_secret,
        SecretId="hooked2",
        RotationLambdaARN="plain-http",
        RotateImmediately=False,
    )
    assert code == "InvalidRequestException" and "https:// url" in message
    assert "RotationEnabled" not in sm.describe_secret(SecretId="hooked2")


def test_rotate_immediately_on_a_secret_created_through_the_api(sm: Any) -> None:
    sm.create_secret(Name="api-now", SecretString=json.dumps({"user": "u", "password": "p"}))
    token = str(uuid.uuid4())
    answer = sm.rotate_secret(
        SecretId="api-now",
        RotationLambdaARN="generated",
        RotationRules={"AutomaticallyAfterDays": 7},
        ClientRequestToken=token,
    )
    assert answer["VersionId"] == token
    got = wait_for(
        lambda: (v := sm.get_secret_value(SecretId="api-now"))["VersionId"] == token and v,
        timeout=90,
        what="rotated by the generated rotator",
    )
    value = json.loads(got["SecretString"])
    assert value["user"] == "u" and value["password"] != "p"
    described = wait_for(
        lambda: (
            (d := sm.describe_secret(SecretId="api-now")).get("LastRotatedDate")
            and d.get("NextRotationDate")
            and d
        ),
        timeout=60,
        what="rotation dates",
    )
    assert described["RotationEnabled"] is True
    assert described["RotationRules"]["AutomaticallyAfterDays"] == 7
    days = (described["NextRotationDate"] - described["LastRotatedDate"]).total_seconds() / 86400
    assert 6.9 < days < 7.1
    assert sm.get_secret_value(SecretId="api-now", VersionStage="AWSPREVIOUS")[
        "SecretString"
    ] == json.dumps({"user": "u", "password": "p"})


def test_a_registered_webhook_rotates_the_secret(
    world: Any, sm: Any, ns: str, tmp_path: Any
) -> None:
    from tests.integration.rotators.webhook_server import SIGNING_KEY, WebhookServer, make_cert

    server = WebhookServer(*make_cert(tmp_path))
    try:
        world.cluster.kubectl(
            "create",
            "secret",
            "generic",
            "svc-rotator",
            "-n",
            ns,
            f"--from-literal=url={server.url}",
            f"--from-literal=signingKey={SIGNING_KEY}",
            f"--from-literal=caData={server.ca_data}",
        )
        world.cluster.kubectl(
            "label", "secret", "svc-rotator", "-n", ns, "kustos.io/rotation-function=webhook"
        )
        sm.create_secret(Name="svc/creds", SecretString="initial")
        token = sm.rotate_secret(
            SecretId="svc/creds",
            RotationLambdaARN=f"arn:kustos:lambda:test:{ns}:function:svc-rotator",
        )["VersionId"]
        got = wait_for(
            lambda: (v := sm.get_secret_value(SecretId="svc/creds"))["VersionId"] == token and v,
            timeout=90,
            what="rotated by the webhook",
        )
        assert got["SecretString"] == server.created[token]
        assert [m["step"] for m in server.requests if m["clientRequestToken"] == token] == [
            "createSecret",
            "setSecret",
            "testSecret",
            "finishSecret",
        ]
        assert server.accepted == {got["SecretString"]}
    finally:
        server.close()


# -- GetRandomPassword, BatchGetSecretValue ---------------------------------------------------


def test_get_random_password_parameters(sm: Any) -> None:
    assert len(sm.get_random_password(PasswordLength=4096)["RandomPassword"]) == 4096
    assert len(sm.get_random_password()["RandomPassword"]) == 32
    spaced = sm.get_random_password(
        PasswordLength=200,
        IncludeSpace=True,
        ExcludeNumbers=True,
        ExcludePunctuation=True,
        ExcludeUppercase=True,
        ExcludeLowercase=True,
    )["RandomPassword"]
    assert spaced == " " * 200
    digits = sm.get_random_password(
        PasswordLength=50,
        ExcludeLowercase=True,
        ExcludeUppercase=True,
        ExcludePunctuation=True,
        ExcludeCharacters="0123",
    )["RandomPassword"]
    assert set(digits) <= set("456789")
    assert error_of(loose(sm).get_random_password, PasswordLength=4097) == (
        "ValidationException",
        "1 validation error detected: Value '4097' at 'passwordLength' failed to satisfy "
        "constraint: Member must have value less than or equal to 4096",
    )
    assert error_of(sm.get_random_password, PasswordLength=3) == (
        "InvalidParameterException",
        "Password length is too short based on the required types.",
    )


def test_batch_get_secret_value_validation(sm: Any) -> None:
    both = {"SecretIdList": ["a"], "Filters": [{"Key": "name", "Values": ["a"]}]}
    assert error_of(sm.batch_get_secret_value, **both) == (
        "InvalidParameterException",
        "Either 'SecretIdList' or 'Filters' must be provided, but not both.",
    )
    assert error_of(sm.batch_get_secret_value) == (
        "InvalidParameterException",
        "Either 'SecretIdList' or 'Filters' must be provided, but not both.",
    )
    assert error_of(sm.batch_get_secret_value, SecretIdList=["a"], MaxResults=5) == (
        "InvalidParameterException",
        "'Filters' not specified. 'Filters' must also be specified when 'MaxResults' is provided.",
    )


# -- Common validation messages --------------------------------------------------------------


def test_common_validation_messages(sm: Any) -> None:
    client = loose(sm)
    assert error_of(client.create_secret) == (
        "ValidationException",
        "1 validation error detected: Value null at 'name' failed to "
        "satisfy constraint: Member must not be null",
    )
    assert error_of(client.list_secrets, MaxResults=0) == (
        "ValidationException",
        "1 validation error detected: Value '0' at 'maxResults' failed "
        "to satisfy constraint: Member must have value greater than or equal to 1",
    )
    code, message = error_of(client.create_secret, Name="big", SecretString="x" * 65537)
    assert code == "ValidationException" and message == (
        "1 validation error detected: Value at 'secretString' failed to satisfy constraint: "
        "Member must have length less than or equal to 65536"
    )
