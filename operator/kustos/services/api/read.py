"""Secrets Manager operations that read: values, metadata, listings.

GetSecretValue, BatchGetSecretValue, DescribeSecret, ListSecrets (Filters, sorting,
NextToken pagination) and ListSecretVersionIds. Values are decrypted only after the caller is
authorized, and returned only after the call's audit record is written. A secret scheduled
for deletion cannot be read (InvalidRequestException), as in AWS; it can be described.
"""

from __future__ import annotations

from typing import Any

from kustos.errors import AccessDeniedError, InvalidParameterError, KustosError
from kustos.models.nonblocking import after_audit
from kustos.models.records import SecretRecord, VersionRecord
from kustos.rotation.engine import AWAIT
from kustos.services.api.call import Call, Deps
from kustos.services.api.filters import matches, parse_filters, sort_key
from kustos.services.api.ids import (
    decode_token,
    encode_token,
    find,
    not_deleted,
    tags_to_aws,
)
from kustos.store.rotations import HELD

__all__ = [
    "batch_get_secret_value",
    "describe_secret",
    "get_secret_value",
    "list_secret_version_ids",
    "list_secrets",
]

Result = dict[str, Any]


def _value_of(deps: Deps, record: SecretRecord, version: VersionRecord) -> Result:
    value = deps.secrets.open(version)
    out: Result = {
        "ARN": record.arn,
        "Name": record.name,
        "VersionId": version.version_id,
        "VersionStages": list(version.stages),
        "CreatedDate": version.created_at,
    }
    if value.is_binary:
        out["SecretBinary"] = value.reveal_bytes()
    else:
        out["SecretString"] = value.reveal()
    return out


def _touch(deps: Deps, record: SecretRecord) -> None:
    """LastAccessedDate is a date (as in AWS): written at most once a day per secret."""
    today = deps.secrets.clock().replace(hour=0, minute=0, second=0, microsecond=0)
    if record.last_accessed_at != today:
        deps.store.update_secret(record.evolve(last_accessed_at=today))


def _count_read(deps: Deps, call: Call, record: SecretRecord, action: str) -> None:
    """Count a successful read for the aggregated `Accessed` Events, once it is audited."""
    reads = deps.reads
    if reads is not None:
        after_audit(lambda: reads.read(call.principal, record, action))


def get_secret_value(deps: Deps, call: Call, p: dict[str, Any]) -> Result:
    version_id, stage = p.get("VersionId"), p.get("VersionStage")
    record = not_deleted(
        find(
            deps,
            call,
            "GetSecretValue",
            p["SecretId"],
            {"secretsmanager:VersionId": version_id, "secretsmanager:VersionStage": stage},
        )
    )
    version = deps.secrets.version(record, version_id=version_id, stage=stage)
    result = _value_of(deps, record, version)
    call.commit_point(ARN=record.arn, Name=record.name, VersionId=version.version_id)
    _touch(deps, record)
    _count_read(deps, call, record, "GetSecretValue")
    return result


def batch_get_secret_value(deps: Deps, call: Call, p: dict[str, Any]) -> Result:
    ids, filters = p.get("SecretIdList"), p.get("Filters")
    if (ids is None) == (filters is None):
        raise InvalidParameterError(
            "Either 'SecretIdList' or 'Filters' must be provided, but not both."
        )
    if ids is not None and p.get("MaxResults") is not None:
        raise InvalidParameterError(
            "'Filters' not specified. 'Filters' must also be "
            "specified when 'MaxResults' is provided."
        )
    caller = call.caller_namespace()
    call.namespace = caller
    call.authorize("BatchGetSecretValue", None, caller)
    next_token = None
    if ids is None:
        listing = list_secrets(
            deps,
            call,
            {
                "Filters": filters,
                "MaxResults": p.get("MaxResults"),
                "NextToken": p.get("NextToken"),
            },
            authorize=False,
        )
        ids = [entry["ARN"] for entry in listing["SecretList"]]
        next_token = listing.get("NextToken")
    values: list[Result] = []
    errors: list[Result] = []
    read: list[SecretRecord] = []
    for secret_id in dict.fromkeys(ids):
        try:
            record = not_deleted(find(deps, call, "GetSecretValue", secret_id))
            values.append(_value_of(deps, record, deps.secrets.version(record)))
            read.append(record)
        except (AccessDeniedError, KustosError) as exc:
            errors.append(
                {"SecretId": secret_id, "ErrorCode": exc.aws_code, "Message": exc.message}
            )
    call.secret_arn = call.secret_name = None
    call.namespace = caller
    call.commit_point(SecretArns=[v["ARN"] for v in values], Errors=[e["SecretId"] for e in errors])
    for record in read:
        _count_read(deps, call, record, "BatchGetSecretValue")
    out: Result = {"SecretValues": values, "Errors": errors}
    if next_token:
        out["NextToken"] = next_token
    return out


