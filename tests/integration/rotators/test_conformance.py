"""The conformance suite every rotator passes: the four steps, idempotent per token.

Runs against the real targets (PostgreSQL and MariaDB from Debian packages, an HTTPS webhook
on 127.0.0.1). Database-specific and webhook-specific failure modes are in the sibling
modules.
"""

from __future__ import annotations

import uuid

import pytest
from tests.integration.rotators.rotation_harness import Engine, RotationCase
from tests.kube_helpers import present

from kustos.errors import InvalidParameterError
from kustos.rotation import (
    CreateSecretRequest,
    FinishSecretRequest,
    Rotator,
    SetSecretRequest,
    TestSecretRequest,
)


def test_is_a_rotator(case: RotationCase) -> None:
    assert isinstance(case.rotator, Rotator)
    case.rotator.validate(case.config)


def test_one_rotation_end_to_end(case: RotationCase, engine: Engine) -> None:
    assert case.logs_in(case.current)
    new = engine.rotate()
    assert new != case.current
    assert engine.current == new
    assert case.logs_in(new)
    if case.has_target:
        assert case.logs_in(present(engine.previous)) is case.alternating


def test_create_is_idempotent_and_leaves_the_target_alone(
    case: RotationCase, engine: Engine
) -> None:
    token = str(uuid.uuid4())
    first = engine.create(token)
    again = engine.create(token)  # the engine now passes the stored pending value
    assert again == first
    assert case.logs_in(case.current)
    if case.has_target:
        assert not case.logs_in(first)


def test_every_step_can_be_repeated(case: RotationCase, engine: Engine) -> None:
    token = str(uuid.uuid4())
    engine.create(token)
    engine.step(SetSecretRequest, token)
    second = engine.step(SetSecretRequest, token)
    if case.server is not None:
        assert second.changed is False
    for _ in range(2):
        engine.step(TestSecretRequest, token)
    for _ in range(2):
        engine.step(FinishSecretRequest, token)
    assert case.logs_in(engine.pending[token])


def test_three_rotations_previous_and_older_credentials(case: RotationCase, engine: Engine) -> None:
    for _ in range(3):
        engine.rotate()
        assert case.logs_in(engine.current)
        if case.has_target:
            assert engine.previous is not None
            assert case.logs_in(engine.previous) is case.alternating
    if case.has_target:
        # The credentials of two rotations ago have been replaced in place.
        assert not case.logs_in(engine.history[-2])
        assert not case.logs_in(engine.history[0])


def test_the_steps_after_create_cannot_be_asked_without_a_pending_value(
    case: RotationCase, engine: Engine
) -> None:
    for cls in (SetSecretRequest, TestSecretRequest, FinishSecretRequest):
        with pytest.raises(TypeError, match="pending"):
            engine.step(cls, "no-such-token")


def test_unknown_config_key_is_rejected(case: RotationCase) -> None:
    with pytest.raises(InvalidParameterError, match="bogus"):
        case.rotator.validate({**case.config, "bogus": 1})
    req = case.request(
        CreateSecretRequest, Engine(case, case.current), "t", config={**case.config, "bogus": 1}
    )
    with pytest.raises(InvalidParameterError):
        case.rotator.create_secret(req)


def test_test_secret_fails_for_a_value_the_target_does_not_accept(
    case: RotationCase, engine: Engine
) -> None:
    if not case.has_target:
        pytest.skip("no target to refuse a value")
    token = str(uuid.uuid4())
    engine.create(token)  # never set
    with pytest.raises(Exception) as info:  # noqa: PT011 - each rotator has its own error
        engine.step(TestSecretRequest, token)
    assert engine.pending[token].reveal() not in str(info.value)
    password = (engine.pending[token].as_mapping() or {}).get("password", "")
    assert password not in str(info.value)
