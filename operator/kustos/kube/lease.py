"""Leader election of operator replicas on a `coordination.k8s.io/v1` Lease, with fencing.

Every replica runs a `LeaseElector`; one holds the Lease (`kustos-operator` in Kustos's
namespace) and does the operator's work, the others wait. Timings are client-go's, in
seconds: `lease` (how long a holder's claim lasts without renewal), `renew_deadline` (how
long the leader keeps leading without a successful renewal; shorter than `lease`) and
`retry` (time between attempts).

- **Acquire**: a replica takes the Lease when it has no holder (released by a replica that
  shut down: handover within one `retry`), or when its resourceVersion has not changed for
  `lease` seconds as measured on this replica's own monotonic clock (the holder died; no
  clock skew involved, as in client-go). Writes use the Lease's resourceVersion, so of two
  replicas racing only one wins.
- **Term**: each acquisition sets `leaseTransitions` to one more than both the Lease's
  value and the largest term the store has seen (`floor`, so a deleted and recreated Lease
  never restarts the count). The term is the fencing token (kustos.models.fencing).
- **Renew and fence**: the leader renews every `retry`; `check()` holds only while the
  start of its last successful renewal is younger than `renew_deadline`. So a leader that
  cannot renew stops writing at the deadline, `lease - renew_deadline` before any other
  replica may take over; a leader that finds another holder stops at once. Either way
  `on_stopped` is called (the operator then exits and restarts as a follower).
- **Release**: `stop()` on a leader clears the holder, so a rolling update hands over fast.

Why not the alternatives: Kopf's peering pauses lower-priority operators on a KopfPeering
resource and has no fencing; the `kubernetes` client's `leaderelection` module keeps no
`leaseTransitions`, cannot release, uses the global client configuration and whole-second
timings, and exits the process on a bad config. Both lack the token the store checks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from kustos.errors import FencedError
from kustos.models.fencing import FenceToken

__all__ = ["LeaseElector"]

log = logging.getLogger("kustos.lease")


class LeaseElector:
    def __init__(
        self,
        leases: client.CoordinationV1Api,
        namespace: str,
        name: str,
        identity: str,
        *,
        on_started: Callable[[], None],
        on_stopped: Callable[[], None],
        floor: Callable[[], int] = lambda: -1,
        lease: float = 6.0,
        renew_deadline: float = 4.0,
        retry: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not retry < renew_deadline < lease:
            raise ValueError("leader election needs retry < renew_deadline < lease")
        self._leases, self.namespace, self.name, self.identity = leases, namespace, name, identity
        self._on_started, self._on_stopped, self._floor = on_started, on_stopped, floor
        self.lease, self.renew_deadline, self.retry = lease, renew_deadline, retry
        self._clock, self._now = clock, now
        self._lock = threading.Lock()
        self._leading = False
        self._term = -1
        self._renewed_at = 0.0
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kustos-lease", daemon=True)

    # -- the fence ------------------------------------------------------------------------
    def check(self) -> FenceToken:
        with self._lock:
            if self._leading and self._clock() - self._renewed_at < self.renew_deadline:
                return FenceToken(self._term, self.identity)
        raise FencedError("this operator replica does not hold the leader Lease")

    def is_leader(self) -> bool:
        try:
            self.check()
        except FencedError:
            return False
        return True

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop electing; a leader releases the Lease (its fence fails from now on)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.retry + 10)
        with self._lock:
            was_leading, self._leading = self._leading, False
        if was_leading:
            self._release()

    def step(self) -> None:
        """One attempt to acquire or renew (the loop's body; tests drive it directly)."""
        started = self._clock()
        try:
            outcome = self._try(started)
        except ApiException as exc:
            log.warning(
                "leader election: Lease %s/%s: HTTP %s", self.namespace, self.name, exc.status
            )
            outcome = None
        except Exception as exc:
            log.warning("leader election: %s", type(exc).__name__)
            outcome = None
        with self._lock:
            leading = self._leading
            if outcome is True:
                self._renewed_at, self._leading = started, True
            elif leading and (
                outcome is False or self._clock() - self._renewed_at >= self.renew_deadline
            ):
                self._leading = False
        if outcome is True and not leading:
            log.info("leader election: %s leads (term %d)", self.identity, self._term)
            self._on_started()
        elif leading and not self._leading:
            log.error("leader election: %s lost the Lease; stopping", self.identity)
            self._on_stopped()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.step()
            self._stop.wait(self.retry)

    # -- the Lease -----------------------------------------------------------------------
    def _try(self, started: float) -> bool | None:
        """True: this replica holds the Lease now; False: another one does (a leader that
        sees this is deposed); None: not acquired, the holder's claim may still stand."""
        try:
            lease = self._leases.read_namespaced_lease(self.name, self.namespace)
        except ApiException as exc:
            if exc.status != 404:
                raise
            return self._create()
        spec = lease.spec or client.V1LeaseSpec()
        holder = spec.holder_identity or ""
        record = (holder, lease.metadata.resource_version)  # each renewal changes it
        if record != self._observed:
            self._observed, self._observed_at = record, started
        if holder == self.identity and self._leading:
            spec.renew_time = self._now()
            return self._replace(lease)
        if holder and holder != self.identity:
            if self._leading:
                return False
            duration = float(spec.lease_duration_seconds or self.lease)
            if started - self._observed_at < duration:
                return None
        term = max(int(spec.lease_transitions or 0), self._floor()) + 1
        now = self._now()
        lease.spec = client.V1LeaseSpec(
            holder_identity=self.identity,
            lease_duration_seconds=_seconds(self.lease),
            acquire_time=now,
            renew_time=now,
            lease_transitions=term,
        )
        if self._replace(lease) is not True:
            return None
        self._term = term
        return True

    def _create(self) -> bool | None:
        now, term = self._now(), self._floor() + 1
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(name=self.name, namespace=self.namespace),
            spec=client.V1LeaseSpec(
                holder_identity=self.identity,
                lease_duration_seconds=_seconds(self.lease),
                acquire_time=now,
                renew_time=now,
                lease_transitions=term,
            ),
        )
        try:
            self._leases.create_namespaced_lease(self.namespace, body)
        except ApiException as exc:
            if exc.status == 409:  # another replica created it first
                return None
            raise
        self._term = term
        return True

    def _replace(self, lease: client.V1Lease) -> bool | None:
        try:
            self._leases.replace_namespaced_lease(self.name, self.namespace, lease)
        except ApiException as exc:
            if exc.status == 409:  # changed since read: someone else wrote it
                return None
            raise
        return True

    def _release(self) -> None:
        try:
            lease = self._leases.read_namespaced_lease(self.name, self.namespace)
            if lease.spec is None or lease.spec.holder_identity != self.identity:
                return
            lease.spec.holder_identity = None
            lease.spec.renew_time = self._now()
            lease.spec.lease_duration_seconds = 1
            self._leases.replace_namespaced_lease(self.name, self.namespace, lease)
            log.info("leader election: %s released the Lease", self.identity)
        except ApiException as exc:
            log.warning("leader election: release failed: HTTP %s", exc.status)


def _seconds(value: float) -> int:
    return max(1, round(value))
