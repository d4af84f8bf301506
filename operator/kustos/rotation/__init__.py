"""Rotation: AWS's four-step protocol (createSecret, setSecret, testSecret, finishSecret).

Owns the `Rotator` interface and its request/response types (`rotator`), the registry of
rotators by name (`registry`), the password generator (`passwords`), the rotation errors
(`errors`) and the built-in rotators (`rotators/`). Rotators do the work on the target (a
database, a webhook); they never touch the store, Kubernetes or staging labels: the engine
persists each step before acting on it and moves labels after `finishSecret`.
"""

from kustos.rotation.passwords import PasswordParams, generate_password
from kustos.rotation.registry import get_rotator, known_rotators, register_rotator
from kustos.rotation.rotator import (
    CreateSecretRequest,
    CreateSecretResponse,
    FinishSecretRequest,
    FinishSecretResponse,
    PendingStepRequest,
    Rotator,
    SetSecretRequest,
    SetSecretResponse,
    StepRequest,
    TestSecretRequest,
    TestSecretResponse,
)

__all__ = [
    "CreateSecretRequest",
    "CreateSecretResponse",
    "FinishSecretRequest",
    "FinishSecretResponse",
    "PasswordParams",
    "PendingStepRequest",
    "Rotator",
    "SetSecretRequest",
    "SetSecretResponse",
    "StepRequest",
    "TestSecretRequest",
    "TestSecretResponse",
    "generate_password",
    "get_rotator",
    "known_rotators",
    "register_rotator",
]
