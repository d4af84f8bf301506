"""Checks on resource policies: public access (BlockPublicPolicy) and ValidateResourcePolicy.

Owns a deliberately simple, conservative notion of "public" (AWS asks Zelkova; Kustos reasons
about one statement at a time). An Allow statement is public when it applies to everyone
(`Principal: "*"`, `{"AWS": "*"}`, or any NotPrincipal) unless one of its conditions
*narrows the caller*: a non-IfExists, non-ForAllValues clause with a positive operator on a
caller-identifying key (aws:PrincipalArn, aws:PrincipalAccount, aws:SourceIp, aws:username,
kustos:ServiceAccount, ...) whose values all pin something down: no value that is only
wildcards, no ARN pattern with a wildcard in its namespace segment, no `/0` address range.
Anything that cannot be shown narrow counts as public.

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
from kustos.policy.model import ConditionClause, Effect, Policy, PolicyKind, Statement
from kustos.policy.operators import Family
from kustos.policy.parse import parse_policy
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

_NARROWING_KEYS = frozenset(
    key.lower()
    for key in (
        "aws:PrincipalArn", "aws:PrincipalAccount", "aws:SourceIp", "aws:username",
        "aws:userid", "aws:PrincipalOrgID", "aws:SourceAccount", "aws:SourceArn",
        "aws:SourceVpc", "aws:SourceVpce", "kustos:ServiceAccount",
    )
)  # fmt: skip
_ADMIN_ACTIONS = ("secretsmanager:PutResourcePolicy", "secretsmanager:DeleteResourcePolicy")


@dataclass(frozen=True)
class Finding:
    """One ValidationErrors entry of ValidateResourcePolicy."""

    check_name: str
    message: str

    def to_aws(self) -> dict[str, str]:
        return {"CheckName": self.check_name, "ErrorMessage": self.message}


def _pins(clause: ConditionClause, value: object) -> bool:
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value.prefixlen > 0
    text = str(value)
    if not text.strip("*?"):
        return False
    if clause.operator.family is Family.ARN or text.startswith("arn:"):
        fields = text.split(":")
        return len(fields) > 4 and bool(fields[4]) and not set(fields[4]) & {"*", "?"}
    return True


def _narrows(clause: ConditionClause) -> bool:
    op = clause.operator
    if op.negated or op.if_exists or op.set_operator == "ForAllValues":
        return False
    if op.family not in (Family.STRING, Family.ARN, Family.IP):
        return False
    if clause.key.lower() not in _NARROWING_KEYS:
        return False
    return all(_pins(clause, value) for value in clause.values)


def _everyone(statement: Statement) -> bool:
    principal = statement.principal
    return principal is not None and (statement.not_principal or principal.everyone)


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
