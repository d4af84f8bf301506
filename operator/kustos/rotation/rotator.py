"""The `Rotator` interface: AWS's four rotation steps, one request and one response type each.

The engine drives a rotation as a persisted state machine keyed by a rotation token and calls
one rotator method per step. Each step must be idempotent for its token: the engine may call
any step again after a crash, a timeout or a retry, with the same request. Request and
response types are frozen keyword-only dataclasses; new fields get defaults, so adding one
never breaks a rotator.

Values: `current` is AWSCURRENT, `previous` AWSPREVIOUS, `pending` the AWSPENDING version for
this token, `master` the master credentials (a JSON object with at least `username` and
`password`) resolved by the engine from the rotation's `masterSecretRef`, for strategies that
log in as an administrator.

What differs between the four requests is `pending`: `createSecret` makes it, so its request
has one only when a value for this token is already persisted (a resumed rotation); the
engine persists it before any later step, so `setSecret`, `testSecret` and `finishSecret`
always get one (`PendingStepRequest`). Those three carry the same fields; their classes
differ only in `step`, so each method's signature names the step it serves. The optional
`retireSecret` (after the consumers rolled out) has no pending value: it retires `previous`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

from kustos.models import SecretValue
from kustos.rotation.passwords import PasswordParams

__all__ = [
    "CreateSecretRequest",
    "CreateSecretResponse",
    "FinishSecretRequest",
    "FinishSecretResponse",
    "PendingStepRequest",
    "RetireSecretRequest",
    "RetireSecretResponse",
    "RetiringRotator",
    "RollbackGuard",
    "Rotator",
    "SetSecretRequest",
    "SetSecretResponse",
    "StepRequest",
    "TestSecretRequest",
    "TestSecretResponse",
]


@dataclass(frozen=True, kw_only=True, slots=True)
class StepRequest:
    """What every step receives."""

    step: ClassVar[str]
    secret_arn: str
    secret_name: str
    namespace: str
    token: str
    #: The rotator's configuration from the ManagedSecret spec (host, port, strategy, ...).
    config: Mapping[str, Any] = field(default_factory=dict)
    current: SecretValue | None = None
    previous: SecretValue | None = None
    master: SecretValue | None = None
    #: Password generation parameters, AWS GetRandomPassword names (`PasswordLength`, ...).
    generate: Mapping[str, Any] = field(default_factory=dict)

    def password_params(self) -> PasswordParams:
        return PasswordParams.from_mapping(self.generate)


@dataclass(frozen=True, kw_only=True, slots=True)
class CreateSecretRequest(StepRequest):
    step: ClassVar[str] = "createSecret"
    #: The value already persisted for this token (a resumed rotation), to return unchanged;
    #: None on the first call.
    pending: SecretValue | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class PendingStepRequest(StepRequest):
    """What the steps after createSecret receive: the persisted AWSPENDING value, always."""

    pending: SecretValue


@dataclass(frozen=True, kw_only=True, slots=True)
class SetSecretRequest(PendingStepRequest):
    step: ClassVar[str] = "setSecret"


@dataclass(frozen=True, kw_only=True, slots=True)
class TestSecretRequest(PendingStepRequest):
    step: ClassVar[str] = "testSecret"
    __test__: ClassVar[bool] = False  # not a pytest test class


@dataclass(frozen=True, kw_only=True, slots=True)
class FinishSecretRequest(PendingStepRequest):
    step: ClassVar[str] = "finishSecret"


@dataclass(frozen=True, kw_only=True, slots=True)
class RetireSecretRequest(StepRequest):
    """After every consumer rolled out the new AWSCURRENT (`current`): retire `previous`."""

    step: ClassVar[str] = "retireSecret"


@dataclass(frozen=True, kw_only=True, slots=True)
class CreateSecretResponse:
    #: The new AWSPENDING value, to be persisted by the engine under the request's token.
    pending: SecretValue
    #: A short, secret-free note for events and the audit log.
    message: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class SetSecretResponse:
    #: False when the target already held the pending value (a repeated call).
    changed: bool = True
    message: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class TestSecretResponse:
    __test__: ClassVar[bool] = False
    message: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class FinishSecretResponse:
    message: str = ""


@dataclass(frozen=True, kw_only=True, slots=True)
class RetireSecretResponse:
    message: str = ""


@runtime_checkable
class RetiringRotator(Protocol):
    """A rotator whose previous credentials outlive finishSecret (alternating users) and
    can be retired once nothing uses them any more (see `services/rotation`'s awaitRollout).
    Optional: a rotator without `retire_secret` has nothing to retire."""

    def retire_secret(self, req: RetireSecretRequest) -> RetireSecretResponse:
        """Make the target refuse `req.previous` (never `req.current`).

        Must not error if `previous` is already refused, gone, or the same login as `current`.
        """
        ...


@runtime_checkable
class RollbackGuard(Protocol):
    """A rotator whose strategy promises that AWSCURRENT keeps working while the target is
    changed (alternating users), and that can tell when a rollback's setSecret would break
    that promise (see `services/rotation`'s rollback). Optional: a rotator without
    `rollback_lockout` is trusted to keep its promise (or makes none: single-user)."""

    def rollback_lockout(self, req: SetSecretRequest) -> str | None:
        """Why making the target accept `req.pending` again (a rollback to that version)
        would stop `req.current` from logging in, e.g. "both are user app"; None if not.

        Must not do I/O (`req.master` may be unresolved); names users, never values.
        """
        ...


@runtime_checkable
class Rotator(Protocol):
    """One way of rotating a secret. Instances are stateless and safe to share.

    Errors come from `kustos.errors` (see `kustos.rotation.errors`): ClientError when the
    configuration or the data is wrong, ServerError when the target failed; messages never
    contain a secret value.
    """

    #: The name a ManagedSecret's `rotation.rotator` refers to.
    name: ClassVar[str]

    def validate(self, config: Mapping[str, Any]) -> None:
        """Check `config` without I/O; raise InvalidParameterError saying what is wrong.

        Must not error for a config the steps accept.
        """
        ...

    def create_secret(self, req: CreateSecretRequest) -> CreateSecretResponse:
        """Make the new value, without changing the target.

        Must return `req.pending` unchanged when it is set (the engine already persisted a
        value for this token); must not change the target; may be called any number of times.
        """
        ...

    def set_secret(self, req: SetSecretRequest) -> SetSecretResponse:
        """Make the target accept `req.pending`.

        Must not error if the target already accepts it (a repeated call); must keep the
        AWSCURRENT credentials working when the strategy promises so (alternating users).
        """
        ...

    def test_secret(self, req: TestSecretRequest) -> TestSecretResponse:
        """Check that `req.pending` works against the target; must not change anything.

        Must raise (CredentialsRejectedError or a ServerError) if it does not work.
        """
        ...

    def finish_secret(self, req: FinishSecretRequest) -> FinishSecretResponse:
        """Last chance to act on the target before the engine moves AWSCURRENT.

        Must not error if called again after a success; labels are the engine's business.
        """
        ...
