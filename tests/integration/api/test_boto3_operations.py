"""Every Secrets Manager operation with the real boto3 client against the real server."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.cluster


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_create_get_put_and_labels(sm: Any) -> None:
    created = sm.create_secret(
        Name="prod/payments/db",
        Description="orders",
        SecretString=json.dumps({"password": "v1"}),
        Tags=[{"Key": "team", "Value": "payments"}],
    )
    arn, v1 = created["ARN"], created["VersionId"]
    assert arn.startswith("arn:kustos:secretsmanager:test:") and ":secret:prod/payments/db-" in arn
    got = sm.get_secret_value(SecretId="prod/payments/db")
    assert (got["SecretString"], got["VersionId"], got["VersionStages"]) == (
        '{"password": "v1"}',
        v1,
        ["AWSCURRENT"],
    )
    # by full ARN and by partial ARN (no suffix)
    assert sm.get_secret_value(SecretId=arn)["VersionId"] == v1
    assert sm.get_secret_value(SecretId=arn.rsplit("-", 1)[0])["VersionId"] == v1

    v2 = sm.put_secret_value(SecretId=arn, SecretString="v2")["VersionId"]
    assert sm.get_secret_value(SecretId=arn)["SecretString"] == "v2"
    previous = sm.get_secret_value(SecretId=arn, VersionStage="AWSPREVIOUS")
    assert previous["VersionId"] == v1
    assert sm.get_secret_value(SecretId=arn, VersionId=v1)["SecretString"] == '{"password": "v1"}'

    # binary values round-trip as bytes
    v3 = sm.put_secret_value(SecretId=arn, SecretBinary=b"\x00\xffbin", VersionStages=["CUSTOM"])[
        "VersionId"
    ]
    assert (
        sm.get_secret_value(SecretId=arn, VersionStage="CUSTOM")["SecretBinary"] == b"\x00\xffbin"
    )
    assert sm.get_secret_value(SecretId=arn)["VersionId"] == v2  # CUSTOM did not move current

    # UpdateSecretVersionStage: move AWSCURRENT back to v1
    sm.update_secret_version_stage(
        SecretId=arn, VersionStage="AWSCURRENT", MoveToVersionId=v1, RemoveFromVersionId=v2
    )
    assert sm.get_secret_value(SecretId=arn)["VersionId"] == v1
    stages = sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
    assert stages == {v1: ["AWSCURRENT"], v2: ["AWSPREVIOUS"], v3: ["CUSTOM"]}
    with pytest.raises(ClientError) as exc:  # moving a held label needs RemoveFromVersionId
        sm.update_secret_version_stage(SecretId=arn, VersionStage="CUSTOM", MoveToVersionId=v1)
    assert code(exc) == "InvalidParameterException"

    ids = sm.list_secret_version_ids(SecretId=arn)
    assert {v["VersionId"] for v in ids["Versions"]} == {v1, v2, v3}


def test_idempotency_by_client_request_token(sm: Any) -> None:
    token = str(uuid.uuid4())
    first = sm.create_secret(Name="idem", SecretString="same", ClientRequestToken=token)
    assert first["VersionId"] == token  # the token becomes the VersionId, as in AWS
    again = sm.create_secret(Name="idem", SecretString="same", ClientRequestToken=token)
    assert (again["ARN"], again["VersionId"]) == (first["ARN"], token)
    with pytest.raises(ClientError) as exc:
        sm.create_secret(Name="idem", SecretString="other", ClientRequestToken=token)
    assert code(exc) == "ResourceExistsException"

    put_token = str(uuid.uuid4())
    put = sm.put_secret_value(SecretId="idem", SecretString="next", ClientRequestToken=put_token)
    repeat = sm.put_secret_value(SecretId="idem", SecretString="next", ClientRequestToken=put_token)
    assert put["VersionId"] == repeat["VersionId"] == put_token
    with pytest.raises(ClientError) as exc:
        sm.put_secret_value(SecretId="idem", SecretString="different", ClientRequestToken=put_token)
    assert code(exc) == "ResourceExistsException"
    versions = sm.list_secret_version_ids(SecretId="idem", IncludeDeprecated=True)["Versions"]
    assert len(versions) == 2  # no version was added by the repeats
    assert sm.get_secret_value(SecretId="idem")["SecretString"] == "next"


def test_update_tags_describe_and_list(sm: Any) -> None:
    arn = sm.create_secret(Name="app/one", SecretString="x", Description="first")["ARN"]
    sm.create_secret(Name="app/two", SecretString="y", Tags=[{"Key": "env", "Value": "prod"}])
    sm.create_secret(Name="other/three", SecretString="z")
    sm.update_secret(SecretId=arn, Description="changed")
    sm.tag_resource(
        SecretId=arn, Tags=[{"Key": "env", "Value": "dev"}, {"Key": "owner", "Value": "me"}]
    )
    sm.untag_resource(SecretId=arn, TagKeys=["owner"])
    described = sm.describe_secret(SecretId=arn)
    assert described["Description"] == "changed"
    assert described["Tags"] == [{"Key": "env", "Value": "dev"}]
    v2 = sm.update_secret(SecretId=arn, SecretString="x2")["VersionId"]
    assert sm.get_secret_value(SecretId=arn)["VersionId"] == v2

    def names(**kw: Any) -> list[str]:
        return sorted(s["Name"] for s in sm.list_secrets(**kw)["SecretList"])

    assert names() == ["app/one", "app/two", "other/three"]
    assert names(Filters=[{"Key": "name", "Values": ["app/"]}]) == ["app/one", "app/two"]
    assert names(Filters=[{"Key": "name", "Values": ["!app/"]}]) == ["other/three"]
    assert names(Filters=[{"Key": "tag-value", "Values": ["prod"]}]) == ["app/two"]
    assert names(Filters=[{"Key": "description", "Values": ["CHANG"]}]) == ["app/one"]
    # pagination with NextToken, also through boto3's paginator
    page = sm.list_secrets(MaxResults=2, SortOrder="asc")
    assert len(page["SecretList"]) == 2 and page["NextToken"]
    rest = sm.list_secrets(MaxResults=2, SortOrder="asc", NextToken=page["NextToken"])
    assert len(rest["SecretList"]) == 1 and "NextToken" not in rest
    paged = [
        s["Name"]
        for p in sm.get_paginator("list_secrets").paginate(PaginationConfig={"PageSize": 1})
        for s in p["SecretList"]
    ]
    assert sorted(paged) == ["app/one", "app/two", "other/three"]
    with pytest.raises(ClientError) as exc:
        sm.list_secrets(NextToken="bm90LWEtdG9rZW4=")
    assert code(exc) == "InvalidNextTokenException"


def test_batch_get_secret_value(sm: Any) -> None:
    a = sm.create_secret(Name="batch/a", SecretString="A")["ARN"]
    sm.create_secret(Name="batch/b", SecretString="B")
    out = sm.batch_get_secret_value(SecretIdList=[a, "batch/b", "batch/missing"])
    assert sorted(v["SecretString"] for v in out["SecretValues"]) == ["A", "B"]
    assert [(e["SecretId"], e["ErrorCode"]) for e in out["Errors"]] == [
        ("batch/missing", "ResourceNotFoundException")
    ]
    by_filter = sm.batch_get_secret_value(Filters=[{"Key": "name", "Values": ["batch/"]}])
    assert sorted(v["Name"] for v in by_filter["SecretValues"]) == ["batch/a", "batch/b"]


def test_delete_restore_and_force_delete(sm: Any) -> None:
    arn = sm.create_secret(Name="doomed", SecretString="x")["ARN"]
    with pytest.raises(ClientError) as exc:
        sm.delete_secret(SecretId=arn, RecoveryWindowInDays=3)
    assert code(exc) == "InvalidParameterException"
    deleted = sm.delete_secret(SecretId=arn, RecoveryWindowInDays=7)
    assert deleted["ARN"] == arn
    with pytest.raises(ClientError) as exc:
        sm.get_secret_value(SecretId=arn)
    assert code(exc) == "InvalidRequestException"
    assert "DeletedDate" in sm.describe_secret(SecretId=arn)
    assert "doomed" not in [s["Name"] for s in sm.list_secrets()["SecretList"]]
    assert "doomed" in [
        s["Name"] for s in sm.list_secrets(IncludePlannedDeletion=True)["SecretList"]
    ]
    with pytest.raises(ClientError) as exc:
        sm.create_secret(Name="doomed", SecretString="new")
    assert code(exc) == "InvalidRequestException"
    sm.restore_secret(SecretId=arn)
    assert sm.get_secret_value(SecretId=arn)["SecretString"] == "x"
    sm.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
    with pytest.raises(ClientError) as exc:
        sm.describe_secret(SecretId=arn)
    assert code(exc) == "ResourceNotFoundException"


def test_resource_policies_and_block_public(sm: Any) -> None:
    arn = sm.create_secret(Name="shared", SecretString="x")["ARN"]
    ns = arn.split(":")[4]
    narrow = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:kustos:iam::{ns}:serviceaccount/reader"},
                    "Action": "secretsmanager:GetSecretValue",
                    "Resource": "*",
                }
            ],
        }
    )
    public = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "secretsmanager:GetSecretValue",
                    "Resource": "*",
                }
            ],
        }
    )
    assert sm.validate_resource_policy(ResourcePolicy=narrow)["PolicyValidationPassed"] is True
    checked = sm.validate_resource_policy(SecretId=arn, ResourcePolicy=public)
    assert checked["PolicyValidationPassed"] is False
    assert checked["ValidationErrors"][0]["CheckName"] == "PublicAccessCheck"
    with pytest.raises(ClientError) as exc:
        sm.put_resource_policy(SecretId=arn, ResourcePolicy=public, BlockPublicPolicy=True)
    assert code(exc) == "PublicPolicyException"
    assert "ResourcePolicy" not in sm.get_resource_policy(SecretId=arn)  # nothing changed
    with pytest.raises(ClientError) as exc:
        sm.put_resource_policy(SecretId=arn, ResourcePolicy='{"Statement": 3}')
    assert code(exc) == "MalformedPolicyDocumentException"
    sm.put_resource_policy(SecretId=arn, ResourcePolicy=narrow, BlockPublicPolicy=True)
    assert json.loads(sm.get_resource_policy(SecretId=arn)["ResourcePolicy"]) == json.loads(narrow)
    sm.delete_resource_policy(SecretId=arn)
    assert "ResourcePolicy" not in sm.get_resource_policy(SecretId=arn)


def test_get_random_password_and_rotation_requests(sm: Any) -> None:
    password = sm.get_random_password(PasswordLength=40, ExcludePunctuation=True)
    assert len(password["RandomPassword"]) == 40 and password["RandomPassword"].isalnum()
    with pytest.raises(ClientError) as exc:
        sm.get_random_password(
            PasswordLength=2,
            ExcludeCharacters="",
            ExcludeLowercase=True,
            ExcludeUppercase=True,
            ExcludeNumbers=True,
            ExcludePunctuation=True,
        )
    assert code(exc) == "InvalidParameterException"
    arn = sm.create_secret(Name="rotating", SecretString="x")["ARN"]
    sm.rotate_secret(
        SecretId=arn,
        RotationRules={"AutomaticallyAfterDays": 30},
        RotationLambdaARN="generated",
        RotateImmediately=False,
    )
    described = sm.describe_secret(SecretId=arn)
    assert described["RotationEnabled"] is True
    assert described["RotationRules"]["AutomaticallyAfterDays"] == 30
    sm.cancel_rotate_secret(SecretId=arn)
    assert sm.describe_secret(SecretId=arn)["RotationEnabled"] is False


def test_missing_secret_and_other_namespace(world: Any, sm: Any, ns: str) -> None:
    with pytest.raises(ClientError) as exc:
        sm.get_secret_value(SecretId="nope")
    assert code(exc) == "ResourceNotFoundException"
    arn = sm.create_secret(Name="private", SecretString="mine")["ARN"]
    from tests.kube_helpers import new_namespace

    other = world.client(world.identity(new_namespace(world.cluster, "api")))
    with pytest.raises(ClientError) as exc:  # no resource policy: cross-namespace is denied
        other.get_secret_value(SecretId=arn)
    assert code(exc) == "AccessDeniedException"
    with pytest.raises(ClientError) as exc:  # a bare name means the caller's own namespace
        other.get_secret_value(SecretId="private")
    assert code(exc) == "ResourceNotFoundException"
