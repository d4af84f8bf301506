"""Evaluation: the seed's example policies, deny precedence, NotAction/NotResource,
principals, cross-namespace access and the statements a Decision names."""

from __future__ import annotations

from typing import Any

import pytest

from kustos.policy import (
    DecisionKind,
    Effect,
    Policy,
    PolicyKind,
    Request,
    StatementRef,
    evaluate,
    group_arn,
    namespace_root_arn,
    parse_policy,
    principal_namespace,
    request_context,
    serviceaccount_arn,
    user_arn,
)
from kustos.policy.context import RequestContext

GET = "secretsmanager:GetSecretValue"
DESCRIBE = "secretsmanager:DescribeSecret"
PROD_APP = serviceaccount_arn("prod", "app")
DEV_CI = serviceaccount_arn("dev", "ci")


def secret(name: str, namespace: str = "demo", cluster: str = "us-east-2") -> str:
    return f"arn:kustos:secretsmanager:{cluster}:{namespace}:secret:{name}-AbCdEf"


def identity(*statements: dict[str, Any], name: str = "id") -> Policy:
    return parse_policy({"Version": "2012-10-17", "Statement": list(statements)}, name=name)


def resource(*statements: dict[str, Any], name: str = "rp") -> Policy:
    return parse_policy(
        {"Version": "2012-10-17", "Statement": list(statements)},
        kind=PolicyKind.RESOURCE,
        name=name,
    )


# The seed's first example, verbatim except for the ARN (region -> cluster, account -> namespace).
SEED_PREFIX = """{
  "Version": "2012-10-17",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
      "Resource": "arn:kustos:secretsmanager:us-east-2:demo:secret:My_Test_Secret/*"
    }
  ]
}"""

# The seed's second example, verbatim (placeholders included).
SEED_TAGS = """{
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["secretsmanager:Describe*", "secretsmanager:GetSecretValue"],
            "Resource": "*",
            "Condition": {
                "StringEqualsIgnoreCase": {
                    "secretsmanager:ResourceTag/<TAG_KEY>": "<TAG_VALUE>"
                }
            }
        }
    ]
}"""

DEMO_APP = serviceaccount_arn("demo", "app")


@pytest.mark.parametrize(
    ("action", "target", "expected"),
    [
        (GET, secret("My_Test_Secret/MySQL"), True),
        (DESCRIBE, secret("My_Test_Secret/MySQL"), True),
        (GET, secret("My_Test_Secret/deep/er/MySQL"), True),
        ("secretsmanager:PutSecretValue", secret("My_Test_Secret/MySQL"), False),
        (GET, secret("Other_Secret/MySQL"), False),
        (GET, secret("My_Test_Secret"), False),  # the prefix is "My_Test_Secret/"
        (GET, secret("My_Test_Secret/MySQL", namespace="other"), False),
        (GET, secret("My_Test_Secret/MySQL", cluster="eu-west-1"), False),
    ],
)
def test_seed_name_prefix_policy(action: str, target: str, expected: bool) -> None:
    policy = parse_policy(SEED_PREFIX, name="demo")
    decision = evaluate(Request(DEMO_APP, action, target), [policy])
    assert decision.allowed is expected
    if expected:
        assert decision.statements == (
            StatementRef("demo", PolicyKind.IDENTITY, 0, None, Effect.ALLOW),
        )


@pytest.mark.parametrize(
    ("action", "tags", "expected"),
    [
        (GET, {"secretsmanager:ResourceTag/<TAG_KEY>": "<TAG_VALUE>"}, True),
        (DESCRIBE, {"secretsmanager:ResourceTag/<TAG_KEY>": "<tag_value>"}, True),
        (
            "secretsmanager:DescribeSecretVersions",
            {"aws:ResourceTag/<TAG_KEY>": "<TAG_VALUE>"},
            True,
        ),
        (
            "secretsmanager:ListSecretVersionIds",
            {"secretsmanager:ResourceTag/<TAG_KEY>": "<TAG_VALUE>"},
            False,
        ),
        (GET, {"secretsmanager:ResourceTag/<TAG_KEY>": "other"}, False),
        (GET, {"secretsmanager:ResourceTag/<OTHER_KEY>": "<TAG_VALUE>"}, False),
        (GET, {}, False),
    ],
)
def test_seed_tag_policy_verbatim(action: str, tags: dict[str, str], expected: bool) -> None:
    policy = parse_policy(SEED_TAGS)
    decision = evaluate(Request(DEMO_APP, action, secret("any"), tags), [policy])
    assert decision.allowed is expected


