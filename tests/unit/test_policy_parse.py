"""Parsing policy documents, and every way one can be malformed."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from kustos.errors import MalformedPolicyError
from kustos.policy import Effect, PolicyKind, PrincipalSpec, parse_policy
from kustos.policy.operators import Family

ALLOW_ALL: dict[str, Any] = {"Effect": "Allow", "Action": "*", "Resource": "*"}
SA = "arn:kustos:iam::prod:serviceaccount/app"


def doc(*statements: dict[str, Any], version: str = "2012-10-17") -> dict[str, Any]:
    return {"Version": version, "Statement": list(statements)}


def stmt(**overrides: Any) -> dict[str, Any]:
    body = dict(ALLOW_ALL)
    for key, value in overrides.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def test_strings_or_lists_and_object_or_list_statement() -> None:
    single = parse_policy(
        {"Version": "2012-10-17", "Statement": stmt(Action="secretsmanager:GetSecretValue")}
    )
    listed = parse_policy(doc(stmt(Action=["secretsmanager:GetSecretValue"])))
    assert single.statements[0].actions == listed.statements[0].actions
    assert single.statements[0].effect is Effect.ALLOW
    assert single.kind is PolicyKind.IDENTITY


def test_json_text_and_bytes_are_accepted() -> None:
    text = json.dumps(
        doc(stmt(Sid="One", Effect="Deny", Resource=None, NotResource="arn:kustos:x:c:n:y"))
    )
    for document in (text, text.encode()):
        policy = parse_policy(document, name="p1")
        statement = policy.statements[0]
        assert (policy.name, statement.sid, statement.effect) == ("p1", "One", Effect.DENY)
        assert statement.not_resource
        assert statement.resources == ("arn:kustos:x:c:n:y",)


def test_missing_version_means_2008_and_disables_variables() -> None:
    policy = parse_policy({"Statement": [ALLOW_ALL]})
    assert policy.version == "2008-10-17"
    assert not policy.uses_variables
    assert parse_policy(doc(ALLOW_ALL)).uses_variables


def test_resource_policy_principals_are_normalised() -> None:
    policy = parse_policy(
        doc(
            stmt(Principal={"AWS": ["dev", SA]}),
            stmt(Principal={"Kubernetes": "arn:kustos:iam::cluster:group/ops"}),
            stmt(Principal="*"),
            stmt(NotPrincipal={"AWS": ["*"]}),
        ),
        kind=PolicyKind.RESOURCE,
    )
    principals = [s.principal for s in policy.statements]
    assert principals[0] == PrincipalSpec(False, ("arn:kustos:iam::dev:root", SA))
    assert principals[1] == PrincipalSpec(False, ("arn:kustos:iam::cluster:group/ops",))
    assert principals[2] == PrincipalSpec(True)
    assert principals[3] == PrincipalSpec(True)
    assert policy.statements[3].not_principal


def test_condition_values_are_converted_at_parse_time() -> None:
    policy = parse_policy(
        doc(stmt(Condition={"ForAnyValue:NumericLessThanIfExists": {"kustos:Count": ["1", 2]}}))
    )
    (clause,) = policy.statements[0].conditions
    assert clause.operator.family is Family.NUMERIC
    assert clause.operator.set_operator == "ForAnyValue"
    assert clause.operator.if_exists
    assert clause.values == (Decimal(1), Decimal(2))


MALFORMED: list[tuple[Any, str]] = [
    ("{not json", "not valid JSON"),
    ("[]", "must be a JSON object"),
    ('{"Version": "2012-10-17", "Version": "2012-10-17", "Statement": []}', "Duplicate key"),
    ('{"Statement": {"Effect": "Allow", "Action": NaN, "Resource": "*"}}', "NaN"),
    ({"Version": "2020-01-01", "Statement": [ALLOW_ALL]}, "Version must be"),
    ({"Version": "2012-10-17"}, "must contain a Statement"),
    (doc(), "non-empty list"),
    ({"Version": "2012-10-17", "Statement": "Allow"}, "Statement must be an object"),
    ({"Version": "2012-10-17", "Statement": ["x"]}, "Statement[0] must be an object"),
    ({"Version": "2012-10-17", "Statement": [ALLOW_ALL], "Extra": 1}, "top-level"),
    ({"Version": "2012-10-17", "Statement": [ALLOW_ALL], "Id": 7}, "Id must be a string"),
    (doc(stmt(Actions="*")), "unsupported element(s): Actions"),
    (doc(stmt(Effect="allow")), "Effect must be 'Allow' or 'Deny'"),
    (doc(stmt(Effect=None)), "Effect must be"),
    (doc(stmt(NotAction="kms:*")), "exactly one of Action or NotAction"),
    (doc(stmt(Action=None)), "exactly one of Action or NotAction"),
    (doc(stmt(Action=[])), "must not be an empty list"),
    (doc(stmt(Action=[1])), "non-empty strings"),
    (doc(stmt(Action="")), "non-empty strings"),
    (doc(stmt(Action="GetSecretValue")), "must be '*' or 'service:action'"),
    (doc(stmt(Action="secretsmanager:")), "must be '*' or 'service:action'"),
    (doc(stmt(Resource=None)), "exactly one of Resource or NotResource"),
    (doc(stmt(Resource="my-secret")), "must be '*' or an ARN"),
    (doc(stmt(Resource="arn:kustos:secretsmanager")), "must be '*' or an ARN"),
    (doc(stmt(Sid=3)), "Sid must be a string"),
    (doc(stmt(Sid="A"), stmt(Sid="A")), "Sids must be unique"),
    (doc(stmt(Principal="*")), "identity policies must not contain Principal"),
    (doc(stmt(Condition=[])), "Condition must be an object"),
    (doc(stmt(Condition={"StringMatches": {"aws:username": "a"}})), "not supported"),
    (doc(stmt(Condition={"ForSomeValues:StringLike": {"aws:TagKeys": "a"}})), "unknown prefix"),
    (doc(stmt(Condition={"NullIfExists": {"aws:username": "true"}})), "Null takes no"),
    (doc(stmt(Condition={"ForAllValues:Null": {"aws:TagKeys": "true"}})), "Null takes no"),
    (doc(stmt(Condition={"StringEquals": {}})), "must map condition keys"),
    (doc(stmt(Condition={"StringEquals": "x"})), "must map condition keys"),
    (doc(stmt(Condition={"StringEquals": {"username": "a"}})), "prefixed by a service"),
    (doc(stmt(Condition={"StringEquals": {"aws:username": []}})), "is empty"),
    (doc(stmt(Condition={"StringEquals": {"aws:username": [None]}})), "scalars"),
    (doc(stmt(Condition={"StringEquals": {"aws:username": {"a": 1}}})), "scalars"),
    (doc(stmt(Condition={"NumericEquals": {"kustos:N": "ten"}})), "not a valid Numeric"),
    (doc(stmt(Condition={"NumericEquals": {"kustos:N": True}})), "not a valid Numeric"),
    (doc(stmt(Condition={"NumericEquals": {"kustos:N": "Infinity"}})), "not a valid Numeric"),
    (doc(stmt(Condition={"DateLessThan": {"aws:CurrentTime": "tomorrow"}})), "valid Date"),
    (doc(stmt(Condition={"Bool": {"aws:SecureTransport": "yes"}})), "valid Bool"),
    (doc(stmt(Condition={"Null": {"aws:username": 1}})), "valid Null"),
    (doc(stmt(Condition={"IpAddress": {"aws:SourceIp": "10.0.0.300/8"}})), "valid IpAddress"),
    (doc(stmt(Condition={"IpAddress": {"aws:SourceIp": 10}})), "valid IpAddress"),
]


@pytest.mark.parametrize(("document", "message"), MALFORMED)
def test_malformed_identity_policies(document: Any, message: str) -> None:
    with pytest.raises(MalformedPolicyError) as caught:
        parse_policy(document)
    assert message in caught.value.message
    assert caught.value.aws_code == "MalformedPolicyDocumentException"


MALFORMED_RESOURCE: list[tuple[Any, str]] = [
    (doc(ALLOW_ALL), "need exactly one of Principal or NotPrincipal"),
    (doc(stmt(Principal="*", NotPrincipal="*")), "need exactly one of Principal"),
    (doc(stmt(Principal="everyone")), 'must be "*" or an object'),
    (doc(stmt(Principal={})), 'must be "*" or an object'),
    (doc(stmt(Principal={"Service": "rotation"})), "Principal type 'Service'"),
    (doc(stmt(Principal={"AWS": []})), "must not be an empty list"),
    (doc(stmt(Principal={"AWS": [5]})), "non-empty strings"),
    (doc(stmt(Principal={"AWS": "arn:kustos:iam::prod:serviceaccount/*"})), "wildcards"),
    (doc(stmt(Principal={"AWS": "arn:kustos:iam::prod:role/x"})), "neither a namespace"),
    (doc(stmt(Principal={"AWS": "Not_A_Namespace"})), "neither a namespace"),
    (doc(stmt(Principal={"AWS": "arn:aws:iam::123456789012:root"})), "neither a namespace"),
]


@pytest.mark.parametrize(("document", "message"), MALFORMED_RESOURCE)
def test_malformed_resource_policies(document: Any, message: str) -> None:
    with pytest.raises(MalformedPolicyError) as caught:
        parse_policy(document, kind=PolicyKind.RESOURCE)
    assert message in caught.value.message


def test_messages_name_the_statement_and_its_sid() -> None:
    with pytest.raises(MalformedPolicyError, match=r"Statement\[1\] \(Sid 'Second'\)"):
        parse_policy(doc(ALLOW_ALL, stmt(Sid="Second", Effect="Maybe")))
