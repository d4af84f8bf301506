"""Secrets Manager operations on resource policies, and GetRandomPassword.

Put/Get/Delete/ValidateResourcePolicy use `kustos.policy` for parsing (MalformedPolicy-
DocumentException), BlockPublicPolicy (PublicPolicyException) and validation findings, through
`services.resource_policy` (the same checks the controller applies to the spec). A resource
policy is kept in the record (the one in force) and in the ManagedSecret's
`spec.resourcePolicy`.
GetRandomPassword uses the rotation package's generator with AWS's parameters.
"""

from __future__ import annotations

import json
from typing import Any

from kustos.models.records import SecretRecord
from kustos.policy import is_public, validate_resource_policy
from kustos.rotation.passwords import PasswordParams, generate_password
from kustos.services.api.call import Call, Deps
from kustos.services.api.ids import find, not_deleted, write_spec
from kustos.services.core.resource_policy import PUBLIC_ACCEPTED, checked_policy, digest

__all__ = [
    "delete_resource_policy",
    "get_random_password",
    "get_resource_policy",
    "put_resource_policy",
    "validate_resource_policy_op",
]

Result = dict[str, Any]


def _patch_policy(deps: Deps, record: SecretRecord, text: str | None) -> None:
    """Replace spec.resourcePolicy in one merge patch (top-level keys absent from the new
    document are nulled, so nothing of the old one survives), then the record from it."""
    value: dict[str, Any] | None = None
    if text is not None:
        value = {key: None for key in ("Version", "Id", "Statement")}
        value.update(json.loads(text))
    write_spec(deps, record, {"resourcePolicy": value}, {"resource_policy": text})


def put_resource_policy(deps: Deps, call: Call, p: dict[str, Any]) -> Result:
    text = p["ResourcePolicy"]
    block = bool(p.get("BlockPublicPolicy", False))
    record = not_deleted(
        find(
            deps,
            call,
            "PutResourcePolicy",
            p["SecretId"],
            {"secretsmanager:BlockPublicPolicy": block},
        )
    )
    _, policy = checked_policy(text, name=record.arn, block_public=block)
    call.commit_point(ARN=record.arn, Name=record.name)
    if not block and is_public(policy) and record.object_name:
        # The controller applies BlockPublicPolicy to the spec; this caller waived it for
        # this document, so say so in the record before the spec shows the document.
        deps.secrets.merge_extra(record, **{PUBLIC_ACCEPTED: digest(text)})
    _patch_policy(deps, record, text)
    return {"ARN": record.arn, "Name": record.name}


def get_resource_policy(deps: Deps, call: Call, p: dict[str, Any]) -> Result:
    record = find(deps, call, "GetResourcePolicy", p["SecretId"])
    call.commit_point(ARN=record.arn, Name=record.name)
    out: Result = {"ARN": record.arn, "Name": record.name}
    if record.resource_policy:
        out["ResourcePolicy"] = record.resource_policy
    return out


def delete_resource_policy(deps: Deps, call: Call, p: dict[str, Any]) -> Result:
    record = not_deleted(find(deps, call, "DeleteResourcePolicy", p["SecretId"]))
    call.commit_point(ARN=record.arn, Name=record.name)
    _patch_policy(deps, record, None)
    return {"ARN": record.arn, "Name": record.name}


def validate_resource_policy_op(deps: Deps, call: Call, p: dict[str, Any]) -> Result:
    if p.get("SecretId"):
        find(deps, call, "ValidateResourcePolicy", p["SecretId"])
    else:
        namespace = call.caller_namespace()
        call.namespace = namespace
        call.authorize("ValidateResourcePolicy", None, namespace)
    findings = validate_resource_policy(p["ResourcePolicy"])
    call.commit_point(PolicyValidationPassed=not findings)
    return {
        "PolicyValidationPassed": not findings,
        "ValidationErrors": [f.to_aws() for f in findings],
    }


def get_random_password(deps: Deps, call: Call, p: dict[str, Any]) -> Result:
    params = PasswordParams.from_mapping(p)
    call.namespace = call.principal.namespace
    call.authorize("GetRandomPassword", None, call.principal.namespace)
    password = generate_password(params)
    call.commit_point()
    return {"RandomPassword": password}
