"""Secrets Manager operations that write values and metadata.

CreateSecret, PutSecretValue, UpdateSecret, UpdateSecretVersionStage, TagResource and
UntagResource. One source of truth: a secret created here is also a ManagedSecret object in
its namespace (the operator adopts and projects it); description and tags are written to
both the store record and the object's spec. ClientRequestToken becomes the VersionId, as
AWS documents: the same token with the same value returns the existing version and changes
nothing; the same token with another value is ResourceExistsException.
"""

from __future__ import annotations

import uuid
from typing import Any

from kustos.errors import ConflictError, InvalidParameterError, ResourceExistsError
from kustos.models.records import AWSCURRENT, SecretRecord, VersionRecord
from kustos.models.sensitive import SecretValue
from kustos.services.api.call import Call, Deps
from kustos.services.api.ids import (
    check_name,
    check_tags,
    find,
    not_deleted,
    object_name_for,
    provisional,
    value_of,
    write_spec,
)
from kustos.services.core.secrets import make_arn

__all__ = [
    "ANNOTATION_CREATED_BY",
    "MAX_VERSIONS",
    "create_secret",
    "put_secret_value",
    "tag_resource",
    "untag_resource",
    "update_secret",
    "update_secret_version_stage",
]

ANNOTATION_CREATED_BY = "kustos.io/created-by"
#: AWS's quota of versions per secret; older unlabelled versions are removed beyond it.
MAX_VERSIONS = 100
Result = dict[str, Any]


def _same_version(
    deps: Deps, record: SecretRecord, token: str, value: SecretValue
) -> VersionRecord | None:
    """The version `token` made before, if its value equals `value`; raise if it differs."""
    existing = deps.store.get_version(record.arn, version_id=token)
    if existing is None:
        return None
    if deps.secrets.open(existing) != value:
        raise ResourceExistsError(
            f"You can't use ClientRequestToken {token} because that value is already in use "
            f"for a version of secret {record.arn}."
        )
    return existing


def _prune(deps: Deps, record: SecretRecord) -> None:
    versions = deps.secrets.versions(record)
    if len(versions) > MAX_VERSIONS:
        stale = [v.version_id for v in versions[MAX_VERSIONS:] if not v.stages]
        deps.store.delete_versions(record.arn, stale)


def create_secret(deps: Deps, call: Call, p: dict[str, Any]) -> Result:
    namespace = call.caller_namespace()
    name = check_name(p["Name"])
    value = value_of(p, required=False)
    tags = check_tags(p.get("Tags"))
    if p.get("AddReplicaRegions"):
        raise InvalidParameterError("Kustos does not replicate secrets to other regions.")
    call.secret_name, call.namespace = name, namespace
    existing = deps.store.get_secret(namespace, name)
    arn = existing.arn if existing is not None else make_arn(deps.cluster, namespace, name)
    call.authorize(
        "CreateSecret",
        existing or provisional(deps, namespace, name, arn),
        namespace,
        {
            "secretsmanager:Name": name,
            "secretsmanager:Description": p.get("Description"),
            "secretsmanager:KmsKeyId": p.get("KmsKeyId"),
            "aws:TagKeys": sorted(tags) or None,
            **{f"aws:RequestTag/{k}": v for k, v in tags.items()},
        },
    )
    token = p.get("ClientRequestToken") or str(uuid.uuid4())
    if existing is not None:
        call.about(existing)
        not_deleted(existing)
        same = value is not None and _same_version(deps, existing, token, value)
        if not same:
            raise ResourceExistsError(
                f"The operation failed because the secret {name} already exists."
            )
        return {"ARN": existing.arn, "Name": name, "VersionId": same.version_id}
    kms_key_id = p.get("KmsKeyId") or ""
    deps.secrets.key_for(kms_key_id)  # an unknown key is refused before anything is written
    object_name = _free_object_name(deps, namespace, name)
    call.secret_arn = arn
    result = {"ARN": arn, "Name": name}
    if value is not None:
        result["VersionId"] = token
    call.commit_point(**result)
    description = p.get("Description", "")
    record = deps.secrets.create(
        namespace,
        name,
        description=description,
        tags=tags,
        object_name=object_name,
        arn=arn,
        kms_key_id=kms_key_id,
        extra={"created_by": "api"},
    )
    try:
        if value is not None:
            deps.secrets.add_version(record, value, version_id=token)
        spec: dict[str, Any] = {"name": name}
        if description:
            spec["description"] = description
        if tags:
            spec["tags"] = tags
        deps.objects.create(namespace, object_name, spec, {ANNOTATION_CREATED_BY: "api"})
    except Exception:
        deps.store.purge_secret(arn)  # no half-created secret: neither object nor record
        raise
    return result


def _free_object_name(deps: Deps, namespace: str, name: str) -> str:
    for hashed in (False, True):
        candidate = object_name_for(name, hashed=hashed)
        found = deps.objects.get(namespace, candidate)
        if found is None:
            return candidate
        if (found.get("spec") or {}).get("name", candidate) == name:
            raise ResourceExistsError(
                f"The operation failed because the secret {name} "
                f"already exists (ManagedSecret {candidate})."
            )
    raise ConflictError(f"no free ManagedSecret name for secret {name}")


