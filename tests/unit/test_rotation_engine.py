"""The rotation engine's state machine on a real SQLite store, with a fake rotator.

The fake rotator stands in for a database (it keeps the password it "accepted"), so the
write-ahead rules can be checked at each step: the store holds the pending value before
setSecret runs, a failure leaves AWSCURRENT alone, a resumed rotation re-runs the started
step with the same value, and finishSecret moves the labels in one go.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from kustos.crypto import Keyring
from kustos.errors import InvalidRequestError
from kustos.models import SecretValue
from kustos.models.records import AWSCURRENT, AWSPENDING, AWSPREVIOUS
from kustos.rotation.engine import STEPS, RotationEngine, RotationJob, StepHook
from kustos.rotation.errors import TargetUnreachableError
from kustos.rotation.rotator import (
    CreateSecretRequest,
    CreateSecretResponse,
    FinishSecretRequest,
    FinishSecretResponse,
    SetSecretRequest,
    SetSecretResponse,
    TestSecretRequest,
    TestSecretResponse,
)
from kustos.services.core.secrets import SecretService
from kustos.services.rotation.support import SecretVault
from kustos.store import SqlStore
from kustos.store.rotations import (
    ABANDONED,
    DONE,
    IN_PROGRESS,
    STARTED,
    SUCCEEDED,
    RotationInProgressError,
    RotationStore,
)

KEYRING = Keyring.generate()
T0 = datetime(2025, 1, 1, tzinfo=UTC)


class Crash(BaseException):
    """Stands for the process dying: the engine must not catch it."""


class FakeTarget:
    """A 'database' with one password, and a rotator for it whose steps can be made to fail."""

    name: ClassVar[str] = "fake"

    def __init__(self, password: str) -> None:
        self.accepts = password
        self.calls: list[str] = []
        self.fail: dict[str, BaseException] = {}
        self.counter = itertools.count(1)

    def validate(self, config: Any) -> None:
        pass

    def _maybe_fail(self, step: str) -> None:
        self.calls.append(step)
        if step in self.fail:
            raise self.fail.pop(step)

    def create_secret(self, req: CreateSecretRequest) -> CreateSecretResponse:
        self._maybe_fail("createSecret")
        if req.pending is not None:
            return CreateSecretResponse(pending=req.pending)
        return CreateSecretResponse(pending=SecretValue(f"pw-{next(self.counter)}-secret"))

    def set_secret(self, req: SetSecretRequest) -> SetSecretResponse:
        pending = req.pending.reveal()
        self.accepts = pending  # the database changes first, then the step may "crash"
        self._maybe_fail("setSecret")
        return SetSecretResponse()

    def test_secret(self, req: TestSecretRequest) -> TestSecretResponse:
        self._maybe_fail("testSecret")
        assert req.pending.reveal() == self.accepts
        return TestSecretResponse()

    def finish_secret(self, req: FinishSecretRequest) -> FinishSecretResponse:
        self._maybe_fail("finishSecret")
        return FinishSecretResponse()


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, Any]]:
    store = SqlStore(f"sqlite:///{tmp_path / 'k.db'}")
    clock = Clock()
    secrets = SecretService(store, lambda: KEYRING, "test", clock=clock)
    record = secrets.create("team-a", "app/db")
    secrets.add_version(record, SecretValue("pw-0-secret"), version_id="v0")
    rotations = RotationStore(store.engine)
    engine = RotationEngine(rotations, clock=clock, backoff=lambda n, _e: 10.0 * n)
    target = FakeTarget("pw-0-secret")
    yield {
        "store": store,
        "secrets": secrets,
        "record": record,
        "rotations": rotations,
        "engine": engine,
        "target": target,
        "clock": clock,
    }
    store.close()


def job(env: dict[str, Any], token: str) -> RotationJob:
    record = env["record"]
    return RotationJob(
        arn=record.arn,
        name=record.name,
        namespace="team-a",
        token=token,
        rotator=env["target"],
        vault=SecretVault(env["secrets"], record, ""),
    )


def begin(env: dict[str, Any], token: str = "t1") -> None:  # noqa: S107
    env["rotations"].begin(
        env["record"].arn, token, rotator="fake", config={}, trigger="test", now=env["clock"]()
    )


def labels(env: dict[str, Any]) -> dict[str, str]:
    versions = env["store"].list_versions(env["record"].arn)
    return {stage: v.version_id for v in versions for stage in v.stages}


def value(env: dict[str, Any], stage: str) -> str:
    found = env["store"].get_version(env["record"].arn, stage=stage)
    revealed: str = env["secrets"].open(found).reveal()
    return revealed


def test_happy_path_moves_labels_once(env: dict[str, Any]) -> None:
    begin(env)
    steps: list[str] = []
    result = env["engine"].run(job(env, "t1"), on_step=lambda step, _m: steps.append(step))
    assert result.finished and result.error is None
    assert steps == ["createSecret", "setSecret", "testSecret", "finishSecret"]
    assert labels(env) == {AWSCURRENT: "t1", AWSPREVIOUS: "v0"}
    assert value(env, AWSCURRENT) == env["target"].accepts
    row = env["rotations"].get(env["record"].arn, "t1")
    assert (row.status, row.step, row.phase) == (SUCCEEDED, "finishSecret", DONE)
    assert env["rotations"].active(env["record"].arn) is None
    assert env["store"].get_secret_by_arn(env["record"].arn).last_rotated_at == T0


def test_failure_keeps_current_records_sanitized_error_and_resumes(env: dict[str, Any]) -> None:
    begin(env)
    target: FakeTarget = env["target"]
    target.fail["testSecret"] = TargetUnreachableError("db down; it said pw-1-secret")
    result = env["engine"].run(job(env, "t1"))
    assert not result.finished
    assert "pw-1-secret" not in result.message and "**********" in result.message
    assert labels(env) == {AWSCURRENT: "v0", AWSPENDING: "t1"}
    row = env["rotations"].get(env["record"].arn, "t1")
    assert (row.status, row.step, row.phase, row.attempts) == (
        IN_PROGRESS,
        "testSecret",
        STARTED,
        1,
    )
    assert "pw-1-secret" not in (row.last_error or "")
    assert row.next_attempt_at == T0 + timedelta(seconds=10)
    # Resume: createSecret and setSecret are not run again.
    target.calls.clear()
    assert env["engine"].run(job(env, "t1")).finished
    assert target.calls == ["testSecret", "finishSecret"]
    assert labels(env) == {AWSCURRENT: "t1", AWSPREVIOUS: "v0"}


@pytest.mark.parametrize("step", ["createSecret", "setSecret", "testSecret", "finishSecret"])
def test_crash_in_any_step_resumes_with_the_same_pending_value(
    env: dict[str, Any], step: str
) -> None:
    begin(env)
    target: FakeTarget = env["target"]
    target.fail[step] = Crash()
    with pytest.raises(Crash):
        env["engine"].run(job(env, "t1"))
    row = env["rotations"].get(env["record"].arn, "t1")
    assert (row.step, row.phase) == (step, STARTED)  # written ahead, not marked done
    pending_before = labels(env).get(AWSPENDING)
    if step != "createSecret":
        # The value the target may already hold is in the store, labelled AWSPENDING.
        assert pending_before == "t1"
        assert value(env, AWSPENDING) == target.accepts or step == "setSecret"
    assert labels(env)[AWSCURRENT] == "v0"
    assert env["engine"].run(job(env, "t1")).finished
    assert labels(env) == {AWSCURRENT: "t1", AWSPREVIOUS: "v0"}
    assert value(env, AWSCURRENT) == target.accepts
    assert len(env["store"].list_versions(env["record"].arn)) == 2  # nothing lost, no extra


class Recorder(StepHook):
    """Notes, at each hook call, what the store holds: the row's step/phase and AWSPENDING."""

    def __init__(self, env: dict[str, Any]) -> None:
        self.env = env
        self.seen: list[tuple[str, ...]] = []
        self.raise_at: tuple[str, str, BaseException] | None = None

    def _note(self, step: str, when: str, job: RotationJob) -> None:
        row = self.env["rotations"].get(job.arn, job.token)
        self.seen.append(
            (step, when, row.step, row.phase, row.status, labels(self.env).get(AWSPENDING, "-"))
        )
        if self.raise_at is not None and self.raise_at[:2] == (step, when):
            raise self.raise_at[2]

    def before(self, step: str, job: RotationJob) -> None:
        self._note(step, "before", job)

    def after(self, step: str, job: RotationJob) -> None:
        self._note(step, "after", job)

    def rotator(self, step: str, rotator: Any) -> Any:
        self.seen.append((step, "rotator"))
        return rotator


