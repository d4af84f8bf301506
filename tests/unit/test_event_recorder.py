"""kustos.kube.events.EventRecorder: repeats fold into a count; nothing is kept longer than
it can fold."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes import client

from kustos.kube.events import EventRecorder, ObjectRef
from kustos.models.reasons import Reason


class FakeCore:
    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []
        self.patched: list[tuple[str, dict[str, Any]]] = []

    def create_namespaced_event(self, namespace: str, body: dict[str, Any], **_: Any) -> Any:
        self.created.append(body)
        return SimpleNamespace(data=json.dumps({"metadata": {"name": f"e{len(self.created)}"}}))

    def patch_namespaced_event(self, name: str, namespace: str, body: dict[str, Any]) -> None:
        self.patched.append((name, body))


def ref(i: int) -> ObjectRef:
    return ObjectRef("kustos.io/v1alpha1", "ManagedSecret", "team-a", f"s{i}", f"uid-{i}")


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr("kustos.kube.events.time.monotonic", lambda: now[0])
    return now


def recorder(fold: float) -> tuple[EventRecorder, FakeCore]:
    rec = EventRecorder(client.ApiClient(), fold_seconds=fold)
    core = FakeCore()
    rec._core = core
    return rec, core


def test_a_repeat_folds_into_a_count_until_the_window_ends(clock: list[float]) -> None:
    rec, core = recorder(fold=60)
    rec.emit(ref(1), Reason.CREATED, "created")
    rec.emit(ref(1), Reason.CREATED, "created")
    assert len(core.created) == 1 and core.patched[0][0] == "e1"
    assert core.patched[0][1]["count"] == 2
    clock[0] += 61
    rec.emit(ref(1), Reason.CREATED, "created")
    assert len(core.created) == 2  # a new Event after the window


def test_entries_that_can_no_longer_fold_are_forgotten(clock: list[float]) -> None:
    rec, core = recorder(fold=60)
    for i in range(999):
        rec.emit(ref(i), Reason.CREATED, "created")
    assert len(rec._recent) == 999
    clock[0] += 61
    rec.emit(ref(1000), Reason.CREATED, "created")  # the 1,000th: a sweep
    assert list(rec._recent) == [("uid-1000", "Created", "created", "Normal")]
    assert len(core.created) == 1000
