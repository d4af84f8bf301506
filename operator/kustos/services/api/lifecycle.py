"""Secrets Manager operations on a secret's lifecycle: delete and restore.

Deletion is scheduled (RecoveryWindowInDays 7-30, default 30) or immediate
(ForceDeleteWithoutRecovery). While scheduled, the record carries `deletion_date`, the
ManagedSecret object is deleted (its projected Secret with it), and values cannot be read;
the object's spec is kept in the record so RestoreSecret can bring it back. The purge after
the window and the handling of `kubectl delete ms` live in `DeletionService`
(`kustos.services.core.deletion`); the API uses the same instance (`Deps.deletion`), so both ways
post the same DeletionScheduled / Restored Events, audit records and notifications.
Forcibly deleting a secret that does not exist succeeds, as in AWS. RotateSecret and
CancelRotateSecret are in `services.api.rotation`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from kustos.errors import InvalidParameterError, ResourceNotFoundError
from kustos.services.api.call import Call, Deps
from kustos.services.api.ids import find, not_deleted, provisional, target_namespace

__all__ = ["delete_secret", "restore_secret"]

Result = dict[str, Any]


def delete_secret(deps: Deps, call: Call, p: dict[str, Any]) -> Result:
    window, force = p.get("RecoveryWindowInDays"), bool(p.get("ForceDeleteWithoutRecovery"))
    if window is not None and force:
        raise InvalidParameterError(
            "You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays."
        )
    if window is not None and not 7 <= window <= 30:
        raise InvalidParameterError(
            "The RecoveryWindowInDays value must be between 7 and 30 days (inclusive)."
        )
    try:
        record = find(
            deps,
            call,
            "DeleteSecret",
            p["SecretId"],
            {
                "secretsmanager:RecoveryWindowInDays": window,
                "secretsmanager:ForceDeleteWithoutRecovery": force,
            },
        )
    except ResourceNotFoundError:
        namespace = target_namespace(deps.cluster, call.principal.namespace, p["SecretId"])
        if not force or not namespace:  # (find authorized the call when there is one)
            raise
        # AWS: forcibly deleting a secret that does not exist is not an error.
        gone = provisional(deps, namespace, p["SecretId"])
        now = deps.secrets.clock()
        call.commit_point(ARN=gone.arn, Name=gone.name, DeletionDate=now)
        return {"ARN": gone.arn, "Name": gone.name, "DeletionDate": now}
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
