"""`kustos policy simulate` (may X do Y on Z, and which statement decided?) and
`kustos policy who-can` (who may do Y on Z, and which statement allows each?).

Both evaluate exactly as the API does -- the same SecretAccessPolicies,
ClusterSecretAccessPolicies and resource policy, through `AccessService.simulate` -- without
calling the API, posting Events or writing audit records. simulate's answer is shaped like
`aws iam simulate-principal-policy`'s EvaluationResults.
"""

from __future__ import annotations

import json
import re
from typing import Any

import click

from kustos.cli.access import services_from_env
from kustos.errors import InvalidParameterError, ResourceNotFoundError
from kustos.models.identity import Principal
from kustos.models.records import SecretRecord
from kustos.policy import DecisionKind, StatementRef
from kustos.services.access.who_can import who_can
from kustos.services.factory import Services

__all__ = ["policy"]

_SA_ARN = re.compile(r"^arn:kustos:iam::(?P<ns>[^:]+):serviceaccount/(?P<name>[^/]+)$")
_USER_ARN = re.compile(r"^arn:kustos:iam::cluster:user/(?P<name>.+)$")
_DECISIONS = {
    DecisionKind.ALLOWED: "allowed",
    DecisionKind.EXPLICIT_DENY: "explicitDeny",
    DecisionKind.IMPLICIT_DENY: "implicitDeny",
}


def principal_of(text: str, groups: tuple[str, ...]) -> Principal:
    """A principal from an ARN, NAMESPACE/SERVICEACCOUNT, or a Kubernetes user name."""
    found = _SA_ARN.match(text)
    if found or re.fullmatch(r"[a-z0-9-]+/[a-z0-9.-]+", text):
        ns, name = (found.group("ns"), found.group("name")) if found else text.split("/", 1)
        base = ("system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated")
        return Principal.service_account(ns, name, groups=tuple(dict.fromkeys(base + groups)))
    user = _USER_ARN.match(text)
    name = user.group("name") if user else text
    if name.startswith("arn:"):
        raise InvalidParameterError(f"--principal {text!r} is not a Kustos principal ARN")
    return Principal.user(name, groups=tuple(dict.fromkeys((*groups, "system:authenticated"))))


def _context(pairs: tuple[str, ...]) -> dict[str, Any]:
    context: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidParameterError(f"--context expects KEY=VALUE, got {pair!r}")
        if key in context:  # a repeated key is multi-valued
            previous = context[key]
            context[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            context[key] = value
    return context


def _secret(services: Services, secret_id: str, namespace: str | None) -> SecretRecord:
    store = services.store
    if secret_id.startswith("arn:"):
        record = store.get_secret_by_arn(secret_id)
    elif namespace:
        record = store.get_secret(namespace, secret_id)
    else:
        raise InvalidParameterError("name the secret by ARN, or give --namespace")
    if record is None:
        raise ResourceNotFoundError(f"Secrets Manager can't find the specified secret: {secret_id}")
    return record


def _statements(refs: tuple[StatementRef, ...]) -> list[dict[str, object]]:
    return [
        {
            "SourcePolicyId": s.policy,
            "SourcePolicyType": s.kind.value,
            "StatementIndex": s.index,
            "Sid": s.sid,
            "Effect": s.effect.value,
        }
        for s in refs
    ]


@click.group()
def policy() -> None:
    """Inspect access policies."""


@policy.command("simulate")
@click.option(
    "--principal",
    required=True,
    help="arn:kustos:iam::NS:serviceaccount/NAME, NS/NAME, or a user (name or ARN).",
)
@click.option("--group", "groups", multiple=True, help="A group of the principal (repeatable).")
@click.option("--action", required=True, help="e.g. secretsmanager:GetSecretValue")
@click.option("--secret-id", default=None, help="Secret name (with --namespace) or ARN.")
@click.option(
    "--namespace", default=None, help="The secret's namespace (default: a ServiceAccount's own)."
)
@click.option(
    "--context",
    "pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="A condition key, e.g. aws:SourceIp=10.0.0.1 (repeatable).",
)
def simulate(
    principal: str,
    groups: tuple[str, ...],
    action: str,
    secret_id: str | None,
    namespace: str | None,
    pairs: tuple[str, ...],
) -> None:
    """Evaluate one request against the policies in force and print the decision."""
    caller = principal_of(principal, groups)
    context = _context(pairs)
    target = namespace or caller.namespace or None
    with services_from_env() as services:
        record = _secret(services, secret_id, target) if secret_id else None
        access = services.access
        decision = access.simulate(caller, action, record, context, namespace=target)
        target_ns = record.namespace if record else (target or "")
        bound = access.policies.applicable(caller, target_ns)
        invalid = [b.label for b in access.policies.invalid()]
    sources = [b.label for b in bound]
    if record is not None and record.resource_policy:
        sources.append(f"resource policy of {record.name}")
    result = {
        "EvalActionName": action if ":" in action else f"secretsmanager:{action}",
        "EvalResourceName": record.arn if record else "*",
        "EvalDecision": _DECISIONS[decision.kind],
        "Principal": caller.arn,
        "Reason": decision.reason,
        "MatchedStatements": _statements(decision.statements),
        "PoliciesConsidered": sources,
        "InvalidPoliciesIgnored": invalid,
    }
    click.echo(json.dumps({"EvaluationResults": [result]}, indent=4))


@policy.command("who-can")
@click.option("--secret-id", required=True, help="Secret name (with --namespace) or ARN.")
@click.option("--action", required=True, help="e.g. secretsmanager:GetSecretValue")
@click.option("--namespace", default=None, help="The secret's namespace (with a name).")
def who_can_command(secret_id: str, action: str, namespace: str | None) -> None:
    """Every principal the policies in force allow ACTION on the secret, with the statements
    that allow it. Conditions count as possibly holding (such grants are "Conditional");
    an unconditional explicit Deny removes a principal (listed under ExplicitlyDenied)."""
    action = action if ":" in action else f"secretsmanager:{action}"
    with services_from_env() as services:
        record = _secret(services, secret_id, namespace)
        grants = who_can(services.access, record, action)
        invalid = [b.label for b in services.access.policies.invalid()]
    allowed = [g for g in grants if g.decision is DecisionKind.ALLOWED]
    denied = [g for g in grants if g.decision is DecisionKind.EXPLICIT_DENY]
    result = {
        "SecretId": record.arn,
        "Action": action,
        "Principals": [
            {
                "Principal": g.principal,
                "Description": g.description,
                "Conditional": g.conditional,
                "AllowedBy": _statements(g.statements),
            }
            for g in allowed
        ],
        "ExplicitlyDenied": [
            {
                "Principal": g.principal,
                "Description": g.description,
                "DeniedBy": _statements(g.statements),
            }
            for g in denied
        ],
        "InvalidPoliciesIgnored": invalid,
    }
    click.echo(json.dumps(result, indent=4))
