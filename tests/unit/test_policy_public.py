"""BlockPublicPolicy (is_public / ensure_not_public) and ValidateResourcePolicy findings."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kustos.errors import PublicPolicyError
from kustos.policy import (
    Finding,
    PolicyKind,
    ensure_not_public,
    is_public,
    parse_policy,
    public_statements,
    validate_resource_policy,
)
from kustos.policy.public import LOCKOUT_CHECK, PUBLIC_ACCESS_CHECK, SYNTAX_CHECK

CI = "arn:kustos:iam::dev:serviceaccount/ci"


def GROUP(name: str) -> str:
    return f"arn:kustos:iam::cluster:group/{name}"


def rp(**statement: Any) -> dict[str, Any]:
    body = {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}
    body.update(statement)
    return {"Version": "2012-10-17", "Statement": [body]}


def public(document: dict[str, Any]) -> bool:
    return is_public(parse_policy(document, kind=PolicyKind.RESOURCE))


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ({"Principal": "*"}, True),
        ({"Principal": {"AWS": "*"}}, True),
        ({"Principal": {"AWS": ["dev", "*"]}}, True),
        ({"NotPrincipal": {"AWS": CI}}, True),
        ({"Principal": {"AWS": CI}}, False),
        ({"Principal": {"AWS": "dev"}}, False),
        ({"Principal": "*", "Effect": "Deny"}, False),
        # narrowing conditions: a fixed principal, or a bounded set of addresses
        (
            {
                "Principal": "*",
                "Condition": {"StringEquals": {"AWS:principalarn": CI}},
            },
            False,
        ),
        ({"Principal": "*", "Condition": {"ArnEquals": {"aws:PrincipalArn": CI}}}, False),
        ({"Principal": "*", "Condition": {"ArnLike": {"aws:PrincipalArn": [CI, CI + "2"]}}}, False),
        ({"Principal": "*", "Condition": {"StringEquals": {"aws:username": "alice"}}}, False),
        ({"Principal": "*", "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}, False),
        (
            {
                "Principal": "*",
                "Condition": {
                    "IpAddress": {
                        "aws:SourceIp": [
                            "10.0.0.0/8",
                            "172.16.0.0/12",
                            "192.168.0.0/16",
                            "fd00:1234::/32",
                        ]
                    }
                },
            },
            False,
        ),
        (
            {
                "Principal": {"AWS": GROUP("system:serviceaccounts")},
                "Condition": {"ArnEquals": {"aws:PrincipalArn": CI}},
            },
            False,
        ),
        ({"Principal": {"AWS": GROUP("payments-oncall")}}, False),  # a group someone manages
        ({"Principal": {"AWS": "arn:kustos:iam::cluster:user/alice"}}, False),
        # groups every caller of a kind belongs to
        ({"Principal": {"AWS": GROUP("system:authenticated")}}, True),
        ({"Principal": {"AWS": GROUP("system:unauthenticated")}}, True),
        ({"Principal": {"AWS": GROUP("system:serviceaccounts")}}, True),
        ({"Principal": {"AWS": GROUP("system:serviceaccounts:dev")}}, True),
        ({"Principal": {"AWS": [CI, GROUP("system:authenticated")]}}, True),
        ({"Principal": {"AWS": "arn:kustos:iam::cluster:user/system:anonymous"}}, True),
        # patterns that pin nothing
        ({"Principal": "*", "Condition": {"StringLike": {"aws:PrincipalArn": "a*"}}}, True),
        ({"Principal": "*", "Condition": {"StringLike": {"aws:PrincipalArn": "*:*"}}}, True),
        ({"Principal": "*", "Condition": {"ArnLike": {"aws:PrincipalArn": "arn:?*"}}}, True),
        (
            {
                "Principal": "*",
                "Condition": {
                    "ArnLike": {"aws:PrincipalArn": "arn:kustos:iam::dev:serviceaccount/*"}
                },
            },
            True,
        ),  # every ServiceAccount anyone creates in dev
        (
            {
                "Principal": "*",
                "Condition": {
                    "StringEquals": {
                        "aws:PrincipalArn": "arn:kustos:iam::cluster:user/${aws:username}"
                    }
                },
            },
            True,
        ),
        ({"Principal": "*", "Condition": {"StringLike": {"aws:username": "a*"}}}, True),
        # every address: two halves, or many blocks that each look small
        (
            {
                "Principal": "*",
                "Condition": {"IpAddress": {"aws:SourceIp": ["0.0.0.0/1", "128.0.0.0/1"]}},
            },
            True,
        ),
        (
            {"Principal": "*", "Condition": {"IpAddress": {"aws:SourceIp": ["::/1", "8000::/1"]}}},
            True,
        ),
        ({"Principal": "*", "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/7"}}}, True),
        (
            {
                "Principal": "*",
                "Condition": {"IpAddress": {"aws:SourceIp": [f"{i}.0.0.0/8" for i in range(256)]}},
            },
            True,
        ),
        # a namespace, or a name every namespace can reuse, is no fixed principal
        ({"Principal": "*", "Condition": {"StringEquals": {"aws:PrincipalAccount": "dev"}}}, True),
        ({"Principal": "*", "Condition": {"StringEquals": {"AWS:principalaccount": "dev"}}}, True),
        ({"Principal": "*", "Condition": {"StringEquals": {"kustos:ServiceAccount": "ci"}}}, True),
        # conditions that do not narrow the caller
        ({"Principal": "*", "Condition": {"StringLike": {"aws:PrincipalArn": "*"}}}, True),
        (
            {
                "Principal": "*",
                "Condition": {"ArnLike": {"aws:PrincipalArn": "arn:kustos:iam::*:root"}},
            },
            True,
        ),
        (
            {
                "Principal": "*",
                "Condition": {"ArnLike": {"aws:PrincipalArn": ["arn:kustos:iam::dev:root", "*"]}},
            },
            True,
        ),
        ({"Principal": "*", "Condition": {"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}}, True),
        (
            {
                "Principal": "*",
                "Condition": {"StringEqualsIfExists": {"aws:PrincipalAccount": "dev"}},
            },
            True,
        ),
        (
            {"Principal": "*", "Condition": {"StringNotEquals": {"aws:PrincipalAccount": "dev"}}},
            True,
        ),
        (
            {
                "Principal": "*",
                "Condition": {"ForAllValues:StringEquals": {"aws:PrincipalAccount": "dev"}},
            },
            True,
        ),
        (
            {
                "Principal": "*",
                "Condition": {"StringEquals": {"secretsmanager:VersionStage": "AWSCURRENT"}},
            },
            True,
        ),
        ({"Principal": "*", "Condition": {"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}, True),
    ],
)
def test_is_public(statement: dict[str, Any], expected: bool) -> None:
    assert public(rp(**statement)) is expected


def test_public_statements_names_only_the_public_ones() -> None:
    document = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Ci",
                "Effect": "Allow",
                "Principal": {"AWS": CI},
                "Action": "*",
                "Resource": "*",
            },
            {"Sid": "World", "Effect": "Allow", "Principal": "*", "Action": "*", "Resource": "*"},
        ],
    }
    policy = parse_policy(document, kind=PolicyKind.RESOURCE)
    assert [s.sid for s in public_statements(policy)] == ["World"]


def test_ensure_not_public() -> None:
    ensure_not_public(parse_policy(rp(Principal={"AWS": CI}), kind=PolicyKind.RESOURCE))
    with pytest.raises(PublicPolicyError, match="public access") as caught:
        ensure_not_public(parse_policy(rp(Sid="World", Principal="*"), kind=PolicyKind.RESOURCE))
    assert "World" in caught.value.message
    assert caught.value.aws_code == "PublicPolicyException"


def test_validate_passes_a_good_policy_given_as_text_or_dict() -> None:
    good = rp(Principal={"AWS": CI})
    assert validate_resource_policy(good) == []
    assert validate_resource_policy(json.dumps(good)) == []


@pytest.mark.parametrize(
    "document",
    [
        "{",
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        },
        rp(Principal={"AWS": "arn:kustos:iam::dev:serviceaccount/*"}),
    ],
)
def test_validate_reports_syntax_errors(document: Any) -> None:
    (finding,) = validate_resource_policy(document)
    assert finding.check_name == SYNTAX_CHECK
    assert finding.message


def test_validate_reports_oversized_policies() -> None:
    huge = rp(Principal={"AWS": CI}, Sid="x" * 21000)
    (finding,) = validate_resource_policy(huge)
    assert finding.check_name == SYNTAX_CHECK
    assert "20480" in finding.message


def test_validate_reports_public_access() -> None:
    findings = validate_resource_policy(rp(Sid="World", Principal="*"))
    assert findings == [
        Finding(PUBLIC_ACCESS_CHECK, "Statement #0 (World) allows access to any principal")
    ]
    assert findings[0].to_aws() == {
        "CheckName": PUBLIC_ACCESS_CHECK,
        "ErrorMessage": findings[0].message,
    }


@pytest.mark.parametrize(
    ("statement", "locks_out"),
    [
        ({"Principal": "*", "Action": "secretsmanager:PutResourcePolicy"}, True),
        ({"Principal": {"AWS": "*"}, "Action": "secretsmanager:*"}, True),
        ({"Principal": "*", "Action": "*"}, True),
        ({"Principal": "*", "NotAction": "secretsmanager:GetSecretValue"}, True),
        ({"Principal": "*", "NotAction": "secretsmanager:*"}, False),
        ({"Principal": "*", "Action": "secretsmanager:GetSecretValue"}, False),
        ({"Principal": {"AWS": CI}, "Action": "*"}, False),
        (
            {
                "Principal": "*",
                "Action": "*",
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
            False,
        ),
    ],
)
def test_validate_reports_lockout(statement: dict[str, Any], locks_out: bool) -> None:
    document = rp(Effect="Deny", **statement)
    if "NotAction" in statement:
        del document["Statement"][0]["Action"]
    checks = [f.check_name for f in validate_resource_policy(document)]
    assert (LOCKOUT_CHECK in checks) is locks_out
