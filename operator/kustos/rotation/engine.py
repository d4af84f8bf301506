"""The rotation engine: AWS's four steps as a persisted, write-ahead state machine.

A rotation is a row in `RotationStore` keyed by (secret ARN, token); the token is also the
id of the new version. For each step the engine first persists "step X started", then acts,
then persists "step X done". `createSecret` stores the new value sealed and labelled
AWSPENDING *before* `setSecret` touches the target, so whatever instant the process dies at,
the store holds every password the target may have accepted. Resuming re-runs the step that
was started and not done; every rotator step is idempotent for its token, so re-running is
safe. `finishSecret` moves AWSCURRENT (AWSPREVIOUS follows), removes AWSPENDING and closes the
row in one store transaction. A failed step leaves AWSCURRENT alone and records the sanitized
error, the attempt count and when to try again (the caller's backoff policy).

The engine knows nothing of Kubernetes or HTTP. A `StepHook` may watch each step: it is told
before the rotator acts (the start already persisted) and after it returned (the end not yet
persisted), and may wrap the rotator a step calls. Production passes none; the crash-safety
tests pass one that kills the process at those points (tests/crash_operator.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from kustos.errors import InvalidRequestError, KustosError, ServerError
from kustos.models import SecretValue
from kustos.models.records import AWSCURRENT, AWSPREVIOUS
from kustos.rotation.errors import sanitize
from kustos.rotation.rotator import (
    CreateSecretRequest,
    FinishSecretRequest,
    Rotator,
    SetSecretRequest,
    TestSecretRequest,
)
from kustos.store.rotations import DONE, STARTED, RotationRecord, RotationStore

__all__ = ["AWAIT", "STEPS", "RotationEngine", "RotationJob", "RunResult", "StepHook", "Vault"]

log = logging.getLogger(__name__)

CREATE, SET, TEST, FINISH = "createSecret", "setSecret", "testSecret", "finishSecret"
STEPS = (CREATE, SET, TEST, FINISH)
#: The step after finishSecret that the engine does not run itself: the caller waits for the
#: secret's consumers to roll out, then retires the previous credentials (or holds). A job
#: with `await_rollout` leaves its row in progress at this step.
AWAIT = "awaitRollout"
_After = TypeVar("_After", SetSecretRequest, TestSecretRequest, FinishSecretRequest)


class Vault(Protocol):
    """One secret's versions as the engine needs them; sealing happens behind this."""

    def read(
        self, *, version_id: str | None = None, stage: str | None = None
    ) -> SecretValue | None:
        """The value of a version (by id or by label), None when there is none."""

    def add_pending(self, version_id: str, value: SecretValue) -> None:
        """Store `value` as a new version labelled AWSPENDING (taking the label elsewhere)."""

    def label_pending(self, version_id: str) -> None:
        """Make sure the existing `version_id` carries AWSPENDING."""


@dataclass(frozen=True)
class RotationJob:
    arn: str
    name: str
    namespace: str
    token: str
    rotator: Rotator
    vault: Vault
    config: Mapping[str, Any] = field(default_factory=dict)
    master: SecretValue | None = None
    generate: Mapping[str, Any] = field(default_factory=dict)
    #: finishSecret keeps the rotation open at AWAIT (consumers must roll out first).
    await_rollout: bool = False


@dataclass(frozen=True)
class RunResult:
    finished: bool
    #: (step, rotator's message) for each step completed by this run.
    steps: list[tuple[str, str]] = field(default_factory=list)
    error: KustosError | None = None
    #: The sanitized error message, as persisted.
    message: str = ""
    retry_at: datetime | None = None


Backoff = Callable[[int, KustosError], float]


class StepHook:
    """Watches the engine's steps; every method does nothing here (subclass what you need).

    The engine calls `before` once the step's start is persisted and before the step acts,
    `rotator` to get the rotator the step calls, and `after` once the step's work is done
    (its own store writes included: the pending version, finishSecret's label move) and
    before the step is marked done. An exception from a hook fails the step like one
    from the rotator; a BaseException (or the process dying) leaves the step started.
    """

    def rotator(self, step: str, rotator: Rotator) -> Rotator:
        return rotator

    def before(self, step: str, job: RotationJob) -> None:
        pass

    def after(self, step: str, job: RotationJob) -> None:
        pass


def default_backoff(attempt: int, _error: KustosError) -> float:
    return float(min(3600, 30 * 2 ** max(0, attempt - 1)))


