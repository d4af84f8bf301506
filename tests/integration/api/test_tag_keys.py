"""Tag keys equal ignoring case are refused, on the API and by the CRD.

IAM matches condition key names case-insensitively, so tags `Env` and `env` would be one
condition key `secretsmanager:ResourceTag/env` with two values, and a tag-based Deny
(`StringEquals ResourceTag/env: prod`) could be escaped by the other spelling.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from tests.api_fixture import ApiWorld
from tests.kube_helpers import get, managed_secret

pytestmark = pytest.mark.cluster


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_the_api_refuses_tag_keys_equal_ignoring_case(sm: Any) -> None:
    with pytest.raises(ClientError) as exc:
        sm.create_secret(
            Name="clash",
            SecretString="x",
            Tags=[{"Key": "Env", "Value": "prod"}, {"Key": "env", "Value": "dev"}],
        )
    assert _code(exc) == "InvalidParameterException"
    assert "'Env', 'env'" in str(exc.value)
    with pytest.raises(ClientError) as exc:
        sm.describe_secret(SecretId="clash")
    assert _code(exc) == "ResourceNotFoundException"  # nothing was created

    arn = sm.create_secret(Name="tagged", SecretString="x", Tags=[{"Key": "Env", "Value": "prod"}])[
        "ARN"
    ]
    with pytest.raises(ClientError) as exc:
        sm.tag_resource(SecretId=arn, Tags=[{"Key": "ENV", "Value": "dev"}])
    assert _code(exc) == "InvalidParameterException"
    assert sm.describe_secret(SecretId=arn)["Tags"] == [{"Key": "Env", "Value": "prod"}]
    # the same key, same case, is an update; after an untag the other spelling is fine
    sm.tag_resource(SecretId=arn, Tags=[{"Key": "Env", "Value": "staging"}])
    sm.untag_resource(SecretId=arn, TagKeys=["Env"])
    sm.tag_resource(SecretId=arn, Tags=[{"Key": "env", "Value": "dev"}])
    assert sm.describe_secret(SecretId=arn)["Tags"] == [{"Key": "env", "Value": "dev"}]


def test_the_crd_refuses_tag_keys_equal_ignoring_case(world: ApiWorld, ns: str) -> None:
    clash = managed_secret("clash", ns, {"tags": {"Env": "prod", "env": "dev"}})
    proc = world.cluster.kubectl("apply", "-f", "-", check=False, input=json.dumps(clash))
    assert proc.returncode != 0
    assert "tag keys must be unique ignoring case" in proc.stderr
    assert get(world.cluster, "managedsecret", "clash", ns) is None
    fine = managed_secret("fine", ns, {"tags": {"Env": "prod", "team": "payments"}})
    world.cluster.kubectl("apply", "-f", "-", input=json.dumps(fine))
    assert get(world.cluster, "managedsecret", "fine", ns) is not None
    patch = json.dumps({"spec": {"tags": {"ENV": "dev"}}})  # merge patch: adds ENV beside Env
    proc = world.cluster.kubectl(
        "patch", "managedsecret", "fine", "-n", ns, "--type=merge", "-p", patch, check=False
    )
    assert proc.returncode != 0
    assert "tag keys must be unique ignoring case" in proc.stderr
