"""Shared rules of the Secrets Manager operations: secret ids, names, tags, values, tokens.

Owns how a SecretId (name, full ARN, partial ARN) finds a secret, how a hierarchical name
becomes a ManagedSecret `metadata.name`, and the pagination token format. No I/O besides
the store lookups passed in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from kustos.errors import (
    InvalidParameterError,
    InvalidRequestError,
    ResourceNotFoundError,
    ValidationError,
)
from kustos.models.records import SecretRecord
from kustos.models.sensitive import SecretValue
from kustos.models.spec import tag_key_clashes
from kustos.services.api.call import Call, Deps
from kustos.services.core.naming import object_name_for
from kustos.services.core.spec_fields import record_fields
from kustos.store.base import Store

__all__ = [
    "INVALID_NAME",
    "InvalidNextTokenError",
    "check_name",
    "check_tags",
    "decode_token",
    "encode_token",
    "find",
    "not_deleted",
    "object_name_for",
    "provisional",
    "resolve",
    "tags_to_aws",
    "target_namespace",
    "value_of",
    "write_spec",
]

#: The field manager of the API's writes to ManagedSecret specs (seen in managedFields).
API_FIELD_MANAGER = "kustos-api"

_NAME = re.compile(r"^[A-Za-z0-9/_+=.@-]{1,512}$")
_ARN = re.compile(
    r"^arn:kustos:secretsmanager:(?P<cluster>[^:]*):(?P<ns>[^:]+):secret:(?P<rest>.+)$"
)


class InvalidNextTokenError(InvalidParameterError):
    aws_code = "InvalidNextTokenException"


#: AWS's answer (ValidationException) for a name, or a SecretId that is not an ARN, with
#: characters outside the name alphabet (AWS's message lists `!`; its documentation and the
#: ManagedSecret CRD do not allow it, and neither does Kustos).
INVALID_NAME = (
    "Invalid name. Must be a valid name containing alphanumeric characters, or any "
    "of the following: -/_+=.@!"
)


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValidationError(INVALID_NAME)
    return name


def resolve(store: Store, cluster: str, caller_namespace: str, secret_id: str) -> SecretRecord:
    """The secret a SecretId names: a name in the caller's namespace, or an ARN (full, or
    partial without the 6-character suffix) in any namespace of this cluster."""
    found: SecretRecord | None = None
    match = _ARN.match(secret_id)
    if match is not None:
        if match["cluster"] == cluster:
            found = store.get_secret_by_arn(secret_id) or store.get_secret(
                match["ns"], match["rest"]
            )
    elif not secret_id.startswith("arn:"):
        check_name(secret_id)
        if caller_namespace:
            found = store.get_secret(caller_namespace, secret_id)
    if found is None:
        raise ResourceNotFoundError("Secrets Manager can't find the specified secret.")
    return found


def target_namespace(cluster: str, caller_namespace: str, secret_id: str) -> str:
    """The namespace a SecretId points into (for authorizing a request on a missing secret)."""
    match = _ARN.match(secret_id)
    if match is not None and match["cluster"] == cluster:
        return match["ns"]
    return caller_namespace


def provisional(deps: Deps, namespace: str, secret_id: str, arn: str | None = None) -> SecretRecord:
    """A record for authorizing an action on a secret that does not exist (yet): its ARN is
    `arn`, or the id itself when it is an ARN, or the name's ARN without the suffix."""
    match = _ARN.match(secret_id)
    name = match["rest"] if match else secret_id
    if arn is None:
        arn = (
            secret_id
            if match
            else (f"arn:kustos:secretsmanager:{deps.cluster}:{namespace}:secret:{name}")
        )
    now = deps.secrets.clock()
    return SecretRecord(arn=arn, namespace=namespace, name=name, created_at=now, updated_at=now)


def not_deleted(record: SecretRecord) -> SecretRecord:
    if record.deletion_date is not None:
        raise InvalidRequestError(
            "You can't perform this operation on the secret because it was marked for deletion."
        )
    return record


