"""Whether the workloads that consume a projected Secret finished rolling out a version.

Read from what the workload controllers publish, then from the workload's pods:
- the pod template's marker (`kustos.io/secret-versions`, see `rollouts`) names the version,
  i.e. Kustos restarted the workload for it;
- `status.observedGeneration` >= `metadata.generation`: the controller saw that template;
- Deployment: `updatedReplicas`, `availableReplicas` and `replicas` all equal
  `spec.replicas` (new pods available, old ones gone);
- StatefulSet: `updatedReplicas` and `availableReplicas` (else `readyReplicas`) equal
  `spec.replicas`, and `currentRevision` == `updateRevision`;
- DaemonSet: `updatedNumberScheduled` and `numberAvailable` equal `desiredNumberScheduled`.
A workload scaled to zero is rolled out as soon as the controller observed the template.

Then the pods (those of the workload's `spec.selector`, which the caller lists once the
status says done): the workload is still rolling while any of them was created from an
older pod template, i.e. its marker does not name the version for that Secret. A pod with a
`deletionTimestamp` counts: it is terminating, and an app that drains after SIGTERM (a
preStop hook, a grace period) still uses the old credentials; the status no longer counts
it. Pods that ended (phase `Succeeded` or `Failed`, e.g. evicted) do not run and do not count.

No I/O here: `consumers_of` and `rollout_state` work on the dicts the API server returned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from kustos.services.consumers.rollouts import WorkloadRef, marker, pod_marker, wants_restart

__all__ = ["ConsumerState", "RolloutState", "consumers_of", "ref_of", "rollout_state"]


class RolloutState(StrEnum):
    #: Not restarted for the version yet (debounce, rate limit).
    NOT_RESTARTED = "NotRestarted"
    #: Restarted; the new pods are not all available yet, or old ones remain.
    ROLLING = "Rolling"
    DONE = "Done"


@dataclass(frozen=True)
class ConsumerState:
    ref: WorkloadRef
    state: RolloutState

    def __str__(self) -> str:
        return f"{self.ref.kind}/{self.ref.name}"


def consumers_of(
    workloads: Iterable[Mapping[str, Any]], secret: str, named: Iterable[tuple[str, str]] = ()
) -> list[Mapping[str, Any]]:
    """The workloads that Kustos restarts when the Secret `secret` changes."""
    named = tuple(named)
    return [w for w in workloads if wants_restart(w, secret, named)]


def rollout_state(
    workload: Mapping[str, Any],
    secret: str,
    version_id: str,
    pods: Iterable[Mapping[str, Any]] = (),
) -> RolloutState:
    """`pods`: the workload's pods, running or terminating (module docstring); only looked
    at once the status says the rollout is done."""
    if marker(workload).get(secret) != version_id:
        return RolloutState.NOT_RESTARTED
    meta, spec = workload.get("metadata") or {}, workload.get("spec") or {}
    status = workload.get("status") or {}
    if int(status.get("observedGeneration") or 0) < int(meta.get("generation") or 0):
        return RolloutState.ROLLING
    kind = workload.get("kind")
    have: tuple[Any, ...]
    if kind == "DaemonSet":
        want = int(status.get("desiredNumberScheduled") or 0)
        have = (status.get("updatedNumberScheduled"), status.get("numberAvailable"))
    elif kind == "StatefulSet":
        want = int(spec.get("replicas", 1))
        available = status.get("availableReplicas", status.get("readyReplicas"))
        have = (status.get("updatedReplicas"), available)
        if want and status.get("currentRevision") != status.get("updateRevision"):
            return RolloutState.ROLLING
    else:
        want = int(spec.get("replicas", 1))
        have = (
            status.get("updatedReplicas"),
            status.get("availableReplicas"),
            status.get("replicas"),
        )
    if not all(int(n or 0) == want for n in have):
        return RolloutState.ROLLING
    if any(_older(pod, secret, version_id) for pod in pods):
        return RolloutState.ROLLING
    return RolloutState.DONE


def _older(pod: Mapping[str, Any], secret: str, version_id: str) -> bool:
    """Whether `pod` still runs (or terminates) from a pod template older than `version_id`."""
    if ((pod.get("status") or {}).get("phase")) in ("Succeeded", "Failed"):
        return False
    return pod_marker(pod).get(secret) != version_id


def ref_of(workload: Mapping[str, Any]) -> WorkloadRef:
    meta = workload.get("metadata") or {}
    return WorkloadRef(
        str(meta.get("namespace") or ""), str(workload.get("kind")), str(meta.get("name"))
    )