def test_seed_tag_policy_with_a_real_tag() -> None:
    policy = parse_policy(
        SEED_TAGS.replace("<TAG_KEY>", "Environment").replace("<TAG_VALUE>", "Production")
    )
    tagged = Request(
        DEMO_APP, GET, secret("db"), {"secretsmanager:ResourceTag/Environment": "production"}
    )
    assert evaluate(tagged, [policy]).allowed
    other = Request(
        DEMO_APP, GET, secret("db"), {"secretsmanager:ResourceTag/Environment": "staging"}
    )
    assert evaluate(other, [policy]).kind is DecisionKind.IMPLICIT_DENY


def test_default_is_implicit_deny() -> None:
    decision = evaluate(Request(PROD_APP, GET, secret("db", "prod")))
    assert (decision.allowed, decision.kind, decision.statements) == (
        False,
        DecisionKind.IMPLICIT_DENY,
        (),
    )


ALLOW_ALL = {"Sid": "All", "Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"}
DENY_PROD = {
    "Sid": "NoProd",
    "Effect": "Deny",
    "Action": GET,
    "Resource": "arn:kustos:secretsmanager:*:prod:secret:prod/*",
}


def test_explicit_deny_beats_allow_in_any_order_and_is_named() -> None:
    request = Request(PROD_APP, GET, secret("prod/payments/db", "prod"))
    for statements in ((ALLOW_ALL, DENY_PROD), (DENY_PROD, ALLOW_ALL)):
        decision = evaluate(request, [identity(*statements, name="team")])
        assert decision.kind is DecisionKind.EXPLICIT_DENY
        assert not decision.allowed
        (ref,) = decision.statements
        assert (ref.policy, ref.sid, ref.effect) == ("team", "NoProd", Effect.DENY)
        assert "team" in str(ref)
        assert "NoProd" in str(ref)
    # the deny is narrow: other actions and other names are still allowed
    assert evaluate(
        Request(PROD_APP, DESCRIBE, request.resource), [identity(ALLOW_ALL, DENY_PROD)]
    ).allowed
    other = Request(PROD_APP, GET, secret("staging/db", "prod"))
    assert evaluate(other, [identity(ALLOW_ALL, DENY_PROD)]).allowed


def test_deny_in_resource_policy_beats_identity_allow_and_vice_versa() -> None:
    request = Request(PROD_APP, GET, secret("db", "prod"))
    deny_rp = resource({"Effect": "Deny", "Principal": "*", "Action": "*", "Resource": "*"})
    assert evaluate(request, [identity(ALLOW_ALL)], deny_rp).kind is DecisionKind.EXPLICIT_DENY
    allow_rp = resource(
        {"Effect": "Allow", "Principal": {"AWS": PROD_APP}, "Action": "*", "Resource": "*"}
    )
    deny_id = identity({"Effect": "Deny", "Action": "*", "Resource": "*"})
    assert evaluate(request, [deny_id], allow_rp).kind is DecisionKind.EXPLICIT_DENY


def test_all_matching_denies_are_reported() -> None:
    deny_all = {"Sid": "Everything", "Effect": "Deny", "Action": "*", "Resource": "*"}
    decision = evaluate(
        Request(PROD_APP, GET, secret("prod/x", "prod")), [identity(DENY_PROD, deny_all)]
    )
    assert [ref.sid for ref in decision.statements] == ["NoProd", "Everything"]


