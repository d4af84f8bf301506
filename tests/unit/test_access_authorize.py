"""Authorization over policy objects as the API server returns them (listing faked, no I/O).

The same rules run against the real API server and real CRDs in
tests/integration/test_access.py; here they are exercised quickly and exhaustively.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.unit.fakes import stand_in

from kustos.errors import AccessDeniedError
from kustos.kube.events import ObjectRef
from kustos.models.identity import Principal
from kustos.models.reasons import EventType, Reason
from kustos.models.records import SecretRecord
from kustos.operator.policies import announce, policy_status
from kustos.policy import DecisionKind
from kustos.services.access.authorize import AccessService
from kustos.services.access.denials import DenialEvents
from kustos.services.access.keys import AccessKeyService
from kustos.services.access.policies import PolicyIndex
from kustos.services.access.tokens import TokenAuthenticator, TokenReviewer

T0 = datetime(2030, 1, 1, tzinfo=UTC)
APP = Principal.service_account(
    "team-a",
    "app",
    groups=("system:serviceaccounts", "system:serviceaccounts:team-a", "system:authenticated"),
)
ADMIN = Principal.user("kubernetes-admin", groups=("system:masters", "system:authenticated"))

# The two example documents of the seed, verbatim but for the ARN (Kustos's form).
SEED_PREFIX = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
            "Resource": "arn:kustos:secretsmanager:test:team-a:secret:My_Test_Secret/*",
        }
    ],
}
SEED_TAGS = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["secretsmanager:Describe*", "secretsmanager:GetSecretValue"],
            "Resource": "*",
            "Condition": {
                "StringEqualsIgnoreCase": {"secretsmanager:ResourceTag/team": "Payments"}
            },
        }
    ],
}


def secret(
    name: str,
    ns: str = "team-a",
    tags: dict[str, str] | None = None,
    resource_policy: dict[str, Any] | None = None,
) -> SecretRecord:
    return SecretRecord(
        arn=f"arn:kustos:secretsmanager:test:{ns}:secret:{name}-AbCdEf",
        namespace=ns,
        name=name,
        created_at=T0,
        updated_at=T0,
        tags=tags or {},
        object_name=name.replace("/", "-").lower(),
        resource_policy=json.dumps(resource_policy) if resource_policy else None,
    )


def sap(
    name: str, ns: str, subjects: list[dict[str, str]], policy: dict[str, Any]
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": f"{ns}-{name}",
            "resourceVersion": "1",
            "generation": 1,
        },
        "spec": {"subjects": subjects, "policy": policy},
    }


def csap(name: str, subjects: list[dict[str, str]], policy: dict[str, Any]) -> dict[str, Any]:
    obj = sap(name, "", subjects, policy)
    del obj["metadata"]["namespace"]
    return obj


class Sink:
    def __init__(self) -> None:
        self.events: list[tuple[ObjectRef, Reason, str, EventType]] = []

    def emit(
        self, ref: ObjectRef, reason: Reason, message: str, type: EventType = EventType.NORMAL
    ) -> None:
        self.events.append((ref, reason, message, type))


class World:
    def __init__(self) -> None:
        self.namespaced: list[dict[str, Any]] = []
        self.cluster: list[dict[str, Any]] = []
        self.sink = Sink()
        self.denials = DenialEvents(self.sink, lambda ns, name: f"uid-{ns}-{name}")
        self.access = AccessService(
            TokenAuthenticator(stand_in(TokenReviewer, None)),
            stand_in(AccessKeyService, None),
            PolicyIndex(lambda: (self.namespaced, self.cluster), ttl=0),
            region="test",
            denials=self.denials,
        )

    def allowed(
        self, who: Principal, action: str, record: SecretRecord | None, **context: Any
    ) -> bool:
        return self.access.simulate(who, action, record, context).allowed


@pytest.fixture
def world() -> World:
    return World()


SA_APP = [{"kind": "ServiceAccount", "name": "app"}]


def test_nothing_is_allowed_by_default_not_even_cluster_admins(world: World) -> None:
    record = secret("My_Test_Secret/MySQL")
    assert not world.allowed(APP, "GetSecretValue", record)
    assert not world.allowed(ADMIN, "GetSecretValue", record)
    world.cluster.append(
        csap(
            "admins",
            [{"kind": "Group", "name": "system:masters"}],
            {
                "Version": "2012-10-17",
                "Statement": {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"},
            },
        )
    )
    assert world.allowed(ADMIN, "GetSecretValue", record)
    assert not world.allowed(APP, "GetSecretValue", record)


def test_seed_prefix_policy(world: World) -> None:
    world.namespaced.append(sap("readers", "team-a", SA_APP, SEED_PREFIX))
    assert world.allowed(APP, "secretsmanager:GetSecretValue", secret("My_Test_Secret/MySQL"))
    assert world.allowed(APP, "DescribeSecret", secret("My_Test_Secret/MySQL"))
    assert not world.allowed(APP, "PutSecretValue", secret("My_Test_Secret/MySQL"))
    assert not world.allowed(APP, "GetSecretValue", secret("Other/MySQL"))
    other = Principal.service_account("team-a", "other")
    assert not world.allowed(other, "GetSecretValue", secret("My_Test_Secret/MySQL"))


def test_seed_tag_policy(world: World) -> None:
    world.namespaced.append(sap("tagged", "team-a", SA_APP, SEED_TAGS))
    assert world.allowed(APP, "GetSecretValue", secret("x", tags={"team": "payments"}))
    assert world.allowed(APP, "DescribeSecret", secret("x", tags={"team": "PAYMENTS"}))
    assert not world.allowed(APP, "GetSecretValue", secret("x", tags={"team": "ops"}))
    assert not world.allowed(APP, "GetSecretValue", secret("x"))
    assert not world.allowed(APP, "DeleteSecret", secret("x", tags={"team": "payments"}))


def test_explicit_deny_wins_and_is_named(world: World) -> None:
    world.namespaced.append(
        sap(
            "all",
            "team-a",
            SA_APP,
            {
                "Version": "2012-10-17",
                "Statement": {"Effect": "Allow", "Action": "secretsmanager:*", "Resource": "*"},
            },
        )
    )
    world.cluster.append(
        csap(
            "no-prod",
            [{"kind": "Group", "name": "system:authenticated"}],
            {
                "Version": "2012-10-17",
                "Statement": {
                    "Sid": "NoProd",
                    "Effect": "Deny",
                    "Action": "secretsmanager:GetSecretValue",
                    "Resource": "*",
                    "Condition": {"StringLike": {"secretsmanager:Name": "prod/*"}},
                },
            },
        )
    )
    assert world.allowed(APP, "GetSecretValue", secret("dev/db"))
    decision = world.access.simulate(APP, "GetSecretValue", secret("prod/db"))
    assert decision.kind is DecisionKind.EXPLICIT_DENY
    assert [(s.policy, s.sid) for s in decision.statements] == [
        ("ClusterSecretAccessPolicy no-prod", "NoProd")
    ]
    with pytest.raises(AccessDeniedError, match=r"with an explicit deny in an? identity-based"):
        world.access.authorize(APP, "GetSecretValue", secret("prod/db"), {})


def test_cross_namespace_needs_both_sides(world: World) -> None:
    caller = Principal.service_account("team-b", "reader")
    target = secret("shared/db", ns="team-a")
    identity = {
        "Version": "2012-10-17",
        "Statement": {
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": target.arn,
        },
    }
    resource = {
        "Version": "2012-10-17",
        "Statement": {
            "Effect": "Allow",
            "Principal": {"AWS": caller.arn},
            "Action": "secretsmanager:GetSecretValue",
            "Resource": "*",
        },
    }
    # resource policy alone: not enough
    assert not world.allowed(
        caller, "GetSecretValue", secret("shared/db", resource_policy=resource)
    )
    # identity policy alone: not enough, and the message says which side is missing
    world.namespaced.append(
        sap("cross", "team-b", [{"kind": "ServiceAccount", "name": "reader"}], identity)
    )
    with pytest.raises(AccessDeniedError, match="no resource-based policy allows"):
        world.access.authorize(caller, "GetSecretValue", target, {})
    # both
    assert world.allowed(caller, "GetSecretValue", secret("shared/db", resource_policy=resource))
    # a team-a policy cannot grant team-b's ServiceAccount: it is invalid and ignored
    world.namespaced[:] = [
        sap(
            "sneaky",
            "team-a",
            [{"kind": "ServiceAccount", "name": "reader", "namespace": "team-b"}],
            identity,
        )
    ]
    assert not world.allowed(
        caller, "GetSecretValue", secret("shared/db", resource_policy=resource)
    )
    assert [b.label for b in world.access.policies.invalid()] == [
        "SecretAccessPolicy team-a/sneaky"
    ]


def test_same_namespace_resource_policy_alone_allows(world: World) -> None:
    resource = {
        "Version": "2012-10-17",
        "Statement": {
            "Effect": "Allow",
            "Principal": {"AWS": APP.arn},
            "Action": "secretsmanager:GetSecretValue",
            "Resource": "*",
        },
    }
    assert world.allowed(APP, "GetSecretValue", secret("db", resource_policy=resource))


def test_user_policies_apply_in_their_own_namespace_only(world: World) -> None:
    alice = Principal.user("alice", groups=("devs",))
    world.namespaced.append(
        sap(
            "devs",
            "team-a",
            [{"kind": "Group", "name": "devs"}],
            {
                "Version": "2012-10-17",
                "Statement": {
                    "Effect": "Allow",
                    "Action": "secretsmanager:GetSecretValue",
                    "Resource": "*",
                },
            },
        )
    )
    assert world.allowed(alice, "GetSecretValue", secret("db", ns="team-a"))
    assert not world.allowed(alice, "GetSecretValue", secret("db", ns="team-b"))


def test_conditions_from_the_request(world: World) -> None:
    world.namespaced.append(
        sap(
            "net",
            "team-a",
            SA_APP,
            {
                "Version": "2012-10-17",
                "Statement": {
                    "Effect": "Allow",
                    "Action": "secretsmanager:GetSecretValue",
                    "Resource": "*",
                    "Condition": {
                        "IpAddress": {"aws:SourceIp": "10.0.0.0/8"},
                        "Bool": {"aws:SecureTransport": "true"},
                        "StringEquals": {"secretsmanager:VersionStage": "AWSCURRENT"},
                    },
                },
            },
        )
    )
    record = secret("db")
    ok = {
        "aws:SourceIp": "10.1.2.3",
        "aws:SecureTransport": True,
        "secretsmanager:VersionStage": "AWSCURRENT",
    }
    assert world.allowed(APP, "GetSecretValue", record, **ok)
    assert not world.allowed(APP, "GetSecretValue", record, **{**ok, "aws:SourceIp": "192.168.0.1"})
    assert not world.allowed(APP, "GetSecretValue", record, **{**ok, "aws:SecureTransport": False})
    assert not world.allowed(
        APP, "GetSecretValue", record, **{**ok, "secretsmanager:VersionStage": "AWSPREVIOUS"}
    )


def test_the_context_cannot_claim_another_identity_or_name(world: World) -> None:
    admin_sa = "arn:kustos:iam::team-a:serviceaccount/admin"
    world.namespaced.append(
        sap(
            "only-admin",
            "team-a",
            [{"kind": "Group", "name": "system:serviceaccounts:team-a"}],
            {
                "Version": "2012-10-17",
                "Statement": {
                    "Effect": "Allow",
                    "Action": "secretsmanager:GetSecretValue",
                    "Resource": "*",
                    "Condition": {
                        "ArnEquals": {"aws:PrincipalArn": admin_sa},
                        "StringEquals": {"secretsmanager:Name": "db"},
                    },
                },
            },
        )
    )
    admin = Principal.service_account("team-a", "admin", groups=("system:serviceaccounts:team-a",))
    assert world.allowed(admin, "GetSecretValue", secret("db"))
    spoof = {"aws:PrincipalArn": admin_sa, "secretsmanager:Name": "db"}
    assert not world.allowed(APP, "GetSecretValue", secret("db"), **spoof)
    assert not world.allowed(admin, "GetSecretValue", secret("other"), **spoof)


def test_denial_message_and_event(world: World) -> None:
    record = secret("My_Test_Secret/MySQL")
    with pytest.raises(AccessDeniedError) as caught:
        world.access.authorize(APP, "secretsmanager:GetSecretValue", record, {})
    assert caught.value.message == (
        f"User: {APP.arn} is not authorized to perform: secretsmanager:GetSecretValue on "
        f"resource: {record.arn} because no identity-based policy allows the "
        "secretsmanager:GetSecretValue action"
    )
    for _ in range(3):  # repeats within the throttle window post once
        with pytest.raises(AccessDeniedError):
            world.access.authorize(APP, "GetSecretValue", record, {})
    world.denials.flush()
    assert len(world.sink.events) == 1
    ref, reason, message, kind = world.sink.events[0]
    assert (ref.namespace, ref.name, ref.uid) == (
        "team-a",
        "my_test_secret-mysql",
        "uid-team-a-my_test_secret-mysql",
    )
    assert (reason, kind) == (Reason.ACCESS_DENIED, EventType.WARNING)
    assert APP.arn in message and "GetSecretValue" in message


def test_list_secrets_targets_the_namespace_in_context(world: World) -> None:
    alice = Principal.user("alice")
    world.namespaced.append(
        sap(
            "list",
            "team-a",
            [{"kind": "User", "name": "alice"}],
            {
                "Version": "2012-10-17",
                "Statement": {
                    "Effect": "Allow",
                    "Action": "secretsmanager:ListSecrets",
                    "Resource": "*",
                },
            },
        )
    )
    assert world.allowed(alice, "ListSecrets", None, **{"kustos:Namespace": "team-a"})
    assert not world.allowed(alice, "ListSecrets", None, **{"kustos:Namespace": "team-b"})


def test_policy_status_reports_validity() -> None:
    good = sap("ok", "team-a", SA_APP, SEED_PREFIX)
    status = policy_status(good, {})
    assert status["statements"] == 1
    assert status["conditions"][0]["status"] == "True"
    bad = sap(
        "bad",
        "team-a",
        SA_APP,
        {
            "Version": "2012-10-17",
            "Statement": {
                "Effect": "Allow",
                "Principal": "*",
                "Action": "secretsmanager:*",
                "Resource": "*",
            },
        },
    )
    status = policy_status(bad, {})
    condition = status["conditions"][0]
    assert (condition["status"], condition["reason"]) == ("False", "InvalidSpec")
    assert "Principal" in condition["message"]


def _date_bomb(value: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": {
            "Effect": "Allow",
            "Action": "secretsmanager:*",
            "Resource": "*",
            "Condition": {"DateGreaterThan": {"aws:CurrentTime": value}},
        },
    }


@pytest.mark.parametrize("value", ["1e20", "1e12", "-1e20", "1e400"])
def test_a_policy_that_does_not_compile_affects_no_other(world: World, value: str) -> None:
    world.namespaced.append(sap("bomb", "team-a", SA_APP, _date_bomb(value)))
    world.namespaced.append(sap("readers", "team-a", SA_APP, SEED_PREFIX))
    world.cluster.append(
        csap("cluster-bomb", [{"kind": "Group", "name": "system:authenticated"}], _date_bomb(value))
    )
    assert world.allowed(APP, "GetSecretValue", secret("My_Test_Secret/MySQL"))
    assert not world.allowed(APP, "GetSecretValue", secret("Other/MySQL"))
    invalid = {b.label: b.error for b in world.access.policies.invalid()}
    assert set(invalid) == {
        "SecretAccessPolicy team-a/bomb",
        "ClusterSecretAccessPolicy cluster-bomb",
    }
    assert all(f"{value!r} is not a valid Date value" in str(e) for e in invalid.values())


def test_a_request_value_that_is_no_date_makes_a_date_clause_false(world: World) -> None:
    world.namespaced.append(
        sap(
            "staged",
            "team-a",
            SA_APP,
            {
                "Version": "2012-10-17",
                "Statement": {
                    "Effect": "Allow",
                    "Action": "secretsmanager:GetSecretValue",
                    "Resource": "*",
                    "Condition": {"DateNotEquals": {"secretsmanager:VersionStage": "2024-01-01"}},
                },
            },
        )
    )
    record = secret("db")
    assert world.allowed(
        APP, "GetSecretValue", record, **{"secretsmanager:VersionStage": "2025-01-01"}
    )
    for junk in ("1e20", "1e12", "AWSCURRENT"):
        decision = world.access.simulate(
            APP, "GetSecretValue", record, {"secretsmanager:VersionStage": junk}
        )
        assert decision.kind is DecisionKind.IMPLICIT_DENY


def test_an_unexpected_compile_failure_is_contained(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import kustos.services.access.policies as policies
    from kustos.policy import parse_policy as real  # the function policies imported

    def flaky(document: Any, **kw: Any) -> Any:
        if kw.get("name", "").endswith("/bomb"):
            raise RuntimeError("a parser bug")
        return real(document, **kw)

    monkeypatch.setattr(policies, "parse_policy", flaky)
    world.namespaced.append(sap("bomb", "team-a", SA_APP, SEED_PREFIX))
    world.namespaced.append(sap("readers", "team-a", SA_APP, SEED_PREFIX))
    assert world.allowed(APP, "GetSecretValue", secret("My_Test_Secret/MySQL"))
    [bad] = world.access.policies.invalid()
    assert bad.name == "bomb" and "could not be compiled" in str(bad.error)
    # objects of any shape compile to an error, never an exception
    for junk in ({}, {"spec": "x"}, {"metadata": [], "spec": {"subjects": "x"}}):
        assert policies.compile_policy_object(junk).error


def test_invalid_policy_gets_valid_false_and_one_event() -> None:
    bomb = {**sap("bomb", "team-a", SA_APP, _date_bomb("1e20")), "kind": "SecretAccessPolicy"}
    wanted = policy_status(bomb, {})
    valid = next(c for c in wanted["conditions"] if c["type"] == "Valid")
    assert (valid["status"], valid["reason"]) == ("False", "InvalidSpec")
    assert "'1e20' is not a valid Date value" in valid["message"]
    sink = Sink()
    announce(sink, bomb, {}, wanted)
    announce(sink, bomb, wanted, policy_status(bomb, wanted))  # resumed: said already
    assert len(sink.events) == 1
    ref, reason, message, kind = sink.events[0]
    assert (ref.kind, ref.namespace, ref.name) == ("SecretAccessPolicy", "team-a", "bomb")
    assert (reason, kind) == (Reason.INVALID_SPEC, EventType.WARNING)
    assert "1e20" in message
    fixed = {**bomb, "spec": {"subjects": SA_APP, "policy": SEED_PREFIX}}
    healed = policy_status(fixed, wanted)
    announce(sink, fixed, wanted, healed)
    assert [(e[1], e[3]) for e in sink.events[1:]] == [(Reason.RECONCILED, EventType.NORMAL)]
    assert {c["type"]: c["status"] for c in healed["conditions"]} == {
        "Valid": "True",
        "Ready": "True",
    }


def test_principal_account_does_not_let_cluster_users_in(world: World) -> None:
    only_team_a = {
        "Version": "2012-10-17",
        "Statement": {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:PrincipalAccount": "team-a"}},
        },
    }
    record = secret("db", resource_policy=only_team_a)
    assert world.allowed(APP, "GetSecretValue", record)
    for user in (Principal.user("mallory", groups=("system:authenticated",)), ADMIN):
        assert not world.allowed(user, "GetSecretValue", record)
        assert not world.allowed(
            user, "GetSecretValue", record, **{"aws:PrincipalAccount": "team-a"}
        )


def test_who_can_lists_every_allowed_principal_with_its_statements(world: World) -> None:
    from kustos.services.access.who_can import who_can

    allow = {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}
    world.namespaced += [
        sap("readers", "team-a", SA_APP, SEED_PREFIX),
        sap(
            "devs",
            "team-a",
            [{"kind": "Group", "name": "devs"}],
            {
                "Version": "2012-10-17",
                "Statement": {**allow, "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}},
            },
        ),
        sap(
            "interns",
            "team-a",
            [{"kind": "User", "name": "intern"}],
            {
                "Version": "2012-10-17",
                "Statement": [{**allow, "Sid": "All"}, {**allow, "Effect": "Deny", "Sid": "No"}],
            },
        ),
        sap(
            "cross",
            "team-b",
            [{"kind": "ServiceAccount", "name": "reader"}, {"kind": "User", "name": "alice"}],
            {"Version": "2012-10-17", "Statement": allow},
        ),
        sap(
            "nothing",
            "team-a",
            [{"kind": "ServiceAccount", "name": "other"}],
            {"Version": "2012-10-17", "Statement": {**allow, "Action": "secretsmanager:List*"}},
        ),
        sap("broken", "team-a", [{"kind": "User", "name": "mallory"}], _date_bomb("1e20")),
    ]
    world.cluster.append(
        csap(
            "admins",
            [{"kind": "Group", "name": "system:masters"}],
            {"Version": "2012-10-17", "Statement": allow},
        )
    )
    resource = {
        "Version": "2012-10-17",
        "Statement": [
            {
                **allow,
                "Sid": "Share",
                "Principal": {
                    "AWS": [
                        "arn:kustos:iam::team-b:serviceaccount/reader",
                        "arn:kustos:iam::team-c:serviceaccount/lurker",
                    ]
                },
            },
            {
                **allow,
                "Sid": "Guard",
                "Effect": "Deny",
                "Principal": "*",
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ],
    }
    record = secret("My_Test_Secret/MySQL", resource_policy=resource)
    grants = {
        g.principal: g for g in who_can(world.access, record, "secretsmanager:GetSecretValue")
    }
    allowed = {arn for arn, g in grants.items() if g.decision is DecisionKind.ALLOWED}
    assert allowed == {
        APP.arn,
        "arn:kustos:iam::cluster:group/devs",
        "arn:kustos:iam::cluster:group/system:masters",
        "arn:kustos:iam::team-b:serviceaccount/reader",  # both sides agree
    }  # alice (bound in team-b only), team-c/lurker (no identity policy), mallory: absent
    assert [str(s) for s in grants[APP.arn].statements] == [
        "identity policy SecretAccessPolicy team-a/readers statement #0"
    ]
    assert grants["arn:kustos:iam::cluster:group/devs"].conditional
    assert not grants[APP.arn].conditional
    cross = grants["arn:kustos:iam::team-b:serviceaccount/reader"]
    assert {s.policy for s in cross.statements} == {
        "SecretAccessPolicy team-b/cross",
        "resource policy of My_Test_Secret/MySQL",
    }
    denied = grants["arn:kustos:iam::cluster:user/intern"]
    assert denied.decision is DecisionKind.EXPLICIT_DENY
    assert [s.sid for s in denied.statements] == ["No"]
    # an action no policy grants: nobody
    assert {
        g.principal
        for g in who_can(world.access, record, "secretsmanager:DeleteSecret")
        if g.decision is DecisionKind.ALLOWED
    } == set()
