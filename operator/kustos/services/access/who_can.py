"""`who-can`: every principal the policies in force allow to do one action on one secret.

Owns the enumeration of candidates and the verdict on each; the decisions themselves are
`AccessService.simulate`'s, so the identity policies, the secret's resource policy, the
cross-namespace rule and explicit denies apply exactly as they do on the API.

Candidates are the principals the policies in force name: the subjects of every valid
SecretAccessPolicy and ClusterSecretAccessPolicy, and the principals of the resource policy.
A name that stands for many principals -- a group, a namespace root, `*` -- is one candidate
standing for every member: a member of the group (a ServiceAccount of the namespace for
`system:serviceaccounts[:<namespace>]`), any ServiceAccount of the namespace, anyone.

Each candidate is evaluated as "could any request be allowed": Allow conditions are assumed
to hold and conditional Denies not to (`evaluate(possible=True)`), so nobody who might get
in is missing from the answer; an unconditional Deny removes the candidate (reported apart).
A grant is `conditional` when a request carrying no condition keys of its own would not be
allowed, i.e. when conditions (source address, tags of the request, ...) decide.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from kustos.models.identity import Principal
from kustos.models.records import SecretRecord
from kustos.policy import DecisionKind, Policy, StatementRef, group_arn
from kustos.policy.principals import CLUSTER_ACCOUNT, principal_namespace
from kustos.services.access.authorize import AccessService

__all__ = ["Grant", "who_can"]

_AUTHENTICATED = "system:authenticated"
_SERVICEACCOUNTS = "system:serviceaccounts"
ANY = "*"  # the name of a candidate standing for every member


@dataclass(frozen=True)
class Grant:
    """A principal (or a class of them) and the statements that allow or deny it."""

    principal: str  # its ARN; for a class, the group ARN or a `.../serviceaccount/*` pattern
    description: str
    decision: DecisionKind  # ALLOWED or EXPLICIT_DENY
    conditional: bool
    statements: tuple[StatementRef, ...]


@dataclass(frozen=True)
class _Candidate:
    principal: Principal
    shown_as: str
    description: str


def _sa_groups(namespace: str) -> tuple[str, ...]:
    return (_SERVICEACCOUNTS, f"{_SERVICEACCOUNTS}:{namespace}", _AUTHENTICATED)


def _service_account(namespace: str, name: str) -> _Candidate:
    principal = Principal.service_account(namespace, name, groups=_sa_groups(namespace))
    if name == ANY:
        return _Candidate(
            principal, principal.arn, f"every ServiceAccount of namespace {namespace}"
        )
    return _Candidate(principal, principal.arn, f"ServiceAccount {namespace}/{name}")


def _user(name: str) -> _Candidate:
    principal = Principal.user(name, groups=(_AUTHENTICATED,))
    return _Candidate(principal, principal.arn, f"user {name}")


def _members(group: str, home: str) -> Iterator[_Candidate]:
    """Candidates for every member of `group`; `home` is where a ServiceAccount member lives."""
    if group.startswith(f"{_SERVICEACCOUNTS}:"):
        namespace = group.removeprefix(f"{_SERVICEACCOUNTS}:")
        yield _service_account(namespace, ANY)
        return
    if group in (_SERVICEACCOUNTS, _AUTHENTICATED):
        member = _service_account(home, ANY)
        description = f"every member of group {group} (as a ServiceAccount of {home})"
        yield _Candidate(member.principal, group_arn(group), description)
    if group != _SERVICEACCOUNTS:
        principal = Principal.user(ANY, groups=tuple(dict.fromkeys((group, _AUTHENTICATED))))
        yield _Candidate(principal, group_arn(group), f"every member of group {group}")


def _from_arn(arn: str, home: str) -> Iterator[_Candidate]:
    account = principal_namespace(arn)
    kind, _, name = arn.split(":", 5)[-1].partition("/")
    if kind == "serviceaccount":
        yield _service_account(account, name)
    elif kind == "user":
        yield _user(name)
    elif kind == "group":
        yield from _members(name, home)
    elif kind == "root" and account != CLUSTER_ACCOUNT:
        yield _service_account(account, ANY)


def _candidates(
    access: AccessService, record: SecretRecord, resource: Policy | None
) -> Iterator[_Candidate]:
    home = record.namespace
    for bound in access.policies.policies():
        if bound.policy is None:
            continue
        where = bound.namespace or home
        for subject in bound.subjects:
            if subject.kind == "ServiceAccount":
                yield _service_account(subject.namespace, subject.name)
            elif subject.kind == "User":
                yield _user(subject.name)
            else:
                yield from _members(subject.name, where)
    if resource is None:
        return
    for statement in resource.statements:
        spec = statement.principal
        if spec is None:
            continue
        if spec.everyone or statement.not_principal:
            yield from _members(_AUTHENTICATED, home)
        for arn in spec.arns:
            yield from _from_arn(arn, home)


def who_can(access: AccessService, record: SecretRecord, action: str) -> list[Grant]:
    """Every candidate allowed (or explicitly denied) `action` on `record`, in a stable order."""
    resource = access.resource_policy(record)
    seen: set[tuple[str, tuple[str, ...]]] = set()
    grants: list[Grant] = []
    for candidate in _candidates(access, record, resource):
        principal = candidate.principal
        key = (principal.arn, principal.groups)
        if key in seen:
            continue
        seen.add(key)
        possible = access.simulate(
            principal, action, record, namespace=record.namespace, possible=True
        )
        if possible.kind is DecisionKind.IMPLICIT_DENY:
            continue
        conditional = (
            possible.allowed
            and not access.simulate(principal, action, record, namespace=record.namespace).allowed
        )
        grants.append(
            Grant(
                candidate.shown_as,
                candidate.description,
                possible.kind,
                conditional,
                possible.statements,
            )
        )
    return sorted(
        grants, key=lambda g: (g.decision is not DecisionKind.ALLOWED, g.principal, g.description)
    )