def test_not_action() -> None:
    policy = identity(
        {"Effect": "Allow", "NotAction": ["secretsmanager:Delete*", "kms:*"], "Resource": "*"}
    )
    target = secret("db", "prod")
    assert evaluate(Request(PROD_APP, GET, target), [policy]).allowed
    assert not evaluate(Request(PROD_APP, "secretsmanager:DeleteSecret", target), [policy]).allowed
    assert not evaluate(Request(PROD_APP, "kms:Decrypt", target), [policy]).allowed


def test_not_resource_deny_fences_everything_outside_a_prefix() -> None:
    fence = {
        "Effect": "Deny",
        "Action": "*",
        "NotResource": "arn:kustos:secretsmanager:*:prod:secret:payments/*",
    }
    policy = identity(ALLOW_ALL, fence)
    assert evaluate(Request(PROD_APP, GET, secret("payments/db", "prod")), [policy]).allowed
    denied = evaluate(Request(PROD_APP, GET, secret("billing/db", "prod")), [policy])
    assert denied.kind is DecisionKind.EXPLICIT_DENY


def test_actions_are_case_insensitive_resources_are_not() -> None:
    policy = parse_policy(SEED_PREFIX)
    assert evaluate(
        Request(DEMO_APP, "SecretsManager:getsecretvalue", secret("My_Test_Secret/a")), [policy]
    ).allowed
    assert not evaluate(Request(DEMO_APP, GET, secret("my_test_secret/a")), [policy]).allowed


