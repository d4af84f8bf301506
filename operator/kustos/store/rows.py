"""Conversions between store rows and the records of `kustos.models.records`.

Reading is defensive: a row that does not decode (invalid JSON, an unparsable timestamp, a
wrong type) raises `StoreError` naming the secret's ARN and the column, never the contents.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kustos.errors import StoreError
from kustos.models.records import SealedPayload, SecretRecord, VersionRecord

__all__ = ["secret_from_row", "secret_to_row", "secret_to_row_fields", "version_from_row"]

_JSON_COLUMNS = ("tags", "rotation_rules", "extra")
_TIME_COLUMNS = ("deletion_date", "last_accessed_at", "last_rotated_at", "next_rotation_at")


def _dump(value: Mapping[str, Any]) -> str:
    return json.dumps(dict(value), separators=(",", ":"), sort_keys=True)


def secret_to_row(record: SecretRecord) -> dict[str, Any]:
    return {
        "arn": record.arn,
        "namespace": record.namespace,
        "name": record.name,
        "description": record.description,
        "tags": _dump(record.tags),
        "kms_key_id": record.kms_key_id,
        "object_name": record.object_name,
        "resource_policy": record.resource_policy,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "deletion_date": record.deletion_date,
        "last_accessed_at": record.last_accessed_at,
        "last_rotated_at": record.last_rotated_at,
        "next_rotation_at": record.next_rotation_at,
        "rotation_enabled": record.rotation_enabled,
        "rotation_rules": _dump(record.rotation_rules),
        "extra": _dump(record.extra),
        "spec_generation": record.spec_generation,
        "spec_uid": record.spec_uid,
    }


def secret_to_row_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Some `SecretRecord` fields (by attribute name) as column values."""
    return {k: _dump(v) if k in _JSON_COLUMNS else v for k, v in fields.items()}


def _corrupt(arn: str, column: str) -> StoreError:
    return StoreError(f"secret {arn!r} has a corrupted row: column {column!r} does not decode")


def _time(arn: str, column: str, value: Any, *, required: bool) -> datetime | None:
    if value is None and not required:
        return None
    if not isinstance(value, datetime):
        raise _corrupt(arn, column)
    return value


def _object(arn: str, column: str, text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        raise _corrupt(arn, column) from None
    if not isinstance(value, dict):
        raise _corrupt(arn, column)
    return value


def secret_from_row(row: Mapping[Any, Any]) -> SecretRecord:
    arn = str(row["arn"])
    decoded = {c: _object(arn, c, row[c]) for c in _JSON_COLUMNS}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in decoded["tags"].items()):
        raise _corrupt(arn, "tags")
    for column in ("namespace", "name", "description", "kms_key_id"):
        if not isinstance(row[column], str):
            raise _corrupt(arn, column)
    created = _time(arn, "created_at", row["created_at"], required=True)
    updated = _time(arn, "updated_at", row["updated_at"], required=True)
    assert created is not None
    assert updated is not None
    times = {c: _time(arn, c, row[c], required=False) for c in _TIME_COLUMNS}
    return SecretRecord(
        arn=arn,
        namespace=row["namespace"],
        name=row["name"],
        created_at=created,
        updated_at=updated,
        description=row["description"],
        kms_key_id=row["kms_key_id"],
        object_name=row["object_name"],
        resource_policy=row["resource_policy"],
        rotation_enabled=bool(row["rotation_enabled"]),
        tags=decoded["tags"],
        rotation_rules=decoded["rotation_rules"],
        extra=decoded["extra"],
        deletion_date=times["deletion_date"],
        last_accessed_at=times["last_accessed_at"],
        last_rotated_at=times["last_rotated_at"],
        next_rotation_at=times["next_rotation_at"],
        spec_generation=int(row["spec_generation"] or 0),
        spec_uid=row["spec_uid"],
    )


def version_from_row(row: Mapping[Any, Any], stages: tuple[str, ...]) -> VersionRecord:
    arn = str(row["arn"])
    created = _time(arn, "created_at", row["created_at"], required=True)
    assert created is not None
    for column in ("wrapped_key", "nonce", "ciphertext"):
        if not isinstance(row[column], bytes | memoryview):
            raise _corrupt(arn, column)
    sealed = SealedPayload(
        key_id=str(row["key_id"]),
        wrapped_key=bytes(row["wrapped_key"]),
        nonce=bytes(row["nonce"]),
        ciphertext=bytes(row["ciphertext"]),
        binary=bool(row["is_binary"]),
    )
    return VersionRecord(
        arn=arn,
        version_id=str(row["version_id"]),
        created_at=created,
        stages=tuple(sorted(stages)),
        sealed=sealed,
        fingerprint=str(row["fingerprint"]),
    )