def _version_map(deps: Deps, record: SecretRecord) -> dict[str, list[str]]:
    return {v.version_id: list(v.stages) for v in deps.secrets.versions(record) if v.stages}


def _describe(deps: Deps, record: SecretRecord, *, versions_key: str) -> Result:
    out: Result = {
        "ARN": record.arn,
        "Name": record.name,
        "LastChangedDate": record.updated_at,
        "CreatedDate": record.created_at,
    }
    lambda_arn = record.extra.get("rotation_lambda_arn")
    if record.rotation_enabled or record.rotation_rules or lambda_arn:
        out["RotationEnabled"] = record.rotation_enabled  # AWS omits it if never rotated
    optional = {
        "Tags": tags_to_aws(record.tags) or None,
        versions_key: _version_map(deps, record) or None,
        "Description": record.description or None,
        "KmsKeyId": record.kms_key_id or None,
        "LastAccessedDate": record.last_accessed_at,
        "LastRotatedDate": record.last_rotated_at,
        "NextRotationDate": record.next_rotation_at,
        "DeletedDate": record.deletion_date,
        "RotationRules": record.rotation_rules or None,
        "RotationLambdaARN": lambda_arn,
    }
    out.update({k: v for k, v in optional.items() if v is not None})
    rotation = _rotation_state(deps, record)
    if rotation:
        out["KustosRotation"] = rotation
    return out


def _rotation_state(deps: Deps, record: SecretRecord) -> Result | None:
    """A Kustos member beside AWS's rotation members: the rotation that AWS's members cannot
    show, one past finishSecret (awaitRollout: AWSCURRENT already moved, the previous
    credentials not retired yet) or held (AWSCURRENT moved back). Absent otherwise."""
    if deps.rotations is None:
        return None
    latest = next(iter(deps.rotations.history(record.arn, limit=1)), None)
    if latest is None or not (latest.status == HELD or (latest.active and latest.step == AWAIT)):
        return None
    state: Result = {
        "Token": latest.token,
        "Step": latest.step,
        "State": latest.status,
        "FinishedDate": latest.finished_at,
    }
    if latest.status == HELD:
        state.update(Reason=latest.last_error, NextAttemptDate=latest.next_attempt_at)
    return {k: v for k, v in state.items() if v is not None}


def describe_secret(deps: Deps, call: Call, p: dict[str, Any]) -> Result:
    record = find(deps, call, "DescribeSecret", p["SecretId"])
    result = _describe(deps, record, versions_key="VersionIdsToStages")
    call.commit_point(ARN=record.arn, Name=record.name)
    return result


def list_secrets(deps: Deps, call: Call, p: dict[str, Any], *, authorize: bool = True) -> Result:
    caller = call.caller_namespace()
    call.namespace = caller
    if authorize:
        call.authorize("ListSecrets", None, caller)
    filters = parse_filters(p.get("Filters"))
    query = {
        "f": filters,
        "s": p.get("SortBy"),
        "o": p.get("SortOrder"),
        "d": p.get("IncludePlannedDeletion"),
    }
    offset = decode_token(p.get("NextToken"), query)
    limit = p.get("MaxResults") or 100
    records = [
        r
        for r in deps.store.list_secrets(caller)
        if (p.get("IncludePlannedDeletion") or r.deletion_date is None) and matches(r, filters)
    ]
    records.sort(
        key=sort_key(p.get("SortBy") or "created-date"), reverse=p.get("SortOrder") == "desc"
    )
    page = records[offset : offset + limit]
    out: Result = {
        "SecretList": [_describe(deps, r, versions_key="SecretVersionsToStages") for r in page]
    }
    if offset + limit < len(records):
        out["NextToken"] = encode_token(offset + limit, query)
    return out


def list_secret_version_ids(deps: Deps, call: Call, p: dict[str, Any]) -> Result:
    record = find(deps, call, "ListSecretVersionIds", p["SecretId"])
    query = {"arn": record.arn, "d": bool(p.get("IncludeDeprecated"))}
    offset = decode_token(p.get("NextToken"), query)
    limit = p.get("MaxResults") or 100
    versions = [v for v in deps.secrets.versions(record) if v.stages or p.get("IncludeDeprecated")]
    page = versions[offset : offset + limit]
    out: Result = {
        "ARN": record.arn,
        "Name": record.name,
        "Versions": [
            {
                "VersionId": v.version_id,
                "VersionStages": list(v.stages),
                "CreatedDate": v.created_at,
            }
            for v in page
        ],
    }
    if offset + limit < len(versions):
        out["NextToken"] = encode_token(offset + limit, query)
    call.commit_point(ARN=record.arn, Name=record.name)
    return out