def test_condition_failure_means_the_statement_does_not_apply() -> None:
    deny_insecure = {
        "Effect": "Deny",
        "Action": "*",
        "Resource": "*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }
    policy = identity(ALLOW_ALL, deny_insecure)
    target = secret("db", "prod")
    assert evaluate(Request(PROD_APP, GET, target, {"aws:SecureTransport": True}), [policy]).allowed
    insecure = Request(PROD_APP, GET, target, {"aws:SecureTransport": False})
    assert evaluate(insecure, [policy]).kind is DecisionKind.EXPLICIT_DENY


# ---- resource policies and principals ---------------------------------------------------


def grant(principal: Any, **extra: Any) -> dict[str, Any]:
    return {
        "Sid": "Grant",
        "Effect": "Allow",
        "Principal": principal,
        "Action": GET,
        "Resource": "*",
        **extra,
    }


PROD_DB = secret("db", "prod")


def test_same_namespace_resource_policy_naming_the_caller_allows_alone() -> None:
    decision = evaluate(Request(PROD_APP, GET, PROD_DB), [], resource(grant({"AWS": PROD_APP})))
    assert decision.allowed
    assert decision.statements[0].kind is PolicyKind.RESOURCE
    assert not evaluate(
        Request(serviceaccount_arn("prod", "other"), GET, PROD_DB),
        [],
        resource(grant({"AWS": PROD_APP})),
    ).allowed


def test_same_namespace_root_principal_only_delegates_to_identity_policies() -> None:
    rp = resource(grant({"AWS": "prod"}))
    alone = evaluate(Request(PROD_APP, GET, PROD_DB), [], rp)
    assert alone.kind is DecisionKind.IMPLICIT_DENY
    assert "delegates" in alone.reason
    assert alone.statements
    assert alone.statements[0].sid == "Grant"
    assert evaluate(Request(PROD_APP, GET, PROD_DB), [identity(ALLOW_ALL)], rp).allowed


def test_identity_policy_alone_allows_in_the_same_namespace() -> None:
    decision = evaluate(
        Request(PROD_APP, GET, PROD_DB), [identity(ALLOW_ALL)], resource(grant({"AWS": DEV_CI}))
    )
    assert decision.allowed
    assert [r.kind for r in decision.statements] == [PolicyKind.IDENTITY]


@pytest.mark.parametrize(
    "principal",
    [{"AWS": DEV_CI}, {"AWS": "dev"}, {"AWS": ["dev"]}, {"Kubernetes": DEV_CI}, "*", {"AWS": "*"}],
)
def test_cross_namespace_needs_both_sides(principal: Any) -> None:
    request = Request(DEV_CI, GET, PROD_DB)
    rp = resource(grant(principal))
    both = evaluate(request, [identity(ALLOW_ALL, name="ci")], rp)
    assert both.allowed
    assert {r.kind for r in both.statements} == {PolicyKind.IDENTITY, PolicyKind.RESOURCE}
    only_rp = evaluate(request, [], rp)
    assert not only_rp.allowed
    assert "no identity policy" in only_rp.reason
    only_id = evaluate(request, [identity(ALLOW_ALL)], None)
    assert not only_id.allowed
    assert "resource policy does not allow" in only_id.reason
    assert only_id.statements[0].kind is PolicyKind.IDENTITY


def test_cross_namespace_resource_policy_must_name_the_callers_namespace() -> None:
    request = Request(DEV_CI, GET, PROD_DB)
    for principal in ({"AWS": "staging"}, {"AWS": serviceaccount_arn("dev", "other")}):
        assert not evaluate(request, [identity(ALLOW_ALL)], resource(grant(principal))).allowed


def test_cross_namespace_resource_policy_action_must_match_too() -> None:
    rp = resource(grant({"AWS": "dev"}))
    decision = evaluate(
        Request(DEV_CI, "secretsmanager:PutSecretValue", PROD_DB), [identity(ALLOW_ALL)], rp
    )
    assert not decision.allowed


def test_group_principals_name_their_members() -> None:
    alice = user_arn("alice")
    rp = resource(grant({"AWS": group_arn("ops")}))
    request = Request(alice, GET, PROD_DB, principal_namespace="prod", groups=(group_arn("ops"),))
    assert evaluate(request, [], rp).allowed
    outsider = Request(alice, GET, PROD_DB, principal_namespace="prod", groups=(group_arn("dev"),))
    assert not evaluate(outsider, [], rp).allowed


def test_not_principal_deny_denies_everyone_else() -> None:
    rp = resource(
        grant("*"),
        {
            "Sid": "OnlyApp",
            "Effect": "Deny",
            "NotPrincipal": {"AWS": PROD_APP},
            "Action": "*",
            "Resource": "*",
        },
    )
    assert evaluate(Request(PROD_APP, GET, PROD_DB), [], rp).allowed
    other = evaluate(Request(serviceaccount_arn("prod", "x"), GET, PROD_DB), [], rp)
    assert other.kind is DecisionKind.EXPLICIT_DENY
    assert other.statements[0].sid == "OnlyApp"


def test_not_principal_allow_applies_to_everyone_not_listed() -> None:
    rp = resource(
        {"Effect": "Allow", "NotPrincipal": {"AWS": PROD_APP}, "Action": GET, "Resource": "*"}
    )
    assert evaluate(Request(serviceaccount_arn("prod", "x"), GET, PROD_DB), [], rp).allowed
    assert not evaluate(Request(PROD_APP, GET, PROD_DB), [], rp).allowed


def test_principal_account_condition_narrows_a_star_principal() -> None:
    rp = resource(grant("*", Condition={"StringEquals": {"aws:PrincipalAccount": "dev"}}))
    ci_policy = identity(ALLOW_ALL)
    assert evaluate(Request(DEV_CI, GET, PROD_DB), [ci_policy], rp).allowed
    stranger = serviceaccount_arn("staging", "x")
    assert not evaluate(Request(stranger, GET, PROD_DB), [ci_policy], rp).allowed


def test_users_and_groups_have_no_principal_account() -> None:
    """A user is bound by a namespace's policies, but is no member of that namespace."""
    rp = resource(grant("*", Condition={"StringEquals": {"aws:PrincipalAccount": "prod"}}))
    for user in (user_arn("mallory"), "arn:kustos:iam::cluster:group/devs"):
        spoof = Request(
            user, GET, PROD_DB, {"aws:PrincipalAccount": "prod"}, principal_namespace="prod"
        )
        assert RequestContext(request_context(spoof)).get("aws:PrincipalAccount") is None
        assert not evaluate(spoof, [], rp).allowed
    assert evaluate(Request(PROD_APP, GET, PROD_DB), [], rp).allowed
    # ... so "deny everyone outside prod" denies users too
    fence = resource(
        grant("*"),
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "*",
            "Resource": "*",
            "Condition": {"StringNotEquals": {"aws:PrincipalAccount": "prod"}},
        },
    )
    alice = Request(user_arn("alice"), GET, PROD_DB, principal_namespace="prod")
    assert evaluate(alice, [], fence).kind is DecisionKind.EXPLICIT_DENY
    assert evaluate(Request(PROD_APP, GET, PROD_DB), [], fence).allowed


