"""Kopf handlers for SecretAccessPolicy and ClusterSecretAccessPolicy: report validity.

The API server's schema checks the shape; Kustos checks the policy document itself (and
that a SecretAccessPolicy names only its own namespace's ServiceAccounts) and writes the
verdict into status: Valid=True and Ready=True (reason Reconciled) with the statement count,
or Valid=False and Ready=False (reason InvalidSpec) with the parser's message. Each change of
verdict is also an Event on the policy (Warning InvalidSpec with the message, or Normal
Reconciled). The AccessService applies the same check and ignores an invalid policy -- only
that one -- so a policy is in force exactly when Valid=True.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf

from kustos.kube.events import EventSink, ObjectRef
from kustos.models.reasons import ConditionType, EventType, Reason
from kustos.services.access.policies import compile_policy_object

GROUP, VERSION = "kustos.io", "v1alpha1"
PLURALS = ("secretaccesspolicies", "clustersecretaccesspolicies")
VALID_MESSAGE = "policy is valid and in force"


def _condition(
    kind: ConditionType, ok: bool, message: str, generation: int, current: dict[str, Any]
) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "type": str(kind),
        "status": "True" if ok else "False",
        "reason": str(Reason.RECONCILED if ok else Reason.INVALID_SPEC),
        "message": message,
        "observedGeneration": generation,
    }
    previous = next(
        (c for c in current.get("conditions") or [] if c.get("type") == condition["type"]), None
    )
    same = previous is not None and previous.get("status") == condition["status"]
    condition["lastTransitionTime"] = (
        previous.get("lastTransitionTime")
        if same and previous
        else datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    return condition


def policy_status(body: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """The status a policy object should have (pure; lastTransitionTime kept if unchanged)."""
    compiled = compile_policy_object(body)
    generation = int(body.get("metadata", {}).get("generation") or 0)
    ok = compiled.policy is not None
    message = VALID_MESSAGE if ok else (compiled.error or "invalid")[:1024]
    conditions = [
        _condition(kind, ok, message, generation, current)
        for kind in (ConditionType.VALID, ConditionType.READY)
    ]
    statements = len(compiled.policy.statements) if compiled.policy is not None else 0
    return {"observedGeneration": generation, "statements": statements, "conditions": conditions}


def _verdict(status: dict[str, Any]) -> tuple[str, str] | None:
    found = next(
        (c for c in status.get("conditions") or [] if c.get("type") == str(ConditionType.VALID)),
        None,
    )
    return (str(found.get("status")), str(found.get("message"))) if found else None


def announce(
    events: EventSink, body: dict[str, Any], current: dict[str, Any], wanted: dict[str, Any]
) -> None:
    """An Event when the verdict differs from the one in status (not again on resume)."""
    verdict = _verdict(wanted)
    if verdict is None or verdict == _verdict(current):
        return
    meta = body.get("metadata") or {}
    ref = ObjectRef(
        f"{GROUP}/{VERSION}",
        str(body.get("kind") or ""),
        str(meta.get("namespace") or ""),
        str(meta.get("name") or ""),
        str(meta.get("uid") or ""),
    )
    status, message = verdict
    if status == "True":
        events.emit(ref, Reason.RECONCILED, message, EventType.NORMAL)
    else:
        events.emit(
            ref, Reason.INVALID_SPEC, f"policy is not in force: {message}", EventType.WARNING
        )


def _check(
    body: kopf.Body, status: kopf.Status, patch: kopf.Patch, memo: kopf.Memo, **_: Any
) -> None:
    current = dict(status or {})
    wanted = policy_status(dict(body), current)
    services = memo.get("services")
    if services is not None:
        announce(services.events, dict(body), current, wanted)
    for key, value in wanted.items():
        if current.get(key) != value:
            patch.status[key] = value


for _plural in PLURALS:
    kopf.on.resume(GROUP, VERSION, _plural)(_check)
    kopf.on.create(GROUP, VERSION, _plural)(_check)
    kopf.on.update(GROUP, VERSION, _plural, field="spec")(_check)
