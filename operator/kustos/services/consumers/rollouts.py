"""Restarts the workloads that consume a projected Secret when its data changes.

Selection (`wants_restart`): a Deployment, StatefulSet or DaemonSet of the ManagedSecret's
namespace whose pod template references the Secret (env `secretKeyRef`, `envFrom`, a
`secret` volume or a projected volume's `secret` source; containers and init containers),
and that opted in: the annotation `kustos.io/restart-on-change: "true"` on the workload, or
named in the ManagedSecret's `target.restartOnChange`. A workload that uses the Secret only
as a volume and declares `kustos.io/reloads-files: "true"` reads the new files itself and
is left alone.

The restart is a patch of the pod template's annotation `kustos.io/secret-versions`, a JSON
object of Secret name to the version id projected (never anything derived from a value), as
`kubectl rollout restart` patches `restartedAt`. Never thrash:
- debounce: the first change to a workload's Secrets opens a window (default 10 s); every
  Secret of that workload changed within it goes into the same single patch;
- a cluster-wide rate limit (default 10 restarts a minute); restarts over it wait, they are
  not dropped;
- no restart when the data did not change (the projection reports it), nor when the
  workload's marker already names that version.

Pending restarts live in memory: an operator restarted inside a window forgets them (the
projected Secret is already new; the next change restarts as usual), except those a rotation
awaits: its awaitRollout ticks ask again (services/rotation/service.py), so the replica that
takes over the Lease makes them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from kustos.errors import KustosError
from kustos.kube.events import EventSink, ObjectRef
from kustos.models.reasons import EventType, Reason

__all__ = [
    "ANNOTATION_RELOADS_FILES",
    "ANNOTATION_RESTART",
    "MARKER",
    "RolloutCoordinator",
    "RolloutLimits",
    "SecretUse",
    "WorkloadRef",
    "marker",
    "pod_marker",
    "secret_use",
    "wants_restart",
]

ANNOTATION_RESTART = "kustos.io/restart-on-change"
ANNOTATION_RELOADS_FILES = "kustos.io/reloads-files"
MARKER = "kustos.io/secret-versions"

Obj = dict[str, Any]
_log = logging.getLogger(__name__)


class Workloads(Protocol):
    def list(self, namespace: str) -> list[Obj]: ...

    def annotate_pod_template(
        self, namespace: str, kind: str, name: str, annotations: dict[str, str]
    ) -> None: ...


@dataclass(frozen=True, order=True)
class WorkloadRef:
    namespace: str
    kind: str
    name: str


@dataclass(frozen=True)
class SecretUse:
    env: bool = False
    volume: bool = False

    def __bool__(self) -> bool:
        return self.env or self.volume


@dataclass(frozen=True)
class RolloutLimits:
    debounce_seconds: float = 10.0
    #: Cluster-wide: at most `max_restarts` restarts per `per_seconds`.
    max_restarts: int = 10
    per_seconds: float = 60.0


def secret_use(workload: Mapping[str, Any], secret: str) -> SecretUse:
    """How the workload's pod template references the Secret `secret`."""
    pod = ((workload.get("spec") or {}).get("template") or {}).get("spec") or {}
    env = False
    for container in [*(pod.get("containers") or []), *(pod.get("initContainers") or [])]:
        for var in container.get("env") or []:
            ref = (var.get("valueFrom") or {}).get("secretKeyRef") or {}
            env = env or ref.get("name") == secret
        for source in container.get("envFrom") or []:
            env = env or (source.get("secretRef") or {}).get("name") == secret
    volume = False
    for vol in pod.get("volumes") or []:
        volume = volume or (vol.get("secret") or {}).get("secretName") == secret
        for source in (vol.get("projected") or {}).get("sources") or []:
            volume = volume or (source.get("secret") or {}).get("name") == secret
    return SecretUse(env=env, volume=volume)


def wants_restart(
    workload: Mapping[str, Any], secret: str, named: Iterable[tuple[str, str]] = ()
) -> bool:
    use = secret_use(workload, secret)
    if not use:
        return False
    meta = workload.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    opted = annotations.get(ANNOTATION_RESTART) == "true" or (
        workload.get("kind"),
        meta.get("name"),
    ) in set(named)
    if not opted:
        return False
    return use.env or annotations.get(ANNOTATION_RELOADS_FILES) != "true"


def marker(workload: Mapping[str, Any]) -> dict[str, str]:
    """The versions the workload's pods were last restarted for (Secret name -> id)."""
    template_meta = ((workload.get("spec") or {}).get("template") or {}).get("metadata") or {}
    return _versions((template_meta.get("annotations") or {}).get(MARKER))


def pod_marker(pod: Mapping[str, Any]) -> dict[str, str]:
    """The versions of the pod template a pod was created from (it carries its annotations)."""
    return _versions(((pod.get("metadata") or {}).get("annotations") or {}).get(MARKER))


def _versions(raw: Any) -> dict[str, str]:
    try:
        loaded = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}


@dataclass
class _Pending:
    due: float
    versions: dict[str, str] = field(default_factory=dict)
    #: The ManagedSecret behind each Secret, told about the restart by an Event.
    owners: dict[str, ObjectRef] = field(default_factory=dict)


