"""Secrets Manager operations on a secret's lifecycle: delete, restore, rotate, cancel.

Deletion is scheduled (RecoveryWindowInDays 7-30, default 30) or immediate
(ForceDeleteWithoutRecovery). While scheduled, the record carries `deletion_date`, the
ManagedSecret object is deleted (its projected Secret with it), and values cannot be read;
the object's spec is kept in the record so RestoreSecret can bring it back. The purge after
the window and the handling of `kubectl delete ms` live in `DeletionService`
(`kustos.services.deletion`); the API uses the same instance (`Deps.deletion`), so both ways
post the same DeletionScheduled / Restored Events, audit records and notifications.
RotateSecret records the rotation settings and asks the rotation engine for a rotation now
through the ManagedSecret's `kustos.io/rotate-now` annotation; it does not rotate by itself.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from kustos.errors import InvalidParameterError, InvalidRequestError
from kustos.models.records import SecretRecord
from kustos.services.api_call import Call, Deps
from kustos.services.api_ids import find, not_deleted
from kustos.services.rotation import ANNOTATION_ROTATE_NOW

__all__ = ["cancel_rotate_secret", "delete_secret", "restore_secret", "rotate_secret"]

Result = dict[str, Any]


def delete_secret(deps: Deps, call: Call, p: dict[str, Any]) -> Result:
    window, force = p.get("RecoveryWindowInDays"), bool(p.get("ForceDeleteWithoutRecovery"))
    if window is not None and force:
        raise InvalidParameterError("You can't use ForceDeleteWithoutRecovery in conjunction "
                                    "with RecoveryWindowInDays.")
    if window is not None and not 7 <= window <= 30:
        raise InvalidParameterError("RecoveryWindowInDays must be between 7 and 30 days.")
    record = find(deps, call, "DeleteSecret", p["SecretId"], {
        "secretsmanager:RecoveryWindowInDays": window,
        "secretsmanager:ForceDeleteWithoutRecovery": force})
    if not force:
        not_deleted(record)  # scheduled already: only a forced delete may follow
    deletion = deps.deletion
    now = deps.secrets.clock()
    when = now if force else now + timedelta(days=window or 30)
    call.commit_point(ARN=record.arn, Name=record.name, DeletionDate=when)
    if force:
        deletion.purge(record, by="api")
    else:
        deletion.schedule(record, when, by="api")
    return {"ARN": record.arn, "Name": record.name, "DeletionDate": when}


def restore_secret(deps: Deps, call: Call, p: dict[str, Any]) -> Result:
    record = find(deps, call, "RestoreSecret", p["SecretId"])
    call.commit_point(ARN=record.arn, Name=record.name)
    if record.deletion_date is not None:
        deps.deletion.restore(record)
    return {"ARN": record.arn, "Name": record.name}


def rotate_secret(deps: Deps, call: Call, p: dict[str, Any]) -> Result:
    """Record the rotation rules and, unless RotateImmediately is false, ask the operator to
    rotate now. The ClientRequestToken (or a fresh one) becomes the new version's id, as in
    AWS; a retry with the same token starts nothing new. How to rotate (the rotator and its
    settings) is the ManagedSecret's `spec.rotation`; RotationRules set its schedule."""
    record = not_deleted(find(deps, call, "RotateSecret", p["SecretId"], {
        "secretsmanager:RotationLambdaARN": p.get("RotationLambdaARN")}))
    rules = dict(p.get("RotationRules") or {})
    if record.object_name is None:
        raise InvalidParameterError("The secret has no ManagedSecret object to rotate through.")
    immediately = p.get("RotateImmediately", True)
    obj = deps.objects.get(record.namespace, record.object_name) or {}
    configured = bool((obj.get("spec") or {}).get("rotation"))
    if immediately and not configured:
        raise InvalidRequestError(
            f"Rotation is not configured: add a rotation section (the rotator and its "
            f"settings) to ManagedSecret {record.namespace}/{record.object_name}."
        )
    token = p.get("ClientRequestToken") or str(uuid.uuid4())
    call.commit_point(ARN=record.arn, Name=record.name)
    extra = dict(record.extra)
    if p.get("RotationLambdaARN"):
        extra["rotation_lambda_arn"] = p["RotationLambdaARN"]
    changes: dict[str, Any] = {"rotation_enabled": True, "extra": extra}
    if rules:
        changes["rotation_rules"] = rules
    deps.secrets.update(record.evolve(**changes))
    patch: dict[str, Any] = {}
    if configured and (schedule := _schedule_of(rules)):
        patch["spec"] = {"rotation": schedule}
    if immediately:
        patch["metadata"] = {"annotations": {ANNOTATION_ROTATE_NOW: token}}
    if patch:
        deps.objects.merge_patch(record.namespace, record.object_name, patch)
    out: Result = {"ARN": record.arn, "Name": record.name}
    if immediately:
        out["VersionId"] = token
    return out


def _schedule_of(rules: dict[str, Any]) -> dict[str, str]:
    """RotationRules as the spec.rotation fields they stand for."""
    out: dict[str, str] = {}
    if rules.get("ScheduleExpression"):
        out["schedule"] = str(rules["ScheduleExpression"])
    elif rules.get("AutomaticallyAfterDays"):
        out["schedule"] = f"rate({int(rules['AutomaticallyAfterDays'])} days)"
    if rules.get("Duration") and out:
        out["window"] = str(rules["Duration"])
    return out


def cancel_rotate_secret(deps: Deps, call: Call, p: dict[str, Any]) -> Result:
    record: SecretRecord = not_deleted(find(deps, call, "CancelRotateSecret", p["SecretId"]))
    pending = deps.store.get_version(record.arn, stage="AWSPENDING")
    call.commit_point(ARN=record.arn, Name=record.name)
    deps.secrets.update(record.evolve(rotation_enabled=False, next_rotation_at=None))
    if record.object_name:
        deps.objects.merge_patch(record.namespace, record.object_name,
                                 {"metadata": {"annotations": {ANNOTATION_ROTATE_NOW: None}}})
    out: Result = {"ARN": record.arn, "Name": record.name}
    if pending is not None:
        out["VersionId"] = pending.version_id
    return out
