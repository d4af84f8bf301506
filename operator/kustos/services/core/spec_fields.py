"""What a secret's record takes from its ManagedSecret's spec, and how it is kept ordered.

The spec is the authority for description, tags and resource policy (`SPEC_FIELDS`). Every
writer — the operator reconciling a generation, an API call that patched the spec — derives
them from one spec with these functions and writes them with the spec's
`metadata.generation` through `SecretService.apply_spec`, a compare-and-set in the store: two
writers of the same generation write the same values, and a writer of an older generation
writes nothing. The resource policy goes through `resource_policy.follow_spec` (a document
that fails PutResourcePolicy's checks leaves the one in force). Values never pass through
here (specs hold none).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kustos.models.records import SecretRecord
from kustos.services.core.resource_policy import follow_spec

__all__ = ["plain_fields", "record_fields"]


def plain_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Description and tags as `spec` declares them."""
    return {
        "description": str(spec.get("description") or ""),
        "tags": {str(k): str(v) for k, v in dict(spec.get("tags") or {}).items()},
    }


def record_fields(spec: Mapping[str, Any], record: SecretRecord) -> dict[str, Any]:
    """Every spec-owned record field as of `spec` (`record`: the policy in force now)."""
    decided = follow_spec(record, spec.get("resourcePolicy"))
    return {**plain_fields(spec), "resource_policy": decided.record.resource_policy}
