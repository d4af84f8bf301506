"""Kopf handlers for SecretAccessPolicy and ClusterSecretAccessPolicy: report validity.

The API server's schema checks the shape; Kustos checks the policy document itself (and
that a SecretAccessPolicy names only its own namespace's ServiceAccounts) and writes the
verdict into status: Ready=True (reason Reconciled) with the statement count, or
Ready=False (reason InvalidSpec) with the parser's message. The AccessService applies the
same check and ignores invalid policies, so a policy is in force exactly when Ready=True.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from kustos.models.reasons import ConditionType, Reason
from kustos.services.policies import compile_policy_object

GROUP, VERSION = "kustos.io", "v1alpha1"
PLURALS = ("secretaccesspolicies", "clustersecretaccesspolicies")


def policy_status(body: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """The status a policy object should have (pure; lastTransitionTime kept if unchanged)."""
    compiled = compile_policy_object(body)
    generation = int(body.get("metadata", {}).get("generation") or 0)
    ok = compiled.policy is not None
    condition = {
        "type": str(ConditionType.READY),
        "status": "True" if ok else "False",
        "reason": str(Reason.RECONCILED if ok else Reason.INVALID_SPEC),
        "message": "policy is valid and in force" if ok else (compiled.error or "invalid")[:1024],
        "observedGeneration": generation,
    }
    previous = next((c for c in current.get("conditions") or []
                     if c.get("type") == condition["type"]), None)  # fmt: skip
    same = previous is not None and previous.get("status") == condition["status"]
    condition["lastTransitionTime"] = (
        previous.get("lastTransitionTime") if same and previous
        else datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    )  # fmt: skip
    statements = len(compiled.policy.statements) if compiled.policy is not None else 0
    return {"observedGeneration": generation, "statements": statements,
            "conditions": [condition]}  # fmt: skip


def _check(body: kopf.Body, status: kopf.Status, patch: kopf.Patch, **_: Any) -> None:
    current = dict(status or {})
    wanted = policy_status(dict(body), current)
    for key, value in wanted.items():
        if current.get(key) != value:
            patch.status[key] = value


for _plural in PLURALS:
    kopf.on.resume(GROUP, VERSION, _plural)(_check)
    kopf.on.create(GROUP, VERSION, _plural)(_check)
    kopf.on.update(GROUP, VERSION, _plural, field="spec")(_check)