def hooked(env: dict[str, Any], hook: StepHook) -> RotationEngine:
    return RotationEngine(
        env["rotations"], clock=env["clock"], backoff=lambda n, _e: 10.0 * n, hook=hook
    )


def test_step_hook_sees_each_step_between_its_start_and_its_end(env: dict[str, Any]) -> None:
    begin(env)
    hook = Recorder(env)
    assert hooked(env, hook).run(job(env, "t1")).finished
    assert hook.seen == [
        ("createSecret", "before", "createSecret", STARTED, IN_PROGRESS, "-"),
        ("createSecret", "rotator"),
        # the pending version is stored before the step is marked done
        ("createSecret", "after", "createSecret", STARTED, IN_PROGRESS, "t1"),
        ("setSecret", "before", "setSecret", STARTED, IN_PROGRESS, "t1"),
        ("setSecret", "rotator"),
        ("setSecret", "after", "setSecret", STARTED, IN_PROGRESS, "t1"),
        ("testSecret", "before", "testSecret", STARTED, IN_PROGRESS, "t1"),
        ("testSecret", "rotator"),
        ("testSecret", "after", "testSecret", STARTED, IN_PROGRESS, "t1"),
        ("finishSecret", "before", "finishSecret", STARTED, IN_PROGRESS, "t1"),
        ("finishSecret", "rotator"),
        # finishSecret's own transaction moved the labels and closed the row
        ("finishSecret", "after", "finishSecret", DONE, SUCCEEDED, "-"),
    ]


