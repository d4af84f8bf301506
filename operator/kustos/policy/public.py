"""Checks on resource policies: public access (BlockPublicPolicy) and ValidateResourcePolicy.

Owns a deliberately simple, conservative notion of "public" (AWS asks Zelkova; Kustos reasons
about one statement at a time). An Allow statement is public when it applies to everyone
unless one of its conditions *narrows the caller* to a fixed set. "Everyone" is
`Principal: "*"`, `{"AWS": "*"}`, any NotPrincipal, or a group that every caller of a kind
belongs to: `system:authenticated`, `system:unauthenticated`, `system:serviceaccounts`,
`system:serviceaccounts:<namespace>` (and the user `system:anonymous`). A condition narrows
when it is a non-IfExists, non-ForAllValues clause with a positive String/Arn/IpAddress
operator on a key that identifies the caller, whose values are all *fixed*:

* aws:PrincipalArn, aws:username, aws:userid, aws:SourceArn, aws:SourceAccount,
  aws:PrincipalOrgID, aws:SourceVpc, aws:SourceVpce: a value without wildcards (under
  StringLike/ArnLike/ArnEquals, where `*` and `?` are wildcards) and without policy
  variables (`${aws:username}` matches every user). `a*` or `*:*` fixes nothing.
* aws:SourceIp: ranges that together cover a bounded set of addresses: no range wider than
  a /8 (IPv4) or a /32 (IPv6), and no more than four such blocks' worth of addresses in all,
  so that two /1 ranges (all of IPv4) are public while the RFC 1918 ranges are not.

Keys that name a whole namespace (aws:PrincipalAccount) or a name any namespace can reuse
(kustos:ServiceAccount) do not narrow: every ServiceAccount someone may create there is let
in. To grant a namespace, name its root as the Principal, which delegates to the
namespace's own identity policies. Anything that cannot be shown narrow counts as public.

ValidateResourcePolicy findings use the check names SYNTAX_CHECK, PUBLIC_ACCESS_CHECK and
LOCKOUT_CHECK; an empty list means PolicyValidationPassed.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kustos.errors import MalformedPolicyError, PublicPolicyError
from kustos.policy.model import (
    ConditionClause,
    Effect,
    Policy,
    PolicyKind,
    PrincipalSpec,
    Statement,
)
from kustos.policy.operators import Family, IPNetwork
from kustos.policy.parse import parse_policy
from kustos.policy.principals import group_arn, user_arn
from kustos.policy.wildcard import action_matches

__all__ = [
    "LOCKOUT_CHECK",
    "MAX_RESOURCE_POLICY_CHARS",
    "PUBLIC_ACCESS_CHECK",
    "SYNTAX_CHECK",
    "Finding",
    "ensure_not_public",
    "is_public",
    "public_statements",
    "validate_resource_policy",
]

SYNTAX_CHECK = "SyntaxCheck"
PUBLIC_ACCESS_CHECK = "PublicAccessCheck"
LOCKOUT_CHECK = "LockoutCheck"
#: Secrets Manager's limit on the size of a resource policy.
MAX_RESOURCE_POLICY_CHARS = 20480

_FIXED_KEYS = frozenset(
    key.lower()
    for key in (
        "aws:PrincipalArn",
        "aws:username",
        "aws:userid",
        "aws:PrincipalOrgID",
        "aws:SourceAccount",
        "aws:SourceArn",
        "aws:SourceVpc",
        "aws:SourceVpce",
    )
)
_SOURCE_IP = "aws:sourceip"
#: Principals that every caller of some kind matches, whoever creates it.
_EVERYONE_PRINCIPALS = frozenset(
    {
        group_arn("system:authenticated"),
        group_arn("system:unauthenticated"),
        group_arn("system:serviceaccounts"),
        user_arn("system:anonymous"),
    }
)
_EVERY_SERVICEACCOUNT_OF = group_arn("system:serviceaccounts:")
#: The widest range, and the most addresses in all, an aws:SourceIp condition may allow.
_IP_LIMITS = {4: (8, 4 << 24), 6: (32, 4 << 96)}
_ADMIN_ACTIONS = ("secretsmanager:PutResourcePolicy", "secretsmanager:DeleteResourcePolicy")


@dataclass(frozen=True)
class Finding:
    """One ValidationErrors entry of ValidateResourcePolicy."""

    check_name: str
    message: str

    def to_aws(self) -> dict[str, str]:
        return {"CheckName": self.check_name, "ErrorMessage": self.message}


def _fixed(clause: ConditionClause, text: str) -> bool:
    if "${" in text:
        return False  # a policy variable: a different value for every caller
    wildcards = clause.operator.family is Family.ARN or clause.operator.comparison == "like"
    return not (wildcards and set(text) & {"*", "?"})


def _bounded(networks: list[IPNetwork]) -> bool:
    for version, (widest, most) in _IP_LIMITS.items():
        mine = [n for n in networks if n.version == version]
        if any(n.prefixlen < widest for n in mine):
            return False
        covered = ipaddress.collapse_addresses(mine)  # type: ignore[type-var]
        if sum(n.num_addresses for n in covered) > most:
            return False
    return True


def _narrows(clause: ConditionClause) -> bool:
    op = clause.operator
    if op.negated or op.if_exists or op.set_operator == "ForAllValues":
        return False
    key = clause.key.lower()
    if op.family is Family.IP:
        networks = [
            v for v in clause.values if isinstance(v, ipaddress.IPv4Network | ipaddress.IPv6Network)
        ]
        return key == _SOURCE_IP and len(networks) == len(clause.values) and _bounded(networks)
    if op.family not in (Family.STRING, Family.ARN) or key not in _FIXED_KEYS:
        return False
    return all(_fixed(clause, str(value)) for value in clause.values)


def _names_everyone(principal: PrincipalSpec) -> bool:
    return principal.everyone or any(
        arn in _EVERYONE_PRINCIPALS or arn.startswith(_EVERY_SERVICEACCOUNT_OF)
        for arn in principal.arns
    )


def _everyone(statement: Statement) -> bool:
    principal = statement.principal
    return principal is not None and (statement.not_principal or _names_everyone(principal))


def public_statements(policy: Policy) -> list[Statement]:
    """The Allow statements that grant access to everyone (see the module docstring)."""
    return [
        s
        for s in policy.statements
        if s.effect is Effect.ALLOW
        and _everyone(s)
        and not any(_narrows(clause) for clause in s.conditions)
    ]


def is_public(policy: Policy) -> bool:
    """Whether the resource policy grants access to everyone."""
    return bool(public_statements(policy))


def ensure_not_public(policy: Policy) -> None:
    """Raise PublicPolicyError when BlockPublicPolicy must refuse `policy`."""
    found = public_statements(policy)
    if found:
        labels = ", ".join(s.label for s in found)
        raise PublicPolicyError(
            f"The resource policy grants public access (statement {labels}); "
            "BlockPublicPolicy refuses it"
        )


def _locks_out(statement: Statement) -> bool:
    if statement.effect is not Effect.DENY or not _everyone(statement) or statement.conditions:
        return False
    if statement.not_resource or "*" not in statement.resources:
        return False
    covers = [any(action_matches(p, a) for p in statement.actions) for a in _ADMIN_ACTIONS]
    return any(hit != statement.not_action for hit in covers)


def validate_resource_policy(document: str | bytes | Mapping[str, Any]) -> list[Finding]:
    """Syntax, public-access and lock-out checks; an empty list means the policy passed."""
    text = document if isinstance(document, str | bytes) else json.dumps(document)
    if len(text) > MAX_RESOURCE_POLICY_CHARS:
        return [Finding(SYNTAX_CHECK, f"Policy exceeds {MAX_RESOURCE_POLICY_CHARS} characters")]
    try:
        policy = parse_policy(document, kind=PolicyKind.RESOURCE)
    except MalformedPolicyError as exc:
        return [Finding(SYNTAX_CHECK, exc.message)]
    findings = [
        Finding(PUBLIC_ACCESS_CHECK, f"Statement {s.label} allows access to any principal")
        for s in public_statements(policy)
    ]
    findings += [
        Finding(
            LOCKOUT_CHECK,
            f"Statement {s.label} denies everyone from changing this resource policy",
        )
        for s in policy.statements
        if _locks_out(s)
    ]
    return findings
