"""The parsed form of a policy document: Policy, Statement, PrincipalSpec, ConditionClause.

Owns the vocabulary only: immutable values produced by `parse` and read by `evaluate` and
`public`. Nothing here validates or evaluates.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property

from kustos.policy.operators import Operator, PolicyValue

__all__ = [
    "VERSION_2008",
    "VERSION_2012",
    "ConditionClause",
    "Effect",
    "Policy",
    "PolicyKind",
    "PrincipalSpec",
    "Statement",
]

VERSION_2012 = "2012-10-17"
VERSION_2008 = "2008-10-17"
#: The condition keys whose value is the time of the request (lowercase).
CLOCK_KEYS = ("aws:currenttime", "aws:epochtime")


class Effect(StrEnum):
    ALLOW = "Allow"
    DENY = "Deny"


class PolicyKind(StrEnum):
    """Identity policies attach to callers; a resource policy attaches to one secret."""

    IDENTITY = "identity"
    RESOURCE = "resource"


@dataclass(frozen=True)
class PrincipalSpec:
    """A Principal/NotPrincipal element: everyone, or a set of principal ARNs.

    Bare namespace names are already turned into namespace-root ARNs.
    """

    everyone: bool
    arns: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConditionClause:
    """One key under one operator, with its (already converted) policy values."""

    operator: Operator
    key: str
    values: tuple[PolicyValue, ...]


@dataclass(frozen=True)
class Statement:
    index: int  # position in the policy's Statement list, from 0
    sid: str | None
    effect: Effect
    actions: tuple[str, ...]
    not_action: bool  # True when the statement used NotAction
    resources: tuple[str, ...]
    not_resource: bool
    principal: PrincipalSpec | None  # None in identity policies
    not_principal: bool
    conditions: tuple[ConditionClause, ...]

    @property
    def label(self) -> str:
        """`#index` plus the Sid when there is one, for messages and simulations."""
        return f"#{self.index}" + (f" ({self.sid})" if self.sid else "")


@dataclass(frozen=True)
class Policy:
    statements: tuple[Statement, ...]
    kind: PolicyKind = PolicyKind.IDENTITY
    version: str = VERSION_2012
    #: Where the policy comes from, e.g. "SecretAccessPolicy prod/readers"; used in decisions.
    name: str = ""
    id: str | None = None

    @property
    def uses_variables(self) -> bool:
        """Policy variables are only interpreted under Version 2012-10-17, as in IAM."""
        return self.version == VERSION_2012

    @cached_property
    def reads_clock(self) -> bool:
        """Whether a decision under this policy can depend on the time of the request: a
        condition on aws:CurrentTime / aws:EpochTime, or either one as a policy variable (in
        a Resource or a condition value). Over-approximates (any mention counts). A decision
        that involves such a policy is never reused from a cache."""
        for statement in self.statements:
            texts = list(statement.resources)
            for clause in statement.conditions:
                if clause.key.lower() in CLOCK_KEYS:
                    return True
                texts.extend(v for v in clause.values if isinstance(v, str))
            if any("${" in t and any(k in t.lower() for k in CLOCK_KEYS) for t in texts):
                return True
        return False