def test_a_hook_that_kills_the_process_leaves_the_step_started(env: dict[str, Any]) -> None:
    begin(env)
    hook = Recorder(env)
    hook.raise_at = ("setSecret", "after", Crash())
    with pytest.raises(Crash):
        hooked(env, hook).run(job(env, "t1"))
    row = env["rotations"].get(env["record"].arn, "t1")
    assert (row.step, row.phase, row.attempts) == ("setSecret", STARTED, 0)
    target: FakeTarget = env["target"]
    target.calls.clear()
    assert env["engine"].run(job(env, "t1")).finished  # resumed without the hook
    assert target.calls == ["setSecret", "testSecret", "finishSecret"]
    assert value(env, AWSCURRENT) == target.accepts


def test_a_hook_error_fails_the_step_before_the_rotator_acts(env: dict[str, Any]) -> None:
    begin(env)
    hook = Recorder(env)
    hook.raise_at = ("testSecret", "before", TargetUnreachableError("hook says no"))
    result = hooked(env, hook).run(job(env, "t1"))
    assert not result.finished and "hook says no" in result.message
    assert env["target"].calls == ["createSecret", "setSecret"]
    assert labels(env)[AWSCURRENT] == "v0"


def test_a_hook_may_wrap_the_rotator_a_step_calls(env: dict[str, Any]) -> None:
    begin(env)
    wrapped: list[str] = []

    class Wrap(StepHook):
        def rotator(self, step: str, rotator: Any) -> Any:
            wrapped.append(step)
            return rotator if step != "testSecret" else Refusing()

    class Refusing(FakeTarget):
        def __init__(self) -> None:
            super().__init__("")

        def test_secret(self, req: TestSecretRequest) -> TestSecretResponse:
            raise TargetUnreachableError("wrapped rotator refused")

    result = hooked(env, Wrap()).run(job(env, "t1"))
    assert wrapped == ["createSecret", "setSecret", "testSecret"]
    assert not result.finished and "wrapped rotator refused" in result.message


def test_only_create_secret_may_be_asked_without_a_pending_value() -> None:
    who: dict[str, Any] = {"secret_arn": "arn", "secret_name": "n", "namespace": "ns", "token": "t"}
    assert CreateSecretRequest(**who).pending is None  # the first call makes it
    for cls in (SetSecretRequest, TestSecretRequest, FinishSecretRequest):
        with pytest.raises(TypeError, match="pending"):
            cls(**who)
        assert cls(**who, pending=SecretValue("p-secret")).pending.reveal() == "p-secret"
    assert [
        c.step
        for c in (CreateSecretRequest, SetSecretRequest, TestSecretRequest, FinishSecretRequest)
    ] == list(STEPS)


