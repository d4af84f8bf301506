"""Parsing and validation of policy documents into `model` values.

Owns the grammar: top-level Version/Id/Statement; statement elements Sid, Effect,
Action/NotAction, Resource/NotResource, Principal/NotPrincipal, Condition; strings or lists
wherever IAM allows them. Anything else is a MalformedPolicyError whose message names the
statement and element at fault. Identity policies must not name a Principal; every
statement of a resource policy must. JSON with duplicate keys is rejected rather than
letting the last key silently win.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from kustos.errors import MalformedPolicyError
from kustos.policy.model import (
    VERSION_2008,
    VERSION_2012,
    ConditionClause,
    Effect,
    Policy,
    PolicyKind,
    Statement,
)
from kustos.policy.operators import parse_operator, read_policy_value
from kustos.policy.principals import parse_principal

__all__ = ["load_document", "parse_policy"]

_TOP_LEVEL = frozenset({"Version", "Id", "Statement"})
_ELEMENTS = frozenset(
    {
        "Sid",
        "Effect",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Principal",
        "NotPrincipal",
        "Condition",
    }
)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise MalformedPolicyError(f"Duplicate key {key!r} in policy document")
        result[key] = value
    return result


def _reject_constant(name: str) -> None:
    raise MalformedPolicyError(f"{name} is not valid in a policy document")


def load_document(document: str | bytes | Mapping[str, Any]) -> dict[str, Any]:
    """The policy as a dict: JSON text is decoded, a mapping is copied."""
    if isinstance(document, Mapping):
        return dict(document)
    if not isinstance(document, str | bytes):
        raise MalformedPolicyError("Policy document must be a JSON object")
    try:
        loaded = json.loads(
            document, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant
        )
    except (ValueError, RecursionError) as exc:
        raise MalformedPolicyError(f"Policy document is not valid JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise MalformedPolicyError("Policy document must be a JSON object")
    return loaded


def _strings(where: str, raw: object) -> tuple[str, ...]:
    values = raw if isinstance(raw, list) else [raw]
    if not values:
        raise MalformedPolicyError(f"{where} must not be an empty list")
    for value in values:
        if not isinstance(value, str) or not value:
            raise MalformedPolicyError(f"{where} entries must be non-empty strings, got {value!r}")
    return tuple(values)


def _either(where: str, body: Mapping[str, Any], name: str) -> tuple[tuple[str, ...], bool]:
    negated = f"Not{name}"
    if (name in body) == (negated in body):
        raise MalformedPolicyError(f"{where}: exactly one of {name} or {negated} is required")
    key = name if name in body else negated
    return _strings(f"{where} {key}", body[key]), key == negated


def _check_action(where: str, action: str) -> None:
    vendor, sep, rest = action.partition(":")
    if action != "*" and (not sep or not vendor or not rest):
        raise MalformedPolicyError(
            f"{where}: action {action!r} must be '*' or 'service:action' "
            "(e.g. secretsmanager:GetSecretValue)"
        )


def _check_resource(where: str, resource: str) -> None:
    if resource != "*" and (not resource.startswith("arn:") or resource.count(":") < 5):
        raise MalformedPolicyError(
            f"{where}: resource {resource!r} must be '*' or an ARN "
            "(arn:kustos:secretsmanager:<cluster>:<namespace>:secret:<name>)"
        )


def _conditions(where: str, raw: object) -> tuple[ConditionClause, ...]:
    if not isinstance(raw, dict):
        raise MalformedPolicyError(f"{where} Condition must be an object")
    clauses: list[ConditionClause] = []
    for op_name, block in raw.items():
        operator = parse_operator(op_name)
        if not isinstance(block, dict) or not block:
            raise MalformedPolicyError(
                f"{where} Condition {op_name!r} must map condition keys to values"
            )
        for key, values in block.items():
            vendor, sep, name = key.partition(":")
            if not sep or not vendor or not name:
                raise MalformedPolicyError(
                    f"{where} Condition key {key!r} must be prefixed by a service, "
                    "e.g. secretsmanager:Name or aws:PrincipalArn"
                )
            items = values if isinstance(values, list) else [values]
            if not items:
                raise MalformedPolicyError(f"{where} Condition {op_name!r} on {key!r} is empty")
            for item in items:
                if item is None or isinstance(item, dict | list):
                    raise MalformedPolicyError(
                        f"{where} Condition {op_name!r} on {key!r}: values must be scalars"
                    )
            converted = tuple(read_policy_value(operator, key, item) for item in items)
            clauses.append(ConditionClause(operator, key, converted))
    return tuple(clauses)


def _statement(index: int, raw: object, kind: PolicyKind) -> Statement:
    where = f"Statement[{index}]"
    if not isinstance(raw, dict):
        raise MalformedPolicyError(f"{where} must be an object")
    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise MalformedPolicyError(f"{where} Sid must be a string")
    if sid:
        where = f"{where} (Sid {sid!r})"
    unknown = sorted(set(raw) - _ELEMENTS)
    if unknown:
        raise MalformedPolicyError(f"{where} has unsupported element(s): {', '.join(unknown)}")
    effect_raw = raw.get("Effect")
    if effect_raw not in (Effect.ALLOW.value, Effect.DENY.value):
        raise MalformedPolicyError(f"{where} Effect must be 'Allow' or 'Deny', got {effect_raw!r}")
    actions, not_action = _either(where, raw, "Action")
    for action in actions:
        _check_action(where, action)
    resources, not_resource = _either(where, raw, "Resource")
    for resource in resources:
        _check_resource(where, resource)
    has_principal = "Principal" in raw or "NotPrincipal" in raw
    if kind is PolicyKind.IDENTITY and has_principal:
        raise MalformedPolicyError(
            f"{where}: identity policies must not contain Principal or NotPrincipal"
        )
    principal = None
    not_principal = False
    if kind is PolicyKind.RESOURCE:
        if ("Principal" in raw) == ("NotPrincipal" in raw):
            raise MalformedPolicyError(
                f"{where}: resource policies need exactly one of Principal or NotPrincipal"
            )
        not_principal = "NotPrincipal" in raw
        principal = parse_principal(raw["NotPrincipal" if not_principal else "Principal"])
    conditions = _conditions(where, raw["Condition"]) if "Condition" in raw else ()
    return Statement(
        index=index,
        sid=sid or None,
        effect=Effect(effect_raw),
        actions=actions,
        not_action=not_action,
        resources=resources,
        not_resource=not_resource,
        principal=principal,
        not_principal=not_principal,
        conditions=conditions,
    )


def parse_policy(
    document: str | bytes | Mapping[str, Any],
    *,
    kind: PolicyKind = PolicyKind.IDENTITY,
    name: str = "",
) -> Policy:
    """Parse and validate a policy document (JSON text or a decoded mapping).

    Raises MalformedPolicyError, with a message naming the element at fault.
    """
    body = load_document(document)
    unknown = sorted(set(body) - _TOP_LEVEL)
    if unknown:
        raise MalformedPolicyError(f"Policy has unsupported top-level element(s): {unknown}")
    version = body.get("Version", VERSION_2008)
    if version not in (VERSION_2012, VERSION_2008):
        raise MalformedPolicyError(
            f"Policy Version must be {VERSION_2012!r} or {VERSION_2008!r}, got {version!r}"
        )
    policy_id = body.get("Id")
    if policy_id is not None and not isinstance(policy_id, str):
        raise MalformedPolicyError("Policy Id must be a string")
    if "Statement" not in body:
        raise MalformedPolicyError("Policy must contain a Statement element")
    raw_statements = body["Statement"]
    if isinstance(raw_statements, dict):
        raw_statements = [raw_statements]
    if not isinstance(raw_statements, list) or not raw_statements:
        raise MalformedPolicyError("Statement must be an object or a non-empty list of objects")
    statements = tuple(_statement(i, raw, kind) for i, raw in enumerate(raw_statements))
    sids = [s.sid for s in statements if s.sid]
    duplicates = sorted({sid for sid in sids if sids.count(sid) > 1})
    if duplicates:
        raise MalformedPolicyError(f"Statement Sids must be unique; repeated: {duplicates}")
    return Policy(statements, kind=kind, version=version, name=name, id=policy_id)