def value_of(params: Mapping[str, Any], *, required: bool) -> SecretValue | None:
    text, blob = params.get("SecretString"), params.get("SecretBinary")
    if text is not None and blob is not None:
        raise InvalidParameterError(
            "You can't specify both a binary secret value and a string "
            "secret value in the same secret."
        )
    if text is None and blob is None:
        if required:
            raise InvalidParameterError("You must provide either SecretString or SecretBinary.")
        return None
    value = SecretValue(str(text) if text is not None else bytes(blob or b""))
    if len(value) > 65536:
        raise InvalidParameterError("The secret value exceeds 65536 bytes.")
    return value


def check_tags(tags: Sequence[Mapping[str, str]] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    keys: list[str] = []
    for tag in tags or ():
        key, value = tag.get("Key"), tag.get("Value", "")
        if not key or len(key) > 128 or key.lower().startswith("aws:"):
            raise InvalidParameterError(
                "Tag keys are 1-128 characters and must not start with aws:"
            )
        if len(value) > 256:
            raise InvalidParameterError(f"The value of tag {key!r} exceeds 256 characters.")
        out[key] = value
        keys.append(key)
    if len(out) > 50:
        raise InvalidParameterError("A secret has at most 50 tags.")
    clashes = tag_key_clashes(keys)
    if clashes:
        raise InvalidParameterError(
            "Tag keys must be unique, ignoring case (condition keys such as "
            f"secretsmanager:ResourceTag/<key> ignore case): {', '.join(map(repr, clashes[0]))}"
        )
    return out


def tags_to_aws(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": k, "Value": v} for k, v in sorted(tags.items())]


def encode_token(offset: int, query: Mapping[str, Any]) -> str:
    blob = json.dumps({"o": offset, "q": _query_hash(query)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(blob.encode()).decode()


def decode_token(token: str | None, query: Mapping[str, Any]) -> int:
    """The offset a NextToken stands for; InvalidNextTokenException if it is not ours or
    was issued for a different query."""
    if not token:
        return 0
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset = int(data["o"])
        same = data["q"] == _query_hash(query)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidNextTokenError("The NextToken value is invalid.") from None
    if not same or offset < 0:
        raise InvalidNextTokenError("The NextToken value is invalid.")
    return offset


def _query_hash(query: Mapping[str, Any]) -> str:
    blob = json.dumps(query, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def find(
    deps: Deps,
    call: Call,
    action: str,
    secret_id: str,
    keys: Mapping[str, Any] | None = None,
) -> SecretRecord:
    """Resolve `secret_id` and authorize `action` on it. A missing secret is answered with
    ResourceNotFoundException only to a caller who may do `action` there (AWS hides
    existence from callers without permission)."""
    caller = call.principal.namespace
    try:
        record = resolve(deps.store, deps.cluster, caller, secret_id)
    except ResourceNotFoundError:
        namespace = target_namespace(deps.cluster, caller, secret_id)
        if namespace:
            call.authorize(
                action,
                provisional(deps, namespace, secret_id),
                namespace,
                {"secretsmanager:SecretId": secret_id, **(keys or {})},
            )
        raise
    call.about(record)
    call.authorize(action, record, record.namespace, keys)
    return record


def write_spec(
    deps: Deps, record: SecretRecord, spec_patch: dict[str, Any], fields: dict[str, Any]
) -> None:
    """An API write of spec-owned fields: the ManagedSecret's spec first (the authority; a
    merge patch under the API's field manager), then the record from the spec that patch
    produced, at its generation (compare-and-set: a concurrent newer write wins, an older
    one loses, and both callers then read the same record). `fields` is the change for a
    secret without an object (the record is then the only copy)."""
    obj = None
    if record.object_name:
        obj = deps.objects.merge_patch(
            record.namespace,
            record.object_name,
            {"spec": spec_patch},
            field_manager=API_FIELD_MANAGER,
        )
    if obj is None:
        deps.secrets.apply_spec(record, record.spec_generation, fields)
        return
    generation = int(obj["metadata"].get("generation") or 0)
    if "resource_policy" in fields:  # the caller's own document (text as sent) is in force
        record = record.evolve(resource_policy=fields["resource_policy"])
    deps.secrets.apply_spec(
        record, generation, record_fields(obj.get("spec") or {}, record), obj["metadata"].get("uid")
    )