class RotationEngine:
    def __init__(
        self,
        log_store: RotationStore,
        *,
        backoff: Backoff = default_backoff,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        hook: StepHook | None = None,
    ) -> None:
        self._log = log_store
        self._backoff = backoff
        self._clock = clock
        self._hook = hook or StepHook()

    def resume_point(self, record: RotationRecord) -> int:
        """Index in STEPS of the first step still to run (len(STEPS) past finishSecret)."""
        if record.step not in STEPS:
            return len(STEPS)
        return STEPS.index(record.step) + (1 if record.phase == DONE else 0)

    def run(
        self, job: RotationJob, *, on_step: Callable[[str, str], None] | None = None
    ) -> RunResult:
        """Run (or resume) the rotation `job.token` to the end, or to the first failure."""
        record = self._log.get(job.arn, job.token)
        if record is None or not record.active:
            raise ServerError(f"rotation {job.token} of {job.arn} is not in progress")
        done: list[tuple[str, str]] = []
        values: list[SecretValue | None] = [job.master]
        step = record.step
        try:
            for step in STEPS[self.resume_point(record) :]:
                self._log.mark(job.arn, job.token, step, STARTED, self._clock())
                self._hook.before(step, job)
                message = self._step(step, job, values)
                self._hook.after(step, job)
                if step != FINISH:  # finish closed the row in its own transaction
                    self._log.mark(job.arn, job.token, step, DONE, self._clock())
                done.append((step, message))
                if on_step is not None:
                    on_step(step, message)
        except Exception as exc:  # every failure is recorded; a bug must not wedge rotation
            error = (
                exc
                if isinstance(exc, KustosError)
                else ServerError(f"{step} failed unexpectedly ({type(exc).__name__})")
            )
            if not isinstance(exc, KustosError):
                log.exception("rotation %s of %s: unexpected error in %s", job.token, job.arn, step)
            message = sanitize(f"{step}: {error.message}", values)
            now = self._clock()
            retry_at = now + timedelta(seconds=self._backoff(record.attempts + 1, error))
            self._log.record_failure(job.arn, job.token, message, now=now, next_attempt_at=retry_at)
            return RunResult(False, done, error, message, retry_at)
        return RunResult(True, done)

    # -- steps ---------------------------------------------------------------------------
    def _step(self, step: str, job: RotationJob, values: list[SecretValue | None]) -> str:
        current = job.vault.read(stage=AWSCURRENT)
        previous = job.vault.read(stage=AWSPREVIOUS)
        pending = job.vault.read(version_id=job.token)
        values.extend((current, previous, pending))
        rotator = self._hook.rotator(step, job.rotator)
        if step == CREATE:
            created = rotator.create_secret(
                CreateSecretRequest(
                    secret_arn=job.arn,
                    secret_name=job.name,
                    namespace=job.namespace,
                    token=job.token,
                    config=job.config,
                    current=current,
                    previous=previous,
                    master=job.master,
                    generate=job.generate,
                    pending=pending,
                )
            )
            values.append(created.pending)
            if pending is None:
                job.vault.add_pending(job.token, created.pending)
            else:
                job.vault.label_pending(job.token)
            return created.message
        if pending is None:  # createSecret persisted it; only a lost version gets here
            raise InvalidRequestError(
                f"{step} for {job.arn} (token {job.token}) needs the AWSPENDING value created "
                "by createSecret"
            )
        if step == SET:
            req = _request(SetSecretRequest, job, current, previous, pending)
            return rotator.set_secret(req).message
        if step == TEST:
            test = _request(TestSecretRequest, job, current, previous, pending)
            return rotator.test_secret(test).message
        finish = _request(FinishSecretRequest, job, current, previous, pending)
        message = rotator.finish_secret(finish).message
        self._log.finish(
            job.arn, job.token, self._clock(), then=AWAIT if job.await_rollout else None
        )
        return message


def _request(
    cls: type[_After],
    job: RotationJob,
    current: SecretValue | None,
    previous: SecretValue | None,
    pending: SecretValue,
) -> _After:
    """The request of a step after createSecret (they differ only in their class)."""
    return cls(
        secret_arn=job.arn,
        secret_name=job.name,
        namespace=job.namespace,
        token=job.token,
        config=job.config,
        current=current,
        previous=previous,
        master=job.master,
        generate=job.generate,
        pending=pending,
    )