def test_derived_context_keys_cannot_be_spoofed() -> None:
    rp = resource(grant("*", Condition={"StringEquals": {"aws:PrincipalArn": DEV_CI}}))
    spoof = Request(serviceaccount_arn("dev", "evil"), GET, PROD_DB, {"aws:principalarn": DEV_CI})
    assert not evaluate(spoof, [identity(ALLOW_ALL)], rp).allowed
    context = request_context(spoof)
    assert context["aws:PrincipalArn"] == spoof.principal
    assert context["aws:PrincipalAccount"] == "dev"
    assert context["aws:ResourceAccount"] == "prod"
    assert context["kustos:ServiceAccount"] == "evil"
    assert "aws:principalarn" not in context
    assert request_context(Request(user_arn("bob"), GET, PROD_DB))["aws:username"] == "bob"


def test_requests_without_a_secret_are_decided_by_identity_policies() -> None:
    list_secrets = Request(DEV_CI, "secretsmanager:ListSecrets", "*")
    assert evaluate(list_secrets, [identity(ALLOW_ALL)]).allowed
    assert not evaluate(list_secrets, []).allowed


def test_policies_of_the_wrong_kind_are_refused() -> None:
    rp = resource(grant("*"))
    with pytest.raises(ValueError, match="not an identity policy"):
        evaluate(Request(PROD_APP, GET, PROD_DB), [rp])
    with pytest.raises(ValueError, match="not a resource policy"):
        evaluate(Request(PROD_APP, GET, PROD_DB), [], identity(ALLOW_ALL))


def test_principal_arn_helpers() -> None:
    assert PROD_APP == "arn:kustos:iam::prod:serviceaccount/app"
    assert user_arn("alice") == "arn:kustos:iam::cluster:user/alice"
    assert group_arn("ops") == "arn:kustos:iam::cluster:group/ops"
    assert namespace_root_arn("prod") == "arn:kustos:iam::prod:root"
    assert principal_namespace(PROD_APP) == "prod"
    assert principal_namespace(PROD_DB) == "prod"
    with pytest.raises(ValueError, match="not an ARN"):
        principal_namespace("prod/app")


def test_possible_assumes_allow_conditions_hold_and_conditional_denies_do_not() -> None:
    conditional_allow = identity(
        {
            "Effect": "Allow",
            "Action": GET,
            "Resource": "*",
            "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
        }
    )
    request = Request(PROD_APP, GET, PROD_DB)
    assert not evaluate(request, [conditional_allow]).allowed
    assert evaluate(request, [conditional_allow], possible=True).allowed
    conditional_deny = identity(
        {
            "Effect": "Deny",
            "Action": GET,
            "Resource": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
        name="guard",
    )
    assert evaluate(request, [conditional_allow, conditional_deny], possible=True).allowed
    deny = identity({"Effect": "Deny", "Action": GET, "Resource": "*"}, name="deny")
    decision = evaluate(request, [conditional_allow, deny], possible=True)
    assert decision.kind is DecisionKind.EXPLICIT_DENY
    # Action, Resource and Principal still decide
    other = Request(PROD_APP, DESCRIBE, PROD_DB)
    assert not evaluate(other, [conditional_allow], possible=True).allowed
    stranger = Request(DEV_CI, GET, PROD_DB)
    assert not evaluate(stranger, [conditional_allow], possible=True).allowed  # cross-namespace