def test_a_lost_pending_version_fails_the_step_before_the_rotator_is_asked(
    env: dict[str, Any],
) -> None:
    begin(env)
    target: FakeTarget = env["target"]
    target.fail["setSecret"] = TargetUnreachableError("down")
    assert not env["engine"].run(job(env, "t1")).finished
    resumed = job(env, "t1")

    class Forgetful:  # the pending version is gone (say, the store restored from a backup)
        def read(
            self, *, version_id: str | None = None, stage: str | None = None
        ) -> SecretValue | None:
            return None if version_id else resumed.vault.read(stage=stage)

        def add_pending(self, version_id: str, value: SecretValue) -> None:
            raise AssertionError("not reached")

        def label_pending(self, version_id: str) -> None:
            raise AssertionError("not reached")

    target.calls.clear()
    result = env["engine"].run(dataclasses.replace(resumed, vault=Forgetful()))
    assert not result.finished and isinstance(result.error, InvalidRequestError)
    assert "needs the AWSPENDING value" in result.message
    assert target.calls == []
    assert labels(env)[AWSCURRENT] == "v0"


def test_one_active_rotation_per_secret(env: dict[str, Any]) -> None:
    begin(env, "t1")
    with pytest.raises(RotationInProgressError, match="isn't complete"):
        begin(env, "t2")
    assert env["engine"].run(job(env, "t1")).finished
    begin(env, "t2")  # the first one finished: a new one may start


def test_finish_is_idempotent_and_abandon_removes_pending(env: dict[str, Any]) -> None:
    begin(env, "t1")
    assert env["engine"].run(job(env, "t1")).finished
    env["rotations"].finish(env["record"].arn, "t1", T0)
    assert labels(env) == {AWSCURRENT: "t1", AWSPREVIOUS: "v0"}

    begin(env, "t2")
    env["target"].fail["setSecret"] = TargetUnreachableError("down")
    assert not env["engine"].run(job(env, "t2")).finished
    assert labels(env)[AWSPENDING] == "t2"
    env["rotations"].abandon(env["record"].arn, "t2", T0)
    assert AWSPENDING not in labels(env)
    assert env["rotations"].get(env["record"].arn, "t2").status == ABANDONED
    assert len(env["store"].list_versions(env["record"].arn)) == 3  # the version is kept


def test_stray_pending_is_dropped_only_without_active_rotation(env: dict[str, Any]) -> None:
    arn = env["record"].arn
    env["secrets"].add_version(
        env["record"], SecretValue("stray"), stages=(AWSPENDING,), version_id="stray"
    )
    begin(env, "t1")
    assert not env["rotations"].drop_stray_pending(arn, "stray")  # a rotation is active
    env["rotations"].abandon(arn, "t1", T0)
    assert env["rotations"].drop_stray_pending(arn, "stray")
    assert AWSPENDING not in labels(env)


def test_run_refuses_a_finished_rotation(env: dict[str, Any]) -> None:
    begin(env)
    assert env["engine"].run(job(env, "t1")).finished
    with pytest.raises(Exception, match="not in progress"):
        env["engine"].run(job(env, "t1"))


def test_enabled_at_is_recorded_once(env: dict[str, Any]) -> None:
    arn = env["record"].arn
    assert env["rotations"].enabled_at(arn, T0) == (T0, True)
    assert env["rotations"].enabled_at(arn, T0 + timedelta(days=1)) == (T0, False)
    env["rotations"].disable(arn)
    assert env["rotations"].enabled_at(arn, T0 + timedelta(days=2))[1]


def test_limits_total_and_per_host() -> None:
    import threading

    from kustos.services.rotation.support import RotationLimits

    limits = RotationLimits(total=2, per_host=1, wait=0.05)
    with limits.slot("db:5432") as first:
        assert first
        with limits.slot("db:5432") as same_host:
            assert not same_host  # per-host limit
        with limits.slot("other:5432") as other:
            assert other
            with limits.slot(None) as third:
                assert not third  # total limit
    # A waiter gets the slot as soon as it is released.
    release = threading.Event()
    got: list[bool] = []
    waiting = RotationLimits(total=1, per_host=1, wait=5)

    def hold() -> None:
        with waiting.slot("h"):
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    threading.Timer(0.2, release.set).start()
    import time

    time.sleep(0.05)
    with waiting.slot("h") as ok:
        got.append(ok)
    holder.join()
    assert got == [True]