class RolloutCoordinator:
    """Collects Secret changes per workload and restarts each workload once per window.

    `secret_changed` is called by the projection (any thread); `flush` patches what is due
    and allowed by the rate limit. `start()` runs `flush` on a daemon thread at the right
    times; tests call `flush(now)` with their own clock instead."""

    def __init__(
        self,
        workloads: Workloads,
        limits: RolloutLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        events: EventSink | None = None,
    ) -> None:
        self._workloads = workloads
        self.limits = limits or RolloutLimits()
        self._clock = clock
        self._events = events
        self._pending: dict[WorkloadRef, _Pending] = {}
        self._recent: deque[float] = deque()
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False
        #: Start the background thread on the first pending restart (off in unit tests).
        self.autostart = False

    # -- input -------------------------------------------------------------------------
    def secret_changed(
        self,
        namespace: str,
        secret: str,
        version_id: str,
        named: Iterable[tuple[str, str]] = (),
        owner: ObjectRef | None = None,
    ) -> list[WorkloadRef]:
        """The projected Secret `secret` now holds version `version_id` with new data."""
        named = tuple(named)
        now = self._clock()
        chosen: list[WorkloadRef] = []
        try:
            workloads = self._workloads.list(namespace)
        except KustosError as error:  # the projection stands; only the restart is lost
            _log.warning(
                "cannot find the consumers of Secret %s/%s: %s", namespace, secret, error.message
            )
            return []
        for workload in workloads:
            if not wants_restart(workload, secret, named):
                continue
            ref = WorkloadRef(namespace, str(workload["kind"]), workload["metadata"]["name"])
            with self._wake:
                pending = self._pending.get(ref)
                if pending is None:
                    if marker(workload).get(secret) == version_id:
                        continue  # already restarted for this version
                    pending = self._pending[ref] = _Pending(now + self.limits.debounce_seconds)
                pending.versions[secret] = version_id
                if owner is not None:
                    pending.owners[secret] = owner
                self._wake.notify_all()
            chosen.append(ref)
        if chosen and self.autostart:
            self.start()
        return chosen

    # -- output ------------------------------------------------------------------------
    def pending(self) -> dict[WorkloadRef, dict[str, str]]:
        with self._wake:
            return {ref: dict(p.versions) for ref, p in self._pending.items()}

    def next_due(self) -> float | None:
        with self._wake:
            dues = [p.due for p in self._pending.values()]
        if not dues:
            return None
        due = min(dues)
        if len(self._recent) >= self.limits.max_restarts:
            due = max(due, self._recent[0] + self.limits.per_seconds)
        return due

    def flush(self, now: float | None = None) -> list[WorkloadRef]:
        """Restart every workload whose window closed, as far as the rate limit allows."""
        now = self._clock() if now is None else now
        done: list[WorkloadRef] = []
        with self._wake:
            while self._recent and self._recent[0] <= now - self.limits.per_seconds:
                self._recent.popleft()
            due = sorted((p.due, ref) for ref, p in self._pending.items() if p.due <= now)
            batch = []
            for _, ref in due:
                if len(self._recent) >= self.limits.max_restarts:
                    break
                self._recent.append(now)
                batch.append((ref, self._pending.pop(ref)))
        for ref, pending in batch:
            if self._restart(ref, pending):
                done.append(ref)
        return done

    def _restart(self, ref: WorkloadRef, pending: _Pending) -> bool:
        versions = pending.versions
        try:
            current = next(
                (
                    w
                    for w in self._workloads.list(ref.namespace)
                    if w["kind"] == ref.kind and w["metadata"]["name"] == ref.name
                ),
                None,
            )
            if current is None:
                return False  # deleted meanwhile
            merged = {**marker(current), **versions}
            if merged == marker(current):
                return False
            self._workloads.annotate_pod_template(
                ref.namespace,
                ref.kind,
                ref.name,
                {MARKER: json.dumps(merged, sort_keys=True, separators=(",", ":"))},
            )
        except KustosError as error:
            with self._wake:  # try again later, with whatever changed meanwhile
                again = self._pending.setdefault(ref, _Pending(self._clock() + 5.0))
                again.versions = {**versions, **again.versions}
                again.owners = {**pending.owners, **again.owners}
            self._tell(
                pending,
                Reason.WORKLOAD_RESTART_FAILED,
                EventType.WARNING,
                f"cannot restart {ref.kind} {ref.name} yet (will retry): {error.message}",
            )
            return False
        _log.info(
            "restarted %s %s/%s for %s",
            ref.kind,
            ref.namespace,
            ref.name,
            ", ".join(f"{k}={v}" for k, v in sorted(versions.items())),
        )
        self._tell(
            pending,
            Reason.WORKLOAD_RESTARTED,
            EventType.NORMAL,
            f"restarted {ref.kind} {ref.name} for "
            + ", ".join(f"Secret {k} version {v}" for k, v in sorted(versions.items())),
        )
        return True

    def _tell(self, pending: _Pending, reason: Reason, type_: EventType, message: str) -> None:
        if self._events is None:
            return
        for owner in {o.uid: o for o in pending.owners.values()}.values():
            try:
                self._events.emit(owner, reason, message, type_)
            except KustosError as error:  # the restart happened; only its Event is lost
                _log.warning(
                    "cannot record %s on %s/%s: %s",
                    reason,
                    owner.namespace,
                    owner.name,
                    error.message,
                )

    # -- background --------------------------------------------------------------------
    def start(self) -> None:
        with self._wake:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="kustos-rollouts", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._wake.notify_all()

    def _run(self) -> None:
        while True:
            with self._wake:
                if self._stopped:
                    return
                due = self.next_due()
                wait = None if due is None else max(0.0, due - self._clock())
                if wait is None or wait > 0:
                    self._wake.wait(wait)
                    continue
            try:
                self.flush()
            except Exception:  # the thread must outlive any one failure
                _log.exception("rollouts: flush failed; pending restarts kept")
                time.sleep(1.0)
