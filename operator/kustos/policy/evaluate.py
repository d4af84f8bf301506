"""The authorization decision: `evaluate(request, identity_policies, resource_policy)`.

Owns IAM's evaluation logic, with namespace ~ account:
1. An applicable Deny in any policy wins (ExplicitDeny).
2. Same namespace: an Allow in an identity policy, or an Allow in the resource policy that
   names the caller directly (its ARN, one of its groups, or "*"), allows. A resource policy
   that names only the caller's namespace root delegates to that namespace's identity
   policies and does not allow on its own, as an AWS account principal behaves.
3. Different namespaces: an identity-policy Allow AND a resource-policy Allow whose
   Principal matches the caller (directly or through its namespace root) are both needed.
4. Otherwise ImplicitDeny.
The Decision names the statements that decided, for `kustos policy simulate` and audit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from kustos.policy.conditions import conditions_hold
from kustos.policy.context import ContextValue, RequestContext
from kustos.policy.model import Effect, Policy, PolicyKind, Statement
from kustos.policy.principals import (
    PrincipalMatch,
    match_principal,
    principal_namespace,
)
from kustos.policy.variables import substitute
from kustos.policy.wildcard import action_matches, parts_match

__all__ = ["Decision", "DecisionKind", "Request", "StatementRef", "evaluate", "request_context"]


@dataclass(frozen=True)
class Request:
    """Who asks to do what to which secret, and the condition keys of the request."""

    principal: str  # the caller's principal ARN
    action: str  # e.g. "secretsmanager:GetSecretValue"
    resource: str  # the secret ARN (or "*" for actions such as ListSecrets)
    context: Mapping[str, ContextValue] = field(default_factory=dict)
    #: Defaults to the account segment of `principal` / `resource`.
    principal_namespace: str | None = None
    resource_namespace: str | None = None
    #: Group ARNs of the caller; a resource policy naming a group names its members.
    groups: tuple[str, ...] = ()

    @property
    def caller_namespace(self) -> str:
        return self.principal_namespace or principal_namespace(self.principal)

    @property
    def target_namespace(self) -> str:
        if self.resource_namespace:
            return self.resource_namespace
        return principal_namespace(self.resource) if self.resource != "*" else ""


class DecisionKind(StrEnum):
    ALLOWED = "Allowed"
    EXPLICIT_DENY = "ExplicitDeny"
    IMPLICIT_DENY = "ImplicitDeny"


@dataclass(frozen=True)
class StatementRef:
    """One statement that took part in a decision."""

    policy: str  # Policy.name
    kind: PolicyKind
    index: int
    sid: str | None
    effect: Effect

    def __str__(self) -> str:
        sid = f" ({self.sid})" if self.sid else ""
        return f"{self.kind.value} policy {self.policy or '<unnamed>'} statement #{self.index}{sid}"


@dataclass(frozen=True)
class Decision:
    kind: DecisionKind
    #: For ExplicitDeny: the denying statements. For Allowed: the allowing statements.
    #: For ImplicitDeny: the Allow statements that matched without being enough (often none).
    statements: tuple[StatementRef, ...]
    reason: str

    @property
    def allowed(self) -> bool:
        return self.kind is DecisionKind.ALLOWED


def request_context(request: Request) -> dict[str, ContextValue]:
    """The caller's context plus the keys Kustos derives from the request itself.

    Derived keys (aws:PrincipalArn, aws:PrincipalAccount, aws:ResourceAccount, aws:username
    for users, kustos:ServiceAccount for ServiceAccounts) override supplied ones, so a
    caller cannot claim another identity through the context.

    aws:PrincipalAccount is the namespace the principal belongs to: a ServiceAccount's own.
    Kubernetes users and groups belong to no namespace, so for them the key is absent (they
    are bound by a namespace's identity policies like a RoleBinding, but that does not make
    them members of it): `StringEquals aws:PrincipalAccount` never admits a user.
    """
    resource_part = request.principal.split(":", 5)[-1]
    kind, _, name = resource_part.partition("/")
    account = None if kind in ("user", "group") else request.caller_namespace
    derived: dict[str, ContextValue] = {
        "aws:PrincipalArn": request.principal,
        "aws:PrincipalAccount": account,
    }
    if request.target_namespace:
        derived["aws:ResourceAccount"] = request.target_namespace
    if kind == "user":
        derived["aws:username"] = name
    elif kind == "serviceaccount":
        derived["kustos:ServiceAccount"] = name
    overridden = {key.lower() for key in derived}
    merged = {k: v for k, v in request.context.items() if k.lower() not in overridden}
    merged.update(derived)
    return merged


def _applies(
    policy: Policy,
    statement: Statement,
    request: Request,
    ctx: RequestContext,
    possible: bool = False,
) -> bool:
    """Action, Resource and Condition of one statement against the request.

    With `possible`, conditions are not evaluated: an Allow with conditions counts as
    applying and a Deny with conditions as not applying (see `evaluate`).
    """
    action_hit = any(action_matches(p, request.action) for p in statement.actions)
    if action_hit == statement.not_action:
        return False
    lookup = ctx.single_text if policy.uses_variables else None
    resource_hit = False
    for pattern in statement.resources:
        parts = substitute(pattern, lookup)
        if parts is not None and parts_match(parts, request.resource, arn=True):
            resource_hit = True
            break
    if resource_hit == statement.not_resource:
        return False
    if possible:
        return statement.effect is Effect.ALLOW or not statement.conditions
    return conditions_hold(statement.conditions, ctx, variables=policy.uses_variables)


def _ref(policy: Policy, statement: Statement) -> StatementRef:
    return StatementRef(policy.name, policy.kind, statement.index, statement.sid, statement.effect)


def _principal_strength(statement: Statement, request: Request) -> PrincipalMatch:
    assert statement.principal is not None
    found = match_principal(
        statement.principal, request.principal, request.caller_namespace, request.groups
    )
    if statement.not_principal:
        return PrincipalMatch.DIRECT if found is PrincipalMatch.NONE else PrincipalMatch.NONE
    return found


def evaluate(
    request: Request,
    identity_policies: Sequence[Policy] = (),
    resource_policy: Policy | None = None,
    *,
    possible: bool = False,
) -> Decision:
    """Decide whether `request` is allowed; see the module docstring for the rules.

    With `possible=True` the answer is whether *some* request of this principal, action and
    resource could be allowed, whatever its condition keys: every Allow's conditions are
    assumed to hold and every Deny's not to (an unconditional Deny still denies). That
    over-approximation is what `kustos policy who-can` needs.
    """
    ctx = RequestContext(request_context(request))
    denies: list[StatementRef] = []
    identity_allows: list[StatementRef] = []
    direct_allows: list[StatementRef] = []
    delegated_allows: list[StatementRef] = []
    for policy in identity_policies:
        if policy.kind is not PolicyKind.IDENTITY:
            raise ValueError(f"policy {policy.name!r} is not an identity policy")
        for statement in policy.statements:
            if _applies(policy, statement, request, ctx, possible):
                target = denies if statement.effect is Effect.DENY else identity_allows
                target.append(_ref(policy, statement))
    if resource_policy is not None:
        if resource_policy.kind is not PolicyKind.RESOURCE:
            raise ValueError(f"policy {resource_policy.name!r} is not a resource policy")
        for statement in resource_policy.statements:
            strength = _principal_strength(statement, request)
            if strength is PrincipalMatch.NONE:
                continue
            if not _applies(resource_policy, statement, request, ctx, possible):
                continue
            if statement.effect is Effect.DENY:
                denies.append(_ref(resource_policy, statement))
            elif strength is PrincipalMatch.DIRECT:
                direct_allows.append(_ref(resource_policy, statement))
            else:
                delegated_allows.append(_ref(resource_policy, statement))
    if denies:
        return Decision(DecisionKind.EXPLICIT_DENY, tuple(denies), "explicitly denied")
    resource_allows = direct_allows + delegated_allows
    # A request on no particular secret (e.g. ListSecrets, resource "*") has no resource
    # policy to consult: the caller's identity policies decide.
    target_namespace = request.target_namespace
    if not target_namespace or request.caller_namespace == target_namespace:
        granting = identity_allows + direct_allows
        if granting:
            return Decision(DecisionKind.ALLOWED, tuple(granting), "allowed")
        reason = "no statement allows the request"
        if delegated_allows:
            reason = (
                "the resource policy grants only the namespace root, which delegates to "
                "identity policies, and none allows the request"
            )
        return Decision(DecisionKind.IMPLICIT_DENY, tuple(delegated_allows), reason)
    if identity_allows and resource_allows:
        both = tuple(identity_allows + resource_allows)
        return Decision(DecisionKind.ALLOWED, both, "allowed by identity and resource policy")
    if identity_allows:
        reason = "cross-namespace request: the resource policy does not allow the caller"
    elif resource_allows:
        reason = "cross-namespace request: no identity policy of the caller allows it"
    else:
        reason = "no statement allows the request"
    return Decision(DecisionKind.IMPLICIT_DENY, tuple(identity_allows + resource_allows), reason)