def _add_value(
    deps: Deps,
    call: Call,
    record: SecretRecord,
    value: SecretValue,
    token: str | None,
    stages: list[str],
) -> Result:
    token = token or str(uuid.uuid4())
    same = _same_version(deps, record, token, value)
    if same is not None:
        return {
            "ARN": record.arn,
            "Name": record.name,
            "VersionId": same.version_id,
            "VersionStages": list(same.stages),
        }
    call.commit_point(ARN=record.arn, Name=record.name, VersionId=token)
    version = deps.secrets.add_version(record, value, stages=stages, version_id=token)
    _prune(deps, record)
    return {
        "ARN": record.arn,
        "Name": record.name,
        "VersionId": version.version_id,
        "VersionStages": list(version.stages),
    }


def put_secret_value(deps: Deps, call: Call, p: dict[str, Any]) -> Result:
    stages = list(dict.fromkeys(p.get("VersionStages") or [AWSCURRENT]))
    value = value_of(p, required=True)
    assert value is not None
    record = not_deleted(
        find(deps, call, "PutSecretValue", p["SecretId"], {"secretsmanager:VersionStage": stages})
    )
    return _add_value(deps, call, record, value, p.get("ClientRequestToken"), stages)


def update_secret(deps: Deps, call: Call, p: dict[str, Any]) -> Result:
    value = value_of(p, required=False)
    record = not_deleted(
        find(
            deps,
            call,
            "UpdateSecret",
            p["SecretId"],
            {
                "secretsmanager:Description": p.get("Description"),
                "secretsmanager:KmsKeyId": p.get("KmsKeyId"),
            },
        )
    )
    result: Result = {"ARN": record.arn, "Name": record.name}
    changes: dict[str, Any] = {}
    if "Description" in p and p["Description"] != record.description:
        changes["description"] = p["Description"]
    if "KmsKeyId" in p and p["KmsKeyId"] != record.kms_key_id:
        deps.secrets.key_for(p["KmsKeyId"])  # an unknown key is refused, nothing changed
        changes["kms_key_id"] = p["KmsKeyId"]
    if value is not None:  # sealed with the new key when KmsKeyId changes too
        result = _add_value(
            deps, call, record.evolve(**changes), value, p.get("ClientRequestToken"), [AWSCURRENT]
        )
        result.pop("VersionStages", None)
    call.commit_point(ARN=record.arn, Name=record.name)
    if "description" in changes:
        description = changes.pop("description")
        write_spec(deps, record, {"description": description or None}, {"description": description})
    if changes:
        updated = deps.secrets.update(record.evolve(**changes))
        if "kms_key_id" in changes:  # as AWS: labelled versions are re-encrypted with it
            deps.secrets.rewrap_labelled(updated)
    return result


def update_secret_version_stage(deps: Deps, call: Call, p: dict[str, Any]) -> Result:
    """AWS's rules: a label attached elsewhere moves only when RemoveFromVersionId names the
    version holding it; RemoveFromVersionId alone removes it (never AWSCURRENT)."""
    stage = p["VersionStage"]
    move_to, remove_from = p.get("MoveToVersionId"), p.get("RemoveFromVersionId")
    record = not_deleted(
        find(
            deps,
            call,
            "UpdateSecretVersionStage",
            p["SecretId"],
            {"secretsmanager:VersionStage": stage},
        )
    )
    _check_stage_move(deps, record, stage, move_to, remove_from)
    call.commit_point(ARN=record.arn, Name=record.name)
    if move_to is not None or remove_from is not None:
        deps.store.move_stage(record.arn, stage, to_version=move_to, from_version=remove_from)
        deps.secrets.update(record)  # LastChangedDate
    return {"ARN": record.arn, "Name": record.name}


def _check_stage_move(
    deps: Deps, record: SecretRecord, stage: str, move_to: str | None, remove_from: str | None
) -> None:
    holders = {v.version_id: v for v in deps.secrets.versions(record)}
    for version_id in (move_to, remove_from):
        if version_id is not None and version_id not in holders:
            raise InvalidParameterError(f"Not a valid version: {version_id}")
    holder = next((v for v, rec in holders.items() if stage in rec.stages), None)
    if remove_from is not None and remove_from != holder:
        raise InvalidParameterError(
            f"The staging label {stage} is not attached to version {remove_from}, so you "
            "can't remove it."
        )
    if move_to is not None and holder not in (None, move_to) and remove_from is None:
        raise InvalidParameterError(
            f"The parameter RemoveFromVersionId can't be empty. Staging label {stage} is "
            f"currently attached to version {holder}, so you must explicitly reference that "
            "version in RemoveFromVersionId."
        )
    if move_to is None and remove_from is not None and stage == AWSCURRENT:
        raise InvalidParameterError(
            "You can't remove the staging label AWSCURRENT from a version; move it to "
            "another version with MoveToVersionId."
        )


def tag_resource(deps: Deps, call: Call, p: dict[str, Any]) -> Result:
    tags = check_tags(p["Tags"])
    record = not_deleted(
        find(
            deps,
            call,
            "TagResource",
            p["SecretId"],
            {"aws:TagKeys": sorted(tags), **{f"aws:RequestTag/{k}": v for k, v in tags.items()}},
        )
    )
    merged = {**record.tags, **tags}
    check_tags([{"Key": k, "Value": v} for k, v in merged.items()])
    call.commit_point()
    write_spec(deps, record, {"tags": tags}, {"tags": merged})
    return {}


def untag_resource(deps: Deps, call: Call, p: dict[str, Any]) -> Result:
    keys = list(p["TagKeys"])
    record = not_deleted(find(deps, call, "UntagResource", p["SecretId"], {"aws:TagKeys": keys}))
    call.commit_point()
    remaining = {k: v for k, v in record.tags.items() if k not in keys}
    write_spec(deps, record, {"tags": {k: None for k in keys}}, {"tags": remaining})
    return {}
