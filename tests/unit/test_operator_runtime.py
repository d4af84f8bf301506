"""The operator runtime's rules with a recording controller and an in-memory store: which
watch events and feed entries become which triggers, deletion before re-creation, and
retry of retryable errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from tests.unit.fakes import managed
from tests.unit.test_store import sealed

from kustos.config import Settings
from kustos.errors import ServerError
from kustos.models.records import AWSCURRENT, SecretRecord
from kustos.operator.runtime import OperatorRuntime
from kustos.services.controller.controller import Outcome, Trigger, settles
from kustos.store import SqlStore

T0 = datetime(2030, 1, 1, tzinfo=UTC)


@dataclass
class Recorder:
    calls: list[tuple[str, frozenset[Trigger], str]] = field(default_factory=list)
    fail_first: int = 0
    #: Answer with a clean Outcome (nothing to write) instead of a status patch.
    clean: bool = False
    retry_delay: float = 0.05
    cond: threading.Condition = field(default_factory=threading.Condition)

    def handle(self, body: Mapping[str, Any], triggers: Collection[Trigger]) -> Outcome:
        with self.cond:
            self.calls.append(
                (body["metadata"]["name"], frozenset(triggers), body["metadata"]["uid"])
            )
            self.cond.notify_all()
            if self.fail_first > 0:
                self.fail_first -= 1
                return Outcome(error=ServerError("apiserver busy", retry_delay=self.retry_delay))
        if self.clean:
            return Outcome()
        return Outcome(patch={"observedGeneration": body["metadata"]["generation"]})

    # A deadline, not a sleep: it returns as soon as the calls are there; generous because the
    # unit tier runs beside the Go builds in `make test`.
    def wait(self, n: int, timeout: float = 30.0) -> list[tuple[str, frozenset[Trigger], str]]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.calls) < n:
                left = deadline - time.monotonic()
                assert left > 0, f"only {self.calls}"
                self.cond.wait(left)
            return list(self.calls)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[OperatorRuntime, Recorder, SqlStore, list[Any]]]:
    store = SqlStore(f"sqlite:///{tmp_path / 'kustos.db'}")  # threads: a file, not :memory:
    patches: list[Any] = []
    objects = SimpleNamespace(
        patch_status=lambda ns, name, p: patches.append((name, p)), list_all=lambda: []
    )
    services: Any = SimpleNamespace(
        managed=None,
        rotation=None,
        deletion=None,
        store=store,
        managed_objects=objects,
        secrets=None,
        secret_watch=None,
    )
    settings = Settings(
        resync_seconds=3600,
        drift_check_seconds=3600,
        orphan_sweep_seconds=3600,
        feed_poll_seconds=0.02,
        workers=2,
    )
    runtime = OperatorRuntime(services, settings)
    recorder = Recorder()
    runtime.controller = recorder  # type: ignore[assignment]  # records instead of acting
    runtime.start()
    yield runtime, recorder, store, patches
    runtime.stop()
    store.close()


def test_watch_events_become_triggers_and_status_patches(rig: Any) -> None:
    runtime, recorder, _, patches = rig
    body = managed("a", {"name": "x"})
    runtime.observe(None, body)  # the initial listing
    assert recorder.wait(1)[0][:2] == ("a", frozenset({Trigger.CHANGED}))
    runtime.observe("MODIFIED", managed("a", {"name": "x"}, status={"arn": "z"}))
    runtime.observe("MODIFIED", managed("a", {"name": "y"}, generation=2))
    calls = recorder.wait(2)
    assert calls[1][:2] == ("a", frozenset({Trigger.CHANGED}))
    assert runtime.queue.wait_idle(30)
    assert len(recorder.calls) == 2  # the status-only event triggered nothing
    assert patches[-1] == ("a", {"observedGeneration": 2})


def test_a_deletion_runs_before_the_recreated_object(rig: Any) -> None:
    runtime, recorder, _, _ = rig
    runtime.observe(None, managed("a", {}, uid="old"))
    recorder.wait(1)
    runtime.observe("DELETED", managed("a", {}, uid="old"))
    runtime.observe("ADDED", managed("a", {}, uid="new"))
    calls = recorder.wait(3)
    assert calls[1] == ("a", frozenset({Trigger.DELETED}), "old")
    assert calls[2] == ("a", frozenset({Trigger.CHANGED}), "new")


def test_a_value_written_anywhere_triggers_its_object(rig: Any) -> None:
    runtime, recorder, store, _ = rig
    arn = "arn:kustos:secretsmanager:t:team-a:secret:x-AbCdEf"
    store.create_secret(
        SecretRecord(
            arn=arn, namespace="team-a", name="x", created_at=T0, updated_at=T0, object_name="a"
        )
    )
    runtime.observe(None, managed("a", {"name": "x"}))
    recorder.wait(1)
    store.add_version(arn, "v1", sealed("v1", arn=arn), [AWSCURRENT], T0)  # another replica
    calls = recorder.wait(2)
    assert calls[1][:2] == ("a", frozenset({Trigger.VALUE_CHANGED}))
    store.note_change("*", "keys")  # a key change: every object
    runtime.observe(None, managed("b", {"name": "y"}))
    calls = recorder.wait(5)
    assert {(n, t) for n, t, _ in calls[2:]} >= {
        ("a", frozenset({Trigger.VALUE_CHANGED})),
        ("b", frozenset({Trigger.VALUE_CHANGED})),
    }


def test_retryable_errors_are_retried(rig: Any) -> None:
    runtime, recorder, _, _ = rig
    recorder.fail_first = 2
    runtime.observe(None, managed("a", {}))
    calls = recorder.wait(3)
    assert [t for _, t, _ in calls] == [frozenset({Trigger.CHANGED})] * 3


def _ready(name: str, spec: dict[str, Any], version: str, *, generation: int = 1) -> dict[str, Any]:
    """A ManagedSecret the controller has settled: Ready at its generation."""
    ready = {"type": "Ready", "status": "True", "reason": "Projected"}
    body = managed(
        name,
        spec,
        generation=generation,
        status={
            "observedGeneration": generation,
            "conditions": [{**ready, "observedGeneration": generation}],
        },
    )
    body["metadata"]["resourceVersion"] = version
    return body


def _resync(runtime: OperatorRuntime, recorder: Recorder, trigger: Trigger) -> int:
    """Submit `trigger` to object a, wait until the queue is idle; the calls made."""
    before = len(recorder.calls)
    runtime.queue.submit(("team-a", "a"), trigger)
    assert runtime.queue.wait_idle(30)
    return len(recorder.calls) - before


def test_a_settled_object_is_skipped_by_resync_until_its_body_changes(rig: Any) -> None:
    runtime, recorder, _, _ = rig
    recorder.clean = True
    runtime.observe(None, _ready("a", {"name": "x"}, "10"))
    recorder.wait(1)
    assert runtime.queue.wait_idle(30)
    assert _resync(runtime, recorder, Trigger.RESYNC) == 0  # nothing changed since
    assert _resync(runtime, recorder, Trigger.DRIFT_CHECK) == 1  # the slower pass looks
    assert _resync(runtime, recorder, Trigger.VALUE_CHANGED) == 1  # the feed's news
    # A status-only change (no trigger) still gives the body a new resourceVersion.
    runtime.observe("MODIFIED", _ready("a", {"name": "x"}, "11"))
    assert runtime.queue.wait_idle(30)
    assert _resync(runtime, recorder, Trigger.RESYNC) == 1
    assert _resync(runtime, recorder, Trigger.RESYNC) == 0


def test_resync_looks_again_after_a_write_or_a_failure(rig: Any) -> None:
    runtime, recorder, _, patches = rig
    runtime.observe(None, _ready("a", {"name": "x"}, "10"))  # the recorder patches status
    recorder.wait(1)
    assert runtime.queue.wait_idle(30)
    assert patches
    assert _resync(runtime, recorder, Trigger.RESYNC) == 1  # it wrote: not settled
    recorder.clean = True
    assert _resync(runtime, recorder, Trigger.RESYNC) == 1
    assert _resync(runtime, recorder, Trigger.RESYNC) == 0
    recorder.fail_first, recorder.retry_delay = 1, 3600  # its retry stays out of the way
    assert _resync(runtime, recorder, Trigger.DRIFT_CHECK) == 1  # a failed look forgets
    assert _resync(runtime, recorder, Trigger.RESYNC) == 1


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "x", "rotation": {"schedule": "rate(1 day)"}},
        {"name": "x", "valueFrom": {"secretRef": {"name": "src"}}},
        {"name": "x", "target": {"shareWith": {"namespaces": ["b"]}}},
    ],
    ids=["rotation", "valueFrom", "shareWith"],
)
def test_objects_that_follow_time_or_other_objects_are_never_skipped(
    rig: Any, spec: dict[str, Any]
) -> None:
    runtime, recorder, _, _ = rig
    recorder.clean = True
    runtime.observe(None, _ready("a", spec, "10"))
    recorder.wait(1)
    assert runtime.queue.wait_idle(30)
    assert _resync(runtime, recorder, Trigger.RESYNC) == 1
    assert _resync(runtime, recorder, Trigger.RESYNC) == 1


def test_what_settles() -> None:
    assert settles(_ready("a", {"name": "x"}, "1"))
    newer = _ready("a", {"name": "x"}, "1")
    newer["metadata"]["generation"] = 2  # the status is of generation 1
    assert not settles(newer)
    failing = _ready("a", {"name": "x"}, "1")
    failing["status"]["conditions"][0]["status"] = "False"
    assert not settles(failing)
    deleting = _ready("a", {"name": "x"}, "1")
    deleting["metadata"]["deletionTimestamp"] = "2030-01-01T00:00:00Z"
    assert not settles(deleting)
    rollback = _ready("a", {"name": "x"}, "1")
    rollback["metadata"]["annotations"]["kustos.io/rollback"] = "previous"
    assert not settles(rollback)
    rollback["status"]["rollback"] = {"request": "previous"}  # handled already
    assert settles(rollback)
    assert not settles(managed("a", {"name": "x"}))  # never reconciled


def test_a_kept_body_is_a_fresh_copy_and_takes_our_status_patch(rig: Any) -> None:
    runtime, recorder, _, patches = rig
    body = managed("a", {"name": "x"})
    body["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    runtime.observe(None, body)
    recorder.wait(1)
    assert runtime.queue.wait_idle(30)
    read = runtime.body(("team-a", "a"))
    assert read is not None
    read["spec"]["name"] = "changed by a reader"
    kept = runtime.body(("team-a", "a"))
    assert kept is not None and kept["spec"] == {"name": "x"}
    assert "managedFields" not in kept["metadata"]
    assert patches[-1] == ("a", {"observedGeneration": 1})
    assert kept["status"] == {"observedGeneration": 1}  # our patch, before the watch's echo


class Cluster:
    """The ManagedSecrets the apiserver holds; counts what the sweep asks for."""

    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.asked: list[str] = []

    def count(self) -> int:
        self.asked.append("count")
        return len(self.names)

    def list_all(self) -> list[dict[str, Any]]:
        self.asked.append("list")
        return [managed(n, {}) for n in sorted(self.names)]

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.asked.append(f"get {name}")
        return managed(name, {}) if name in self.names else None


def _sweep_rig(tmp_path: Path, cluster: Cluster, records: list[str]) -> tuple[Any, list[str]]:
    store = SqlStore(f"sqlite:///{tmp_path / 'kustos.db'}")
    for name in records:
        store.create_secret(
            SecretRecord(
                arn=f"arn:kustos:secretsmanager:t:team-a:secret:{name}-AbCdEf",
                namespace="team-a",
                name=name,
                created_at=T0,
                updated_at=T0,
                object_name=name,
            )
        )
    scheduled: list[str] = []
    services: Any = SimpleNamespace(
        managed=None,
        rotation=None,
        managed_objects=cluster,
        deletion=SimpleNamespace(schedule=lambda record, when, by: scheduled.append(record.name)),
        secrets=SimpleNamespace(store=store, clock=lambda: datetime(2030, 2, 1, tzinfo=UTC)),
        store=store,
        secret_watch=None,
    )
    runtime = OperatorRuntime(services, Settings(workers=1))
    return runtime, scheduled


def test_at_rest_the_sweep_asks_for_a_count_not_a_listing(tmp_path: Path) -> None:
    """As many objects as the watch knows: one count, and a GET only for a record whose
    object the watch does not know (deleted while the operator was down)."""
    cluster = Cluster({"a", "b"})
    runtime, scheduled = _sweep_rig(tmp_path, cluster, ["a", "b", "gone"])
    for name in ("a", "b"):
        runtime.observe(None, managed(name, {}))
    runtime._sweep()
    assert cluster.asked == ["count", "get gone"]
    assert scheduled == ["gone"]


def test_a_record_whose_object_the_watch_missed_is_kept(tmp_path: Path) -> None:
    """The count matches, but the GET finds the object: nothing is deleted."""
    cluster = Cluster({"a", "late"})
    runtime, scheduled = _sweep_rig(tmp_path, cluster, ["a", "late"])
    runtime.observe(None, managed("a", {}))
    runtime.observe(None, managed("stale", {}))  # its DELETED event lost; "late" not yet seen
    runtime._sweep()
    assert cluster.asked == ["count", "get late"]
    assert scheduled == []


def test_a_lost_deleted_event_makes_the_sweep_list_everything(tmp_path: Path) -> None:
    """The watch knows more objects than there are: a complete listing decides, the
    missing object is forgotten and its secret's deletion scheduled."""
    cluster = Cluster({"a"})
    runtime, scheduled = _sweep_rig(tmp_path, cluster, ["a", "b"])
    for name in ("a", "b"):
        runtime.observe(None, managed(name, {}))
    runtime._sweep()
    assert cluster.asked == ["count", "list"]
    assert scheduled == ["b"]
    assert runtime.keys() == [("team-a", "a")]
