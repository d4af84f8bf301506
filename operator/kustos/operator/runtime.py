"""The operator's runtime: turns watch events, the store's change feed and timers into
controller triggers, and patches what the controller returns.

- **Watch** (Kopf's watch of ManagedSecrets, `observe`): the newest body of every object is
  kept, as compact JSON (`kustos.models.packed`); a new object, a new spec generation or a
  new `kustos.io/rotate-now` value is `CHANGED`/`ROTATE_NOW`; a status-only change (our own
  patches) is nothing; `DELETED` runs the deletion path with the object's last body.
- **Projected Secrets** (`kustos.kube.secret_watch`, where a namespace grants the watch):
  every namespace with a ManagedSecret gets a label-selected watch of its projected
  Secrets; someone else's edit or deletion of one is `PROJECTED_CHANGED` for its owner (the
  echo of our own writes is not), restored at once; the drift pass compares with that
  cache and reads no Secret there.
- **Change feed** (`_tail_feed`): every write that changes what a projected Secret holds
  (PutSecretValue, UpdateSecretVersionStage, a rotation's finish, RestoreSecret, a key
  change) appends to the store's feed in its own transaction, on whichever replica made it;
  one indexed query every `feed_poll_seconds` turns new entries into `VALUE_CHANGED`.
- **Timers**: a rotation's due time or backoff end (`ROTATION_DUE`), retry with jittered
  exponential backoff for retryable errors, and the periodic safety nets, each spread over
  its interval with jitter: `RESYNC` (no reads of projected Secrets; skipped for an object
  whose body has not changed since a look found nothing to do and that `settles`, i.e. has
  no timers, sources or shares to follow: the watch and the feed bring its news),
  `DRIFT_CHECK` (never skipped; compares them: the watched cache, else a GET by name
  where the watch is refused), the purge of secrets past their recovery window, and a
  paged LIST for objects deleted while the operator was down; and a verification of the
  whole audit log every `audit_verify_seconds` (its result is the
  `kustos_audit_verify_ok` metric, alerted on).

Leadership: with several replicas only the Lease holder's runtime is started (`lead`); a
follower's keeps the newest bodies and coalesced triggers, so it starts with everything
known. All work for the leader runs under its fence (kustos.models.fencing): once the
replica cannot renew, every store and Kubernetes write of it fails with FencedError.

All state lives in one `OperatorRuntime` (in Kopf's memo), none in modules. Work for one
object is serialized by `ObjectQueue`; the decisions are `ManagedSecretController`'s.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from kustos.config import Settings
from kustos.errors import KustosError
from kustos.models.fencing import Fence, fenced
from kustos.models.packed import Packed
from kustos.operator.feed import FeedCursor
from kustos.operator.queue import ObjectQueue, jittered
from kustos.services.controller.controller import (
    ManagedSecretController,
    Outcome,
    Trigger,
    settles,
)
from kustos.services.core.deletion import sweep_orphans
from kustos.services.factory import Services
from kustos.services.rotation.service import ANNOTATION_ROTATE_NOW

__all__ = ["OperatorRuntime"]

log = logging.getLogger("kustos.operator")
Key = tuple[str, str]  # (namespace, name)
Body = dict[str, Any]
#: Retry backoff for retryable errors: first delay, cap (both jittered).
RETRY_BASE, RETRY_CAP = 1.0, 300.0
#: How long the change feed keeps entries (operators that were down longer resync anyway).
FEED_RETENTION = timedelta(hours=1)


def _key(body: Mapping[str, Any]) -> Key:
    meta = body["metadata"]
    return str(meta["namespace"]), str(meta["name"])


class OperatorRuntime:
    def __init__(
        self,
        services: Services,
        settings: Settings,
        clock: Callable[[], float] = time.monotonic,
        fence: Fence | None = None,
    ) -> None:
        self._services = services
        self._fence = fence
        self._settings = settings
        self._clock = clock
        self.controller = ManagedSecretController(
            services.managed, lambda: services.rotation, lambda: services.deletion
        )
        self.queue: ObjectQueue[Key, Trigger] = ObjectQueue(self._process, settings.workers)
        self._lock = threading.Lock()
        self._bodies: dict[Key, Packed] = {}  # compact: kustos.models.packed
        self._gone: dict[Key, Body] = {}  # last bodies of deleted objects, until handled
        self._failures: dict[Key, int] = {}
        self._timer_at: dict[Key, float] = {}  # the earliest ROTATION_DUE timer per object
        self._seen_at: dict[Key, float] = {}  # when the watch last delivered each object
        # The resourceVersion of each object's body when a trigger last found nothing to do
        # and the body `settles`: the next RESYNC of that same body is skipped.
        self._settled: dict[Key, str] = {}
        self._stop = threading.Event()
        self._started = False
        self._feed = FeedCursor(0, self._clock)
        self._next_verify = 0.0
        self._watch = services.secret_watch
        if self._watch is not None:
            self._watch.listen(self._projected_changed)
        self._threads = [
            threading.Thread(target=self._tail_feed, name="kustos-feed", daemon=True),
            threading.Thread(target=self._periodic, name="kustos-periodic", daemon=True),
        ]

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        # Everything written before now is covered by the watch's initial listing.
        self._started = True
        self._feed = FeedCursor(self._services.store.last_change(), self._clock)
        if self._watch is not None:
            self._watch.start()
        self.queue.start()
        for thread in self._threads:
            thread.start()

    def lead(self) -> None:
        """This replica became the leader: start, and look at every known object (the
        previous leader may have stopped in the middle of anything)."""
        self.start()
        for key in self.keys():
            self.queue.submit(key, Trigger.CHANGED)

    def stop(self) -> None:
        self._stop.set()
        if not self._started:  # a follower's runtime never ran
            return
        if self._watch is not None:
            self._watch.stop()
        for thread in self._threads:
            if thread.is_alive():
                thread.join(timeout=10)
        self.queue.stop()

    # -- watch ---------------------------------------------------------------------------
    def observe(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """One watch event of a ManagedSecret (type None: the initial listing)."""
        key, body = _key(body), _trimmed(body)
        if event_type == "DELETED":
            with self._lock:
                self._bodies.pop(key, None)
                self._seen_at.pop(key, None)
                self._settled.pop(key, None)
                self._gone[key] = body
            self.queue.submit(key, Trigger.DELETED)
            return
        packed = Packed.of(body)
        with self._lock:
            old = self._bodies.get(key)
            self._bodies[key] = packed
            self._seen_at[key] = self._clock()
        if old is None and self._watch is not None:
            self._watch.watch(key[0])  # idempotent: one watch per namespace
        trigger = _what_changed(None if old is None else old.unpack(), body)
        if trigger is not None:
            self.queue.submit(key, trigger)

    def _projected_changed(self, namespace: str, secret: Body, deleted: bool) -> None:
        """Someone else changed or deleted a projected Secret: its owner restores it now."""
        for ref in secret.get("metadata", {}).get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == "ManagedSecret":
                key = (namespace, str(ref.get("name")))
                body = self.body(key)
                if body is not None and body["metadata"].get("uid") == ref.get("uid"):
                    self.queue.submit(key, Trigger.PROJECTED_CHANGED)

    def body(self, key: Key) -> Body | None:
        """The newest body of the object (a fresh dict), None when it is not known."""
        with self._lock:
            packed = self._bodies.get(key)
        return None if packed is None else packed.unpack()

    def keys(self) -> list[Key]:
        with self._lock:
            return list(self._bodies)

    # -- the work ------------------------------------------------------------------------
    def _process(self, key: Key, triggers: frozenset[Trigger]) -> None:
        with fenced(self._fence):
            self._process_fenced(key, triggers)

    def _process_fenced(self, key: Key, triggers: frozenset[Trigger]) -> None:
        if Trigger.DELETED in triggers:
            with self._lock:
                gone = self._gone.pop(key, None)
                self._timer_at.pop(key, None)
                self._failures.pop(key, None)
            if gone is not None:
                self._run(key, gone, frozenset({Trigger.DELETED}))
            triggers = triggers - {Trigger.DELETED}
        body = self.body(key)
        if not triggers or body is None:
            return
        if triggers == {Trigger.RESYNC} and self._is_settled(key, body):
            return  # nothing changed since a look found nothing to do (DRIFT_CHECK still looks)
        self._run(key, body, triggers)

    def _is_settled(self, key: Key, body: Body) -> bool:
        version = body["metadata"].get("resourceVersion")
        with self._lock:
            return version is not None and self._settled.get(key) == version

    def _run(self, key: Key, body: Body, triggers: frozenset[Trigger]) -> None:
        try:
            outcome = self.controller.handle(body, triggers)
        except KustosError as exc:
            log.warning("%s/%s: %s", *key, exc.message)
            with self._lock:
                self._settled.pop(key, None)
            self._retry(key, exc.retry_delay)
            return
        if outcome.deleted:
            return
        self._remember_settled(key, body, outcome)
        if outcome.patch:
            self._patch(key, body, outcome.patch)
        if outcome.retry:
            assert outcome.error is not None
            self._retry(key, outcome.error.retry_delay)
        else:
            with self._lock:
                self._failures.pop(key, None)
        self._schedule_rotation(key, outcome)

    def _remember_settled(self, key: Key, body: Body, outcome: Outcome) -> None:
        version = body["metadata"].get("resourceVersion")
        with self._lock:
            if outcome.clean and version is not None and settles(body):
                self._settled[key] = str(version)
            else:
                self._settled.pop(key, None)

    def _patch(self, key: Key, body: Body, patch: dict[str, Any]) -> None:
        self._services.managed_objects.patch_status(key[0], key[1], patch)
        with self._lock:  # until the watch brings the patched object
            packed = self._bodies.get(key)
            current = None if packed is None else packed.unpack()
            if current is not None and current["metadata"].get("uid") == body["metadata"].get(
                "uid"
            ):
                status = {**(current.get("status") or {}), **patch}
                current["status"] = {k: v for k, v in status.items() if v is not None}
                self._bodies[key] = Packed.of(current)

    def _retry(self, key: Key, hint: float | None) -> None:
        with self._lock:
            attempt = self._failures.get(key, 0) + 1
            self._failures[key] = attempt
        delay = hint if hint else min(RETRY_CAP, RETRY_BASE * 2 ** (attempt - 1))
        self.queue.submit(key, Trigger.CHANGED, delay=jittered(delay))

    def _schedule_rotation(self, key: Key, outcome: Outcome) -> None:
        body = self.body(key) or {}
        status = body.get("status") or {}
        if not ((body.get("spec") or {}).get("rotation") or status.get("rotation")):
            return
        delay = self._settings.rotation_tick_seconds
        if outcome.due is not None:
            delay = min(delay, (outcome.due - datetime.now(UTC)).total_seconds())
        delay = max(0.2, delay)
        at = self._clock() + delay
        with self._lock:
            earlier = self._timer_at.get(key)
            if earlier is not None and self._clock() < earlier <= at:
                return  # a timer at least as early is set already
            self._timer_at[key] = at
        self.queue.submit(key, Trigger.ROTATION_DUE, delay=delay)

    # -- the change feed -----------------------------------------------------------------
    def _tail_feed(self) -> None:
        store = self._services.store
        while not self._stop.wait(jittered(self._settings.feed_poll_seconds, 0.1)):
            try:
                cursor = self._feed
                gap = cursor.gap_read()
                late = store.changes_since(*gap) if gap is not None else []
                entries = cursor.take([*late, *store.changes_since(cursor.seq)])
                if not entries:
                    continue
                arns = dict.fromkeys(arn for _, arn, _ in entries)
                if "*" in arns:  # e.g. a key change: every secret may read differently now
                    for key in self.keys():
                        self.queue.submit(key, Trigger.VALUE_CHANGED)
                    continue
                for arn in arns:
                    record = store.get_secret_by_arn(arn)
                    if record is not None and record.object_name:
                        self.queue.submit(
                            (record.namespace, record.object_name), Trigger.VALUE_CHANGED
                        )
            except KustosError as exc:
                log.warning("change feed: %s", exc.message)
            except Exception:
                log.exception("change feed failed")

    # -- periodic safety nets ------------------------------------------------------------
    def _periodic(self) -> None:
        settings, now = self._settings, self._clock()
        next_resync = now + jittered(settings.resync_seconds)
        next_drift = now + jittered(settings.drift_check_seconds)
        next_sweep = now + jittered(settings.orphan_sweep_seconds)
        next_prune = now
        self._next_verify = now + jittered(settings.audit_verify_seconds)
        while not self._stop.wait(
            max(0.05, min(next_resync, next_drift, next_sweep) - self._clock())
        ):
            now = self._clock()
            try:
                with fenced(self._fence):
                    if self._fence is not None:
                        self._fence.check()
                    next_resync, next_drift, next_sweep, next_prune = self._pass(
                        now, next_resync, next_drift, next_sweep, next_prune
                    )
            except KustosError as exc:
                log.warning("periodic pass: %s", exc.message)
            except Exception:
                log.exception("periodic pass failed")

    def _pass(
        self,
        now: float,
        next_resync: float,
        next_drift: float,
        next_sweep: float,
        next_prune: float,
    ) -> tuple[float, float, float, float]:
        settings = self._settings
        if now >= next_resync:
            next_resync = now + jittered(settings.resync_seconds)
            self._spread(Trigger.RESYNC, settings.resync_seconds)
            self._purge_due()
        if now >= next_drift:
            next_drift = now + jittered(settings.drift_check_seconds)
            self._spread(Trigger.DRIFT_CHECK, settings.drift_check_seconds)
        if now >= next_sweep:
            next_sweep = now + jittered(settings.orphan_sweep_seconds)
            self._sweep()
        if now >= next_prune:
            next_prune = now + 600
            self._services.store.prune_changes(datetime.now(UTC) - FEED_RETENTION)
        if settings.audit_verify_seconds > 0 and now >= self._next_verify:
            self._next_verify = now + jittered(settings.audit_verify_seconds)
            report = self._services.audit.verify()
            if not report.ok:
                log.error(
                    "audit verify: the log is broken: %d finding(s); run "
                    "`kustos audit verify` for details",
                    len(report.findings),
                )
        return next_resync, next_drift, next_sweep, next_prune

    def _sweep(self) -> None:
        """Secrets whose ManagedSecret is gone unnoticed get their deletion scheduled.

        When the cluster holds as many objects as the watch knows, the watch's keys stand
        for a listing, and a record not among them is looked up on its own before it is
        deleted: one request at rest, not a LIST of every object. Otherwise (a DELETED
        event lost in a watch gap, or objects the watch has not delivered yet) a complete
        paged listing decides, and the objects it no longer has are forgotten."""
        objects = self._services.managed_objects
        started = self._clock()
        known = set(self.keys())
        if objects.count() == len(known):
            sweep_orphans(
                self._services.deletion,
                self._services.secrets,
                known,
                gone=lambda namespace, name: objects.get(namespace, name) is None,
            )
            return
        present = {_key(o) for o in objects.list_all()}
        self._forget_missing(present, started)
        sweep_orphans(self._services.deletion, self._services.secrets, present)

    def _forget_missing(self, present: set[Key], listed_at: float) -> None:
        """Drop objects a complete listing no longer has (a DELETED event lost in a watch
        gap); the orphan sweep then schedules their secrets' deletion."""
        with self._lock:
            for key in [k for k in self._bodies if k not in present]:
                if self._seen_at.get(key, 0.0) < listed_at:
                    self._bodies.pop(key, None)
                    self._seen_at.pop(key, None)
                    self._settled.pop(key, None)

    def _spread(self, trigger: Trigger, interval: float) -> None:
        """Every known object gets `trigger`, spread over half the interval (no bursts)."""
        for key in self.keys():
            self.queue.submit(key, trigger, delay=random.uniform(0, interval / 2))  # noqa: S311

    def _purge_due(self) -> None:
        purged = self._services.deletion.purge_due()
        if purged:
            log.info("purged %d secret(s) whose recovery window ended", purged)


def _trimmed(body: Mapping[str, Any]) -> Body:
    """The body as kept for each object: without `managedFields` (nothing here reads them;
    at 10,000 objects they are a good part of the operator's memory)."""
    copied = dict(body)
    meta = dict(copied.get("metadata") or {})
    meta.pop("managedFields", None)
    copied["metadata"] = meta
    return copied


def _what_changed(old: Body | None, new: Body) -> Trigger | None:
    """The trigger a watch event stands for; None for a status-only change."""
    if old is None or old["metadata"].get("uid") != new["metadata"].get("uid"):
        return Trigger.CHANGED
    if old["metadata"].get("generation") != new["metadata"].get("generation"):
        return Trigger.CHANGED
    before = (old["metadata"].get("annotations") or {}).get(ANNOTATION_ROTATE_NOW)
    after = (new["metadata"].get("annotations") or {}).get(ANNOTATION_ROTATE_NOW)
    if before != after:
        return Trigger.ROTATE_NOW
    if bool(old["metadata"].get("deletionTimestamp")) != bool(
        new["metadata"].get("deletionTimestamp")
    ):
        return Trigger.CHANGED
    return None
