"""Every condition operator, IfExists, ForAnyValue/ForAllValues, and policy variables.

Each case runs a one-statement identity policy `Allow * on *` carrying the condition through
`evaluate`, so `allowed` is exactly "the condition holds".
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from kustos.policy import Request, evaluate, parse_policy

CALLER = "arn:kustos:iam::prod:serviceaccount/app"
USER = "arn:kustos:iam::cluster:user/alice"
SECRET = "arn:kustos:secretsmanager:c1:prod:secret:prod/payments/db-AbCdEf"


def holds(
    condition: dict[str, Any],
    context: dict[str, Any] | None = None,
    *,
    principal: str = CALLER,
    resource: str = "*",
    version: str = "2012-10-17",
) -> bool:
    policy = parse_policy(
        {
            "Version": version,
            "Statement": {
                "Effect": "Allow",
                "Action": "*",
                "Resource": resource,
                "Condition": condition,
            },
        }
    )
    request = Request(
        principal,
        "secretsmanager:GetSecretValue",
        SECRET,
        context or {},
        principal_namespace="prod",
    )
    return evaluate(request, [policy]).allowed


TAG = "secretsmanager:ResourceTag/Env"

CASES: list[tuple[str, Any, Any, bool]] = [
    # operator, policy value(s), context value (None = key absent), expected
    ("StringEquals", "prod", "prod", True),
    ("StringEquals", "prod", "Prod", False),
    ("StringEquals", ["dev", "prod"], "prod", True),
    ("StringEquals", "prod", None, False),
    ("StringEquals", "pr*", "prod", False),  # no wildcards in StringEquals
    ("StringNotEquals", "prod", "dev", True),
    ("StringNotEquals", ["dev", "prod"], "prod", False),
    ("StringNotEquals", "prod", None, True),  # negated operators hold on a missing key
    ("StringEqualsIgnoreCase", "PROD", "prod", True),
    ("StringEqualsIgnoreCase", "prod", "dev", False),
    ("StringNotEqualsIgnoreCase", "PROD", "prod", False),
    ("StringNotEqualsIgnoreCase", "PROD", "dev", True),
    ("StringLike", "pr?d*", "prod-east", True),
    ("StringLike", "Prod*", "prod", False),  # case-sensitive
    ("StringLike", ["x*", "*d"], "prod", True),
    ("StringNotLike", ["x*", "*d"], "prod", False),
    ("StringNotLike", "x*", "prod", True),
    ("StringNotLike", "x*", None, True),
    ("StringEqualsIfExists", "prod", None, True),
    ("StringEqualsIfExists", "prod", "dev", False),
    ("StringEqualsIfExists", "prod", "prod", True),
    ("StringNotEqualsIfExists", "prod", "prod", False),
    ("StringLikeIfExists", "p*", None, True),
]


@pytest.mark.parametrize(("operator", "values", "actual", "expected"), CASES)
def test_string_operators(operator: str, values: Any, actual: Any, expected: bool) -> None:
    context = {} if actual is None else {TAG: actual}
    assert holds({operator: {TAG: values}}, context) is expected


NUMERIC: list[tuple[str, Any, Any, bool]] = [
    ("NumericEquals", "7", 7, True),
    ("NumericEquals", 7, "7.0", True),
    ("NumericEquals", "7", 8, False),
    ("NumericNotEquals", ["7", "8"], 8, False),
    ("NumericNotEquals", ["7", "8"], 9, True),
    ("NumericLessThan", "30", 7, True),
    ("NumericLessThan", "30", 30, False),
    ("NumericLessThanEquals", "30", 30, True),
    ("NumericLessThanEquals", "30", 31, False),
    ("NumericGreaterThan", "7", 8, True),
    ("NumericGreaterThan", "7", 7, False),
    ("NumericGreaterThanEquals", "7", 7, True),
    ("NumericGreaterThanEquals", "7", 6.5, False),
    ("NumericEquals", "7", "seven", False),  # an unreadable request value never matches
    ("NumericEquals", "1", True, False),  # booleans are not numbers
    ("NumericLessThan", "30", None, False),
    ("NumericLessThanIfExists", "30", None, True),
    ("NumericLessThanIfExists", "30", 31, False),
]


@pytest.mark.parametrize(("operator", "values", "actual", "expected"), NUMERIC)
def test_numeric_operators(operator: str, values: Any, actual: Any, expected: bool) -> None:
    key = "secretsmanager:RecoveryWindowInDays"
    context = {} if actual is None else {key: actual}
    assert holds({operator: {key: values}}, context) is expected


NOON = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
DATES: list[tuple[str, Any, Any, bool]] = [
    ("DateEquals", "2024-06-01T12:00:00Z", NOON, True),
    ("DateEquals", str(int(NOON.timestamp())), NOON, True),  # epoch seconds in the policy
    ("DateEquals", "2024-06-01T12:00:00Z", int(NOON.timestamp()), True),  # epoch in context
    ("DateEquals", "2024-06-01T14:00:00+02:00", "2024-06-01T12:00:00Z", True),
    ("DateEquals", "2024-06-01T12:00:00Z", datetime(2024, 6, 1, 12, 0), True),  # naive = UTC
    ("DateNotEquals", "2024-06-01T12:00:00Z", NOON, False),
    ("DateNotEquals", "2024-06-02", NOON, True),
    ("DateLessThan", "2024-06-02", NOON, True),
    ("DateLessThan", "2024-06-01T12:00:00Z", NOON, False),
    ("DateLessThanEquals", "2024-06-01T12:00:00Z", NOON, True),
    ("DateGreaterThan", "2024-06-01", NOON, True),
    ("DateGreaterThan", "2024-06-01T12:00:00Z", NOON, False),
    ("DateGreaterThanEquals", "2024-06-01T12:00:00Z", NOON, True),
    ("DateGreaterThanEquals", "2024-06-02", NOON, False),
    ("DateLessThan", "2024-06-02", "not a date", False),
    ("DateLessThan", "2024-06-02", None, False),
    ("DateLessThanIfExists", "2024-06-02", None, True),
]


@pytest.mark.parametrize(("operator", "values", "actual", "expected"), DATES)
def test_date_operators(operator: str, values: Any, actual: Any, expected: bool) -> None:
    context = {} if actual is None else {"aws:CurrentTime": actual}
    assert holds({operator: {"aws:CurrentTime": values}}, context) is expected


@pytest.mark.parametrize(
    ("values", "actual", "expected"),
    [
        ("true", True, True),
        (True, "TRUE", True),
        ("True", False, False),
        ("false", False, True),
        ("false", "false", True),
        (["true", "false"], False, True),
        ("true", "maybe", False),
        ("true", None, False),
    ],
)
def test_bool(values: Any, actual: Any, expected: bool) -> None:
    context = {} if actual is None else {"aws:SecureTransport": actual}
    assert holds({"Bool": {"aws:SecureTransport": values}}, context) is expected


@pytest.mark.parametrize(
    ("operator", "values", "actual", "expected"),
    [
        ("IpAddress", "10.0.0.0/8", "10.1.2.3", True),
        ("IpAddress", "10.0.0.0/8", "11.1.2.3", False),
        ("IpAddress", "192.0.2.7", "192.0.2.7", True),  # a bare address is a /32
        ("IpAddress", ["192.0.2.0/24", "2001:db8::/32"], "2001:db8::1", True),
        ("IpAddress", "2001:db8::/32", "10.1.2.3", False),  # families never cross
        ("IpAddress", "10.0.0.0/8", "not-an-ip", False),
        ("NotIpAddress", "10.0.0.0/8", "11.1.2.3", True),
        ("NotIpAddress", "10.0.0.0/8", "10.1.2.3", False),
        ("NotIpAddress", "10.0.0.0/8", None, True),
        ("IpAddressIfExists", "10.0.0.0/8", None, True),
        ("IpAddress", "10.0.0.0/8", None, False),
    ],
)
def test_ip_operators(operator: str, values: Any, actual: Any, expected: bool) -> None:
    context = {} if actual is None else {"aws:SourceIp": actual}
    assert holds({operator: {"aws:SourceIp": values}}, context) is expected


ROTATOR = "arn:kustos:lambda:c1:ops:function:rotate-postgres"


@pytest.mark.parametrize(
    ("operator", "values", "actual", "expected"),
    [
        ("ArnEquals", ROTATOR, ROTATOR, True),
        ("ArnEquals", "arn:kustos:lambda:c1:ops:function:rotate-*", ROTATOR, True),
        ("ArnLike", "arn:kustos:lambda:*:ops:function:*", ROTATOR, True),
        ("ArnLike", "arn:kustos:lambda:c1:dev:function:*", ROTATOR, False),
        ("ArnLike", "arn:kustos:lambda:c1:ops:function:Rotate-*", ROTATOR, False),
        ("ArnLike", "arn:kustos:lambda:c1:ops:function:*", "rotate-postgres", False),
        ("ArnLike", "*", ROTATOR, True),
        ("ArnLike", "*", "rotate-postgres", False),  # Arn operators need an ARN to compare
        ("ArnNotEquals", ROTATOR, ROTATOR, False),
        ("ArnNotLike", "arn:kustos:lambda:c1:dev:*", ROTATOR, True),
        ("ArnNotLike", "arn:kustos:lambda:c1:dev:*", None, True),
        ("ArnLike", "arn:kustos:lambda:c1:ops:function:*", None, False),
        ("ArnLikeIfExists", "arn:kustos:lambda:c1:dev:*", None, True),
    ],
)
def test_arn_operators(operator: str, values: Any, actual: Any, expected: bool) -> None:
    key = "secretsmanager:RotationLambdaARN"
    context = {} if actual is None else {key: actual}
    assert holds({operator: {key: values}}, context) is expected


@pytest.mark.parametrize(
    ("value", "actual", "expected"),
    [
        ("true", None, True),
        ("true", "x", False),
        ("false", "x", True),
        ("false", None, False),
        ("true", [], True),  # an empty list is an absent key
        (True, None, True),
    ],
)
def test_null(value: Any, actual: Any, expected: bool) -> None:
    context = {} if actual is None else {"secretsmanager:VersionStage": actual}
    assert holds({"Null": {"secretsmanager:VersionStage": value}}, context) is expected


KEYS = "aws:TagKeys"
SET_CASES: list[tuple[str, Any, Any, bool]] = [
    ("ForAllValues:StringEquals", ["env", "team"], ["env"], True),
    ("ForAllValues:StringEquals", ["env", "team"], ["env", "team"], True),
    ("ForAllValues:StringEquals", ["env", "team"], ["env", "owner"], False),
    ("ForAllValues:StringEquals", ["env"], None, True),  # vacuously true: missing key
    ("ForAllValues:StringEquals", ["env"], [], True),  # vacuously true: empty set
    ("ForAllValues:StringLike", ["team-*"], ["team-a", "team-b"], True),
    ("ForAllValues:StringNotEquals", ["secret"], ["env", "team"], True),
    ("ForAllValues:StringNotEquals", ["secret"], ["env", "secret"], False),
    ("ForAnyValue:StringEquals", ["env"], ["owner", "env"], True),
    ("ForAnyValue:StringEquals", ["env"], ["owner"], False),
    ("ForAnyValue:StringEquals", ["env"], None, False),  # missing key: false
    ("ForAnyValue:StringEquals", ["env"], [], False),
    ("ForAnyValue:StringEqualsIfExists", ["env"], None, True),
    ("ForAnyValue:StringNotEquals", ["env"], ["env", "owner"], True),
    ("ForAnyValue:StringNotEquals", ["env"], ["env"], False),
    ("ForAnyValue:StringNotEquals", ["env"], None, False),
    ("forallvalues:stringequals", ["env"], ["env"], True),  # operators are case-insensitive
    # plain operators on a multi-valued key: any match / no match
    ("StringEquals", ["env"], ["owner", "env"], True),
    ("StringNotEquals", ["env"], ["owner", "env"], False),
    ("StringNotEquals", ["env"], ["owner"], True),
]


@pytest.mark.parametrize(("operator", "values", "actual", "expected"), SET_CASES)
def test_set_operators(operator: str, values: Any, actual: Any, expected: bool) -> None:
    context = {} if actual is None else {KEYS: actual}
    assert holds({operator: {KEYS: values}}, context) is expected


def test_keys_within_an_operator_and_across_operators_are_anded() -> None:
    condition = {
        "StringEquals": {TAG: "prod", "secretsmanager:VersionStage": "AWSCURRENT"},
        "Bool": {"aws:SecureTransport": "true"},
    }
    full = {TAG: "prod", "secretsmanager:VersionStage": "AWSCURRENT", "aws:SecureTransport": True}
    assert holds(condition, full)
    for missing in full:
        assert not holds(condition, {k: v for k, v in full.items() if k != missing})


def test_condition_key_names_are_case_insensitive_but_values_are_not() -> None:
    assert holds({"StringEquals": {"SECRETSMANAGER:resourcetag/env": "prod"}}, {TAG: "prod"})
    assert holds({"StringEquals": {TAG: "prod"}}, {"secretsmanager:resourcetag/ENV": "prod"})
    assert not holds({"StringEquals": {TAG: "prod"}}, {TAG: "PROD"})


def test_aws_and_secretsmanager_resource_tag_keys_are_aliases() -> None:
    assert holds({"StringEquals": {"aws:ResourceTag/Env": "prod"}}, {TAG: "prod"})
    assert holds({"StringEquals": {TAG: "prod"}}, {"aws:ResourceTag/Env": "prod"})
    assert not holds({"StringEquals": {"aws:ResourceTag/Team": "prod"}}, {TAG: "prod"})


def test_string_operators_compare_non_string_context_values_as_text() -> None:
    assert holds(
        {"StringEquals": {"secretsmanager:ForceDeleteWithoutRecovery": "true"}},
        {"secretsmanager:ForceDeleteWithoutRecovery": True},
    )
    assert holds(
        {"StringEquals": {"secretsmanager:RecoveryWindowInDays": 7}},
        {"secretsmanager:RecoveryWindowInDays": 7},
    )


def test_policy_variables_in_conditions() -> None:
    condition = {"StringEquals": {TAG: "${aws:username}"}}
    assert holds(condition, {TAG: "alice"}, principal=USER)
    assert not holds(condition, {TAG: "bob"}, principal=USER)
    assert not holds(condition, {TAG: "alice"})  # no aws:username for a ServiceAccount
    defaulted = {"StringEquals": {TAG: "${aws:username, 'nobody'}"}}
    assert holds(defaulted, {TAG: "nobody"})
    assert holds({"StringLike": {TAG: "${kustos:ServiceAccount}-*"}}, {TAG: "app-1"})
    assert holds({"StringEquals": {TAG: "a${*}b"}}, {TAG: "a*b"})
    assert not holds({"StringLike": {TAG: "a${*}b"}}, {TAG: "axxb"})


def test_policy_variables_are_literal_text_under_version_2008() -> None:
    condition = {"StringEquals": {TAG: "${aws:username}"}}
    assert holds(condition, {TAG: "${aws:username}"}, principal=USER, version="2008-10-17")
    assert not holds(condition, {TAG: "alice"}, principal=USER, version="2008-10-17")


def test_policy_variables_in_resources() -> None:
    own = "arn:kustos:secretsmanager:c1:prod:secret:users/${aws:username}/*"
    request = Request(
        USER,
        "secretsmanager:GetSecretValue",
        "arn:kustos:secretsmanager:c1:prod:secret:users/alice/token-AbCdEf",
        principal_namespace="prod",
    )
    policy = parse_policy(
        {"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "*", "Resource": own}}
    )
    assert evaluate(request, [policy]).allowed
    bob = Request(
        request.principal.replace("alice", "bob"),
        request.action,
        request.resource,
        principal_namespace="prod",
    )
    assert not evaluate(bob, [policy]).allowed
