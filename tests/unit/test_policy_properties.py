"""Properties of the policy mechanism over generated input (hypothesis).

Whatever a policy document holds, parsing gives a Policy or a MalformedPolicyError, and
evaluating a parsed policy against whatever a request carries gives a Decision: no other
exception can escape, so one bad policy can never break authorization for anyone else.
Wildcard matching agrees with a slow reference matcher and cannot backtrack exponentially.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kustos.errors import MalformedPolicyError
from kustos.policy import Decision, Policy, PolicyKind, Request, evaluate, parse_policy
from kustos.policy.wildcard import arn_match, glob_match

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Values chosen to hit conversions at their edges: numbers a datetime cannot hold, dates at
# the ends of the calendar, addresses, booleans, wildcards and policy variables.
TRICKY = st.sampled_from(
    [
        "1e20",
        "1e12",
        "-1e20",
        "1e400",
        "1e-400",
        "9" * 400,
        "nan",
        "inf",
        "-0",
        "0x10",
        "2024-06-01T12:00:00Z",
        "0001-01-01T00:00:00+05:00",
        "9999-12-31T23:59:59-05:00",
        "10.0.0.0/8",
        "0.0.0.0/0",
        "::/0",
        "2001:db8::1",
        "300.1.1.1",
        "true",
        "FALSE",
        "",
        "*",
        "?",
        "a*b?c",
        "${aws:username}",
        "${*}",
        "${",
        "arn:*",
        "arn:kustos:iam::ns:root",
        "arn:kustos:secretsmanager:c:ns:secret:x-AbCdEf",
        "system:authenticated",
        1e20,
        10**30,
        -(10**30),
        1e308,
        0,
        True,
        False,
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    TRICKY,
)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(max_size=8) | st.sampled_from(["Statement", "Effect"]), inner, max_size=4
        )
    ),
    max_leaves=20,
)

OPERATORS = st.sampled_from(
    [
        "StringEquals",
        "StringNotEquals",
        "StringEqualsIgnoreCase",
        "StringLike",
        "StringNotLike",
        "NumericEquals",
        "NumericNotEquals",
        "NumericLessThan",
        "NumericGreaterThanEquals",
        "DateEquals",
        "DateNotEquals",
        "DateLessThan",
        "DateGreaterThan",
        "DateGreaterThanEquals",
        "Bool",
        "IpAddress",
        "NotIpAddress",
        "ArnEquals",
        "ArnLike",
        "ArnNotLike",
        "Null",
        "ForAnyValue:StringLike",
        "ForAllValues:StringEquals",
        "ForAnyValue:DateLessThan",
        "ForAllValues:NumericLessThan",
        "StringLikeIfExists",
        "DateGreaterThanIfExists",
        "NotIpAddressIfExists",
        "ForAnyValue:IpAddressIfExists",
        "Nonsense",
        "ForSome:StringLike",
    ]
)
KEYS = st.sampled_from(
    [
        "aws:CurrentTime",
        "aws:EpochTime",
        "aws:SourceIp",
        "aws:PrincipalArn",
        "aws:username",
        "aws:SecureTransport",
        "secretsmanager:VersionStage",
        "secretsmanager:Name",
        "secretsmanager:ResourceTag/team",
        "aws:ResourceTag/Team",
        "kustos:ServiceAccount",
        "bad",
    ]
)
VALUES = st.one_of(TRICKY, SCALARS, st.lists(TRICKY | SCALARS, max_size=3), JSON)
CONDITION = st.dictionaries(OPERATORS, st.dictionaries(KEYS, VALUES, max_size=3), max_size=3)
ACTIONS = st.sampled_from(["*", "secretsmanager:*", "secretsmanager:Get*", "bad", "s:?et*"])
RESOURCES = st.sampled_from(
    [
        "*",
        "arn:kustos:secretsmanager:*:ns:secret:*",
        "arn:kustos:secretsmanager:c:ns:secret:x*",
        "arn:kustos:secretsmanager:c:${aws:username}:secret:*",
        "arn:*:*:*:*:*",
        "nope",
    ]
)
PRINCIPALS = st.one_of(
    st.just("*"),
    JSON,
    st.fixed_dictionaries(
        {
            "AWS": st.sampled_from(
                [
                    "*",
                    "ns",
                    "other",
                    "arn:kustos:iam::ns:serviceaccount/app",
                    "arn:kustos:iam::ns:root",
                    "arn:kustos:iam::cluster:group/system:authenticated",
                    "arn:kustos:iam::*:root",
                ]
            )
        }
    ),
)


def _statement(
    effect: str, action: tuple[str, Any], resource: tuple[str, Any], extra: dict[str, Any]
) -> dict[str, Any]:
    return {"Effect": effect, action[0]: action[1], resource[0]: resource[1], **extra}


# Mostly well-formed statements, so that generated conditions reach the operators.
STATEMENT = st.builds(
    _statement,
    st.sampled_from(["Allow", "Allow", "Deny", "Permit"]),
    st.tuples(st.sampled_from(["Action", "NotAction"]), ACTIONS | st.lists(ACTIONS, max_size=3)),
    st.tuples(
        st.sampled_from(["Resource", "NotResource"]), RESOURCES | st.lists(RESOURCES, max_size=3)
    ),
    st.fixed_dictionaries({"Condition": CONDITION}, optional={"Sid": st.text(max_size=3) | JSON}),
)
DOCUMENT = st.fixed_dictionaries(
    {"Statement": st.lists(STATEMENT, min_size=1, max_size=3)},
    optional={"Version": st.sampled_from(["2012-10-17", "2008-10-17", "2020-01-01"])},
)
CONTEXT_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.text(max_size=12),
    TRICKY,
    st.floats(allow_nan=True, allow_infinity=True),
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(),
    st.lists(st.text(max_size=6) | TRICKY, max_size=3),
)
CONTEXT = st.dictionaries(KEYS, CONTEXT_VALUES, max_size=6)
CALLERS = st.sampled_from(
    [
        ("arn:kustos:iam::ns:serviceaccount/app", "ns"),
        ("arn:kustos:iam::other:serviceaccount/app", "other"),
        ("arn:kustos:iam::cluster:user/alice", None),
    ]
)


def _parse(document: Any, kind: PolicyKind) -> Policy | None:
    """parse_policy, with MalformedPolicyError as the only exception allowed out."""
    try:
        return parse_policy(document, kind=kind)
    except MalformedPolicyError:
        return None


@SETTINGS
@given(document=JSON)
def test_random_json_parses_or_is_malformed(document: Any) -> None:
    for kind in PolicyKind:
        _parse(document, kind)
        try:
            text = json.dumps(document)
        except ValueError:
            continue
        _parse(text, kind)


@SETTINGS
@given(
    document=DOCUMENT,
    principal_element=PRINCIPALS,
    context=CONTEXT,
    caller=CALLERS,
    now=st.datetimes(timezones=st.just(UTC)),
)
def test_any_policy_parses_or_is_malformed_and_evaluates_to_a_decision(
    document: dict[str, Any],
    principal_element: Any,
    context: dict[str, Any],
    caller: tuple[str, str | None],
    now: datetime,
) -> None:
    identity = _parse(document, PolicyKind.IDENTITY)
    statements = [{**s, "Principal": principal_element} for s in document["Statement"]]
    resource = _parse({**document, "Statement": statements}, PolicyKind.RESOURCE)
    principal, namespace = caller
    request = Request(
        principal,
        "secretsmanager:GetSecretValue",
        "arn:kustos:secretsmanager:c:ns:secret:x-AbCdEf",
        {**context, "aws:CurrentTime": now},
        principal_namespace=namespace,
        resource_namespace="ns",
        groups=("arn:kustos:iam::cluster:group/system:authenticated",),
    )
    decision = evaluate(request, [identity] if identity else [], resource)
    assert isinstance(decision, Decision)


@SETTINGS
@given(value=st.one_of(TRICKY, st.text(max_size=12), st.integers(), st.floats()))
def test_request_values_that_are_no_date_make_the_clause_false(value: Any) -> None:
    """A Date clause holds only on request values that are dates, negated or not."""
    for operator in ("DateGreaterThan", "DateNotEquals", "ForAllValues:DateLessThan"):
        policy = parse_policy(
            {
                "Version": "2012-10-17",
                "Statement": {
                    "Effect": "Allow",
                    "Action": "*",
                    "Resource": "*",
                    "Condition": {
                        operator: {"secretsmanager:VersionStage": "2024-01-01T00:00:00Z"}
                    },
                },
            }
        )
        request = Request(
            "arn:kustos:iam::ns:serviceaccount/app",
            "secretsmanager:GetSecretValue",
            "*",
            {"secretsmanager:VersionStage": value},
        )
        allowed = evaluate(request, [policy]).allowed
        try:
            number = float(str(value))
            representable = -62135596800 <= number <= 253402300799
        except ValueError:
            representable = False
        if not representable and not _iso(value):
            assert not allowed, (operator, value)


def _iso(value: Any) -> bool:
    try:
        datetime.fromisoformat(str(value).strip())
    except ValueError:
        return False
    return True


def _reference(pattern: str, value: str, *, arn: bool) -> bool:
    """A slow, obviously correct matcher with the same dialect as `kustos.policy.wildcard`."""
    tokens: list[tuple[str, bool]] = []  # (char, confined to its ARN segment)
    colons = 0
    for i, char in enumerate(pattern):
        in_prefix = arn and colons < 5
        if char == "*":
            ends = i + 1 == len(pattern) or pattern[i + 1] == ":"
            tokens.append(("*", in_prefix and not ends))
        else:
            tokens.append((char, in_prefix and char == "?"))
            colons += char == ":"

    @cache
    def match(t: int, v: int) -> bool:
        if t == len(tokens):
            return v == len(value)
        char, confined = tokens[t]
        if char == "*":
            if match(t + 1, v):
                return True
            return v < len(value) and not (confined and value[v] == ":") and match(t, v + 1)
        if v == len(value):
            return False
        if char == "?":
            return not (confined and value[v] == ":") and match(t + 1, v + 1)
        return value[v] == char and match(t + 1, v + 1)

    if arn and pattern == "*":
        return True
    return match(0, 0)


@settings(max_examples=500, deadline=None)
@given(pattern=st.text("ab:*?", max_size=14), value=st.text("ab:", max_size=14))
def test_wildcards_agree_with_the_reference_matcher(pattern: str, value: str) -> None:
    assert glob_match(pattern, value) is _reference(pattern, value, arn=False)
    assert arn_match(pattern, value) is _reference(pattern, value, arn=True)


def test_many_wildcards_do_not_backtrack_exponentially() -> None:
    # With a naive translation to `.*a.*a...`, each of these runs for hours (the suite's
    # timeout fails the test); matched atomically, each takes well under a millisecond.
    pattern = "*a" * 40 + "b"
    assert not glob_match(pattern, "a" * 500)
    assert not arn_match(
        f"arn:kustos:secretsmanager:c:{'a*' * 30}b:secret:*",
        f"arn:kustos:secretsmanager:c:{'a' * 63}:secret:x",
    )
    assert glob_match(pattern, "a" * 80 + "b")
